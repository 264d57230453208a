#!/usr/bin/env bash
# The AdaFilter demo against standard fine-tuning at the same recipe over many seeds: WORKERS processes
# side by side (a many-core or GPU machine), seeds dealt out in turn (worker w: w, w + WORKERS, ...), each
# process with its own work folder and an equal share of the cores; then all finished seeds pooled into
# one table (benchmarks/adafilter.py --pool). A process still running after DEADLINE seconds (0: none) is
# stopped and its finished seeds still count.
#
#     bash benchmarks/adafilter_seeds.sh WORKERS SEEDS WORK_DIR [DEADLINE [ADAFILTER_PY_ARGS...]]
#     bash benchmarks/adafilter_seeds.sh 10 100 runs/ada_seeds 400                          # 100 seeds, 10 processes
#     bash benchmarks/adafilter_seeds.sh 2 2 /tmp/a 0 --pretrained none --epochs 1 --image-size 32   # smoke test
set -u
cd "$(dirname "$0")/.."
workers=$1 seeds=$2 work=$3 deadline=${4:-0}
threads=$(( $(nproc) / workers )); (( threads >= 1 )) || threads=1
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
mkdir -p "$work"
for ((w = 0; w < workers; w++)); do
  mine=$(seq "$w" "$workers" $((seeds - 1)))
  STUDIO_BENCH_WORK="$work/w$w" timeout "$deadline" $py benchmarks/adafilter.py --seeds $mine --threads "$threads" \
    --epochs 20 --batch-size 32 --lr 0.02 \
    --set optim.linear_probe_epochs=2 adafilter.gate_optimizer=adam adafilter.gate_lr_mult=5 \
    --adafilter-set adafilter.gate_bias=1 adafilter.gated_lr_mult=1.4 adafilter.eval_gates=expected \
    "${@:5}" > "$work/w$w.log" 2>&1 &
done
wait
shopt -s nullglob
done_files=("$work"/w*/adafilter.json)
(( ${#done_files[@]} )) || { echo "no worker finished a seed; logs in $work"; tail -n 20 "$work"/w0.log; exit 1; }
$py benchmarks/adafilter.py --pool "${done_files[@]}"
