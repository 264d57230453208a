#!/usr/bin/env bash
# Many seeds of two claims whose three-seed verdicts are luck (README, Not done yet), on a machine with a
# CUDA GPU and many cores: processes side by side on one GPU, one CPU thread each, until a deadline.
#   - Jeddi et al.'s cost claim in the paper's setting (benchmarks/adversarial_compute.py --starts natural) with
#     the demo's fine-tuning recipe and the variants in ADV_VARIANTS, each against the same scratch run;
#   - the WiSE-FT demo with each recipe change in WISE_RECIPES (benchmarks/wise_ft.py --set ...).
# The logs go to OUT/logs.tgz; the tables in README's result files are built from them, counting only the
# seeds a process finished by the deadline (a "full precision" line for WiSE-FT, a "reaches it at" line for the
# adversarial claim). A process that fails for another reason than the deadline is named at the end.
#
#     bash benchmarks/claim_seeds.sh OUT [DEADLINE_S=420] [ADV_PROCESSES=6] [WISE_PROCESSES_PER_RECIPE=2]
set -u -f  # -f: no glob expansion of the recipes
cd "$(dirname "$0")/.."
out=${1:?output folder}; deadline=${2:-420}; adv=${3:-6}; per=${4:-2}
ADV_VARIANTS=${ADV_VARIANTS:-"lr0.01:optim.lr=0.01 lr0.04:optim.lr=0.04 rise0.2:optim.slow_start_fraction=0.2"}
WISE_RECIPES=${WISE_RECIPES:-"constant:optim.schedule=constant smooth0.1:optim.label_smoothing=0.1 momentum0:optim.momentum=0,optim.lr=0.2 wd5e-3:optim.weight_decay=0.005"}
py=${PYTHON:-python3}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT  # every run folder (checkpoints) is in there
mkdir -p "$out"
for r in $WISE_RECIPES; do
  [[ $r == *:* ]] || { echo "WISE_RECIPES entry '$r' has no ':' (NAME:KEY=VALUE[,KEY=VALUE], NAME: for the demo)"; exit 2; }
done
pids=()
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 BENCH_THREADS=1 STUDIO_BENCH_DEVICE=${STUDIO_BENCH_DEVICE:-cuda}
$py benchmarks/digits.py > "$logs/digits.log" 2>&1 || { cat "$logs/digits.log"; exit 1; }
for w in $(seq 0 $((adv - 1))); do  # process w takes seeds w, w + adv, ...
  STUDIO_BENCH_WORK="$logs/adv$w" timeout "$deadline" $py benchmarks/adversarial_compute.py --starts natural \
    --seeds $(seq "$w" "$adv" 299) --natural-variants $ADV_VARIANTS > "$logs/adversarial_$w.log" 2>&1 &
  pids+=("$!:adversarial_$w")
done
for r in $WISE_RECIPES; do
  name=${r%%:*}; sets=${r#*:}
  for w in $(seq 0 $((per - 1))); do
    STUDIO_BENCH_WORK="$logs/wise_$name$w" timeout "$deadline" $py benchmarks/wise_ft.py --threads 1 \
      --seeds $(seq "$w" "$per" 299) --set ${sets//,/ } > "$logs/wise_ft_${name}_$w.log" 2>&1 &
    pids+=("$!:wise_ft_${name}_$w")
  done
done
for p in "${pids[@]}"; do  # 124: stopped at the deadline, as planned
  wait "${p%%:*}"; rc=$?
  [[ $rc == 0 || $rc == 124 ]] || echo "${p#*:} exited with $rc: see its log in logs.tgz"
done
set +f  # the logs by pattern again
tar czf "$out/logs.tgz" -C "$logs" $(cd "$logs" && ls *.log)
grep -h "reaches it at" "$logs"/adversarial_*.log | head -50
grep -h "best alpha\|no interior" "$logs"/wise_ft_*.log | head -20
