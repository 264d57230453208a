#!/usr/bin/env bash
# Run every benchmark at the settings README reports, two at a time with one torch thread each
# (two threads per process spin against each other on a 2-core machine). Output goes to
# $STUDIO_BENCH_RESULTS/<name>.txt (default benchmarks/results/run_all_<date>/); README's tables are copied from there.
set -u
cd "$(dirname "$0")/.."
case "${1:-}" in
  ""|--long|--long-only) ;;
  *) echo "usage: bash benchmarks/run_all.sh [--long | --long-only]" >&2; exit 2 ;;
esac
CORES=$(nproc)  # before OMP_NUM_THREADS below, which nproc would report instead
# The outputs go to a folder of their own (STUDIO_BENCH_RESULTS, default a dated one), so a new run
# never overwrites the files README's tables cite; relative to the project root
export STUDIO_BENCH_RESULTS=${STUDIO_BENCH_RESULTS:-benchmarks/results/run_all_$(date -u +%Y-%m-%d_%H%M)}
RESULTS=$STUDIO_BENCH_RESULTS
mkdir -p "$RESULTS"
export OMP_NUM_THREADS=1 BENCH_THREADS=1 PYTHONUNBUFFERED=1
LOG=$RESULTS/run_all.log
RAN=$RESULTS/.run_all_ran  # name and exit status of each step of this invocation (claims.txt reads it)
: > "$RAN"
run() {
  local name=$1; shift; local t0=$SECONDS rc
  echo "== $(date -u +%H:%M:%S) $name: ${STUDIO_CPU_PRECISION:+STUDIO_CPU_PRECISION=$STUDIO_CPU_PRECISION }OMP_NUM_THREADS=$OMP_NUM_THREADS $*" | tee -a "$LOG"
  python "$@" > "$RESULTS/$name.txt" 2>&1
  rc=$?
  echo "$name $rc" >> "$RAN"
  echo "== $(date -u +%H:%M:%S) $name done (exit $rc, $((SECONDS - t0)) s)" | tee -a "$LOG"
}
echo "== run_all.sh ${*:-} started $(date -u '+%Y-%m-%d %H:%M:%S') UTC on $(lscpu | sed -n 's/^Model name: *//p' | head -1), $CORES cores" | tee "$LOG"
# --long-only: only the longer budgets and other settings (for a machine that already ran the rest)
if [ "${1:-}" != "--long-only" ]; then
(
  run transfer_gain benchmarks/transfer_gain.py --seeds 0 1 --steps 100
  run transfer_gain_mobilenet_v3_small benchmarks/transfer_gain.py --backbone mobilenet_v3_small --seeds 0 1 --steps 100
  run loop_overhead benchmarks/throughput.py --devices cpu --data assets/sample_textures.zip --image-size 32 \
      --batch-size 64 --rounds 3 --threads 1 --backbones resnet18
  # The pruning demo's structured half at a longer recovery
  run pruning_structured benchmarks/pruning.py --epochs 20 --batch-size 32 --lr 0.02 --seeds 0,1,2 --sparsities 0 \
      --structured-epochs 10 --threads 1 --latency-rounds 3 --set optim.linear_probe_epochs=2
) &
(
  run adversarial benchmarks/adversarial.py --scratch-epochs 12 --eval-subset 64
  # The AdaFilter and pruning demo presets (engine/presets.py), 3 seeds each, with their claim lines
  run adafilter benchmarks/adafilter.py --seeds 0 1 2 --epochs 20 --batch-size 32 --lr 0.02 --threads 1 \
      --set optim.linear_probe_epochs=2 adafilter.gate_optimizer=adam adafilter.gate_lr_mult=5 \
      --adafilter-set adafilter.gate_bias=1 adafilter.gated_lr_mult=1.4 adafilter.eval_gates=expected
  run pruning benchmarks/pruning.py --epochs 20 --batch-size 32 --lr 0.02 --seeds 0,1,2 --sparsities 0,0.7 --scope global \
      --end-fraction 0.5 --structured-epochs 4 --threads 1 --latency-rounds 3 --set optim.linear_probe_epochs=2
) &
wait
# Engine speed on one thread, alone (beside a training run the ratios hold but the times do not)
run throughput benchmarks/throughput.py --devices cpu --images 96 --batch-size 16 --rounds 3 --threads 1 --backbones resnet18
run throughput_r50 benchmarks/throughput.py --devices cpu --images 64 --batch-size 16 --rounds 3 --threads 1 --backbones resnet50
run predict_throughput_1thread benchmarks/predict_throughput.py --threads 1
# One image through the predict command, whole process, before and after the run's features are kept
run predict_one benchmarks/predict_one.py --threads 1
# WiSE-FT's grid time is a wall-clock target for a 2-core machine: measured alone, with both cores
OMP_NUM_THREADS=2 BENCH_THREADS=2 run wise_ft benchmarks/wise_ft.py --seeds 0 1 2
# The engine/bare ratio at the CPU default precision (bf16 + channels_last), alone, with both cores
STUDIO_CPU_PRECISION=bf16 OMP_NUM_THREADS=2 run loop_overhead_bf16 benchmarks/throughput.py --devices cpu \
    --data assets/sample_textures.zip --image-size 64 --batch-size 64 --rounds 3 --threads 2 --backbones resnet18
# The adversarial demo preset against the standard demo, 3 seeds, alone with both cores
OMP_NUM_THREADS=2 run adversarial_demo benchmarks/adversarial_demo.py --seeds 0 1 2
# Fewer steps to the same accuracy (flip TTA against the Quick demo), alone with both cores
OMP_NUM_THREADS=2 run speedups benchmarks/speedups.py --seeds 0 1 2 --variants baseline tta
# A Quick demo started from the dashboard (headless Chromium on the same machine) against the command line,
# threads chosen automatically as a user's are (needs Playwright and Chromium)
( unset OMP_NUM_THREADS BENCH_THREADS; run dashboard_refresh benchmarks/dashboard_refresh.py --rounds 2 --refresh auto 1 )
# Against the peers, alone with both cores: the sample at 64 px, and scikit-learn's 8x8 digits at 32 px
# (benchmark-only dependencies: pip install timm scikit-learn; the digits row is skipped without scikit-learn)
OMP_NUM_THREADS=2 run peers_64px benchmarks/peers.py --image-size 64 --epochs 5 --threads 2 --threshold 0.5 \
    --studio-no-ood --seeds 0 1
# What a CPU without bf16 runs: the studio pinned to float32 (the peers are float32 anyway)
STUDIO_CPU_PRECISION=fp32 OMP_NUM_THREADS=2 run peers_64px_fp32 benchmarks/peers.py --image-size 64 --epochs 5 \
    --threads 2 --threshold 0.5 --studio-no-ood --seeds 0 1
if python benchmarks/digits.py > /dev/null 2>&1; then
  OMP_NUM_THREADS=2 run peers_32px_digits benchmarks/peers.py --data runs/benchmarks/digits.zip --image-size 32 \
      --epochs 10 --threads 2 --threshold 0.9 --studio-no-ood --seeds 0 1
  # Jeddi et al.'s cost claim against adversarial training from scratch, on data where scratch learns
  OMP_NUM_THREADS=2 run adversarial_compute benchmarks/adversarial_compute.py --seeds 0 1 2
else
  echo "== digits (scikit-learn) missing: peers_32px_digits and adversarial_compute skipped" | tee -a "$LOG"
fi
fi  # the default steps
# The longer budgets and the other settings README also reports (33-37 minutes more on a 2-core AMD EPYC):
# bash benchmarks/run_all.sh --long (everything), --long-only (these alone)
if [ "${1:-}" = "--long" ] || [ "${1:-}" = "--long-only" ]; then
  # AdaFilter's other settings (README's settings table), two at a time with one thread each
  (
    run adafilter_binary_gates benchmarks/adafilter.py --seeds 0 1 2 --epochs 20 --batch-size 32 --lr 0.02 --threads 1 \
        --set optim.linear_probe_epochs=2 adafilter.gate_optimizer=adam adafilter.gate_lr_mult=5 \
        --adafilter-set adafilter.gate_bias=1 adafilter.gated_lr_mult=1.4
    run adafilter_gated_lr2 benchmarks/adafilter.py --seeds 0 1 2 --epochs 20 --batch-size 32 --lr 0.02 --threads 1 \
        --set optim.linear_probe_epochs=2 adafilter.gate_optimizer=adam adafilter.gate_lr_mult=5 \
        --adafilter-set adafilter.gated_lr_mult=2
  ) &
  (
    run adafilter_gate_bias1.5 benchmarks/adafilter.py --seeds 0 1 2 --epochs 20 --batch-size 32 --lr 0.02 --threads 1 \
        --set optim.linear_probe_epochs=2 adafilter.gate_optimizer=adam adafilter.gate_lr_mult=5 \
        --adafilter-set adafilter.gate_bias=1.5 adafilter.gated_lr_mult=1.2
    run adafilter_gated_lr1 benchmarks/adafilter.py --seeds 0 1 2 --epochs 20 --batch-size 32 --lr 0.02 --threads 1 \
        --set optim.linear_probe_epochs=2 adafilter.gate_optimizer=adam adafilter.gate_lr_mult=5
  ) &
  wait
  # The cost claim at a larger eps (needs scikit-learn for the digits)
  python benchmarks/digits.py > /dev/null 2>&1 || echo "== digits (scikit-learn) missing: adversarial_compute_8 skipped" | tee -a "$LOG"
  python benchmarks/digits.py > /dev/null 2>&1 && OMP_NUM_THREADS=2 run adversarial_compute_8 \
      benchmarks/adversarial_compute.py --seeds 0 1 2 --eps 8/255
  OMP_NUM_THREADS=2 run pruning_12ep benchmarks/pruning.py --epochs 12 --seeds 0,1,2 --sparsities 0,0.5,0.7 \
      --threads 2 --latency-rounds 3
  OMP_NUM_THREADS=1 run adafilter_12ep benchmarks/adafilter.py --seeds 0 1 --epochs 12 --threads 1
  OMP_NUM_THREADS=2 BENCH_THREADS=2 run adversarial_48ep benchmarks/adversarial.py --scratch-epochs 48 --eval-subset 64 --cost-rounds 3 \
      --name adversarial_48ep
fi
# On a machine with a CUDA GPU, also: bash benchmarks/gpu_check.sh (writes benchmarks/results/gpu_*.txt)
# Each method's paper claim, as its benchmark stated it (README's method tables say the same)
{
  echo "# run_all.sh ${*:-}: each paper claim as measured in this run ($RESULTS/<name>.txt has the tables)"
  default_steps=" adversarial adversarial_demo adversarial_compute adafilter pruning pruning_structured wise_ft "
  for name in $default_steps adafilter_binary_gates adafilter_gated_lr2 adafilter_gate_bias1.5 adafilter_gated_lr1 \
      adversarial_compute_8 pruning_12ep adafilter_12ep adversarial_48ep; do
    rc=$(sed -n "s/^$name //p" "$RAN")
    if [ -z "$rc" ]; then  # a default step says it did not run; a --long step is listed only when it ran
      [[ $default_steps == *" $name "* ]] || continue
      echo "## $name"; echo "(not run this time)"; continue
    fi
    echo "## $name"
    [ "$rc" = 0 ] || echo "(FAILED, exit $rc: see $RESULTS/$name.txt)"
    grep -i -E "^claim|claim \(|claim holds for|claim .*shown on" "$RESULTS/$name.txt" | grep -v "^Claim lines"
  done
} > "$RESULTS/claims.txt"
failed=$(awk '$2 != 0 {print $1}' "$RAN" | tr '\n' ' ')
echo "== run_all.sh finished $(date -u '+%Y-%m-%d %H:%M:%S') UTC ($SECONDS s); claims: $RESULTS/claims.txt${failed:+; FAILED: $failed}" | tee -a "$LOG"
