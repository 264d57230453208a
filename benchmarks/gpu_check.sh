#!/usr/bin/env bash
# On a machine with a CUDA GPU: the engine's tests run through the GPU path, every method trained on
# the sample data on the GPU (quick-demo settings), torchrun with NCCL, and the GPU throughput
# ratios. Output: one file per part in the folder given as $1 (default benchmarks/results),
# named gpu_*.txt. Each part has its own time limit so one hang cannot eat the others.
#
#     bash benchmarks/gpu_check.sh [OUT_DIR] [PARTS...]     (parts: tests methods torchrun throughput compile predict)
set -u
cd "$(dirname "$0")/.."
out=${1:-benchmarks/results}
shift || true
parts=${*:-tests methods torchrun throughput compile predict}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
work=$(mktemp -d)
want() { [[ " $parts " == *" $1 "* ]]; }

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  $py -c "import torch, torchvision; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'torchvision', torchvision.__version__)"
} > "$out/gpu_device.txt" 2>&1
cat "$out/gpu_device.txt"

if want tests; then  # the engine's own tests with their tiny runs placed on the GPU
  echo "== tests"
  STUDIO_TEST_DEVICE=cuda timeout 240 $py -m pytest -q -p no:cacheprovider -n 6 \
    tests/test_train.py tests/test_adversarial.py tests/test_adafilter.py tests/test_wise_ft.py \
    tests/test_pruning.py tests/test_engine_cli.py tests/test_explain_export.py tests/test_distributed.py \
    > "$out/gpu_tests.txt" 2>&1
  tail -n 25 "$out/gpu_tests.txt"
fi

summarise() {  # one line per run: the numbers a user sees at the end
  $py - "$@" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
h = s["history"][-1]
keys = ["val_acc", "test_acc", "ood_acc", "robust_acc", "sparsity", "wall_time_s", "train_images_per_sec",
        "wise_curve_seconds", "device"]
vals = {k: s.get(k, h.get(k)) for k in keys}
print(sys.argv[2], " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in vals.items()
                            if v is not None))
EOF
}

if want methods; then  # each method on the sample data, on the GPU
  echo "== methods"
  for m in plain adversarial adafilter pruning wise_ft; do
    extra=()
    [[ $m != plain ]] && extra=(--set "$m.enabled=true")
    timeout 150 $py -m engine train --data assets/sample_textures.zip --backbone resnet18 --pretrained bundled \
      --epochs 5 --image-size 64 --batch-size 64 --device cuda --out "$work/$m" --data-dir "$work/data" \
      "${extra[@]}" --quiet > "$work/$m.log" 2>&1
    rc=$?
    if [[ $rc == 0 ]]; then summarise "$work/$m/summary.json" "$m"; else echo "$m FAILED rc=$rc"; tail -n 20 "$work/$m.log"; fi
  done > "$out/gpu_methods.txt" 2>&1
  cat "$out/gpu_methods.txt"
fi

if want torchrun; then  # the distributed path with NCCL (one process per GPU on this machine)
  echo "== torchrun"
  n=$($py -c "import torch; print(torch.cuda.device_count())")
  timeout 150 $py -m torch.distributed.run --nproc_per_node="$n" -m engine train --data assets/sample_textures.zip \
    --backbone resnet18 --pretrained bundled --epochs 3 --image-size 64 --batch-size 64 --device cuda \
    --out "$work/ddp" --data-dir "$work/data" --quiet > "$work/ddp.log" 2>&1
  rc=$?
  { if [[ $rc == 0 ]]; then summarise "$work/ddp/summary.json" "torchrun-x$n"; else echo "torchrun FAILED rc=$rc"; tail -n 30 "$work/ddp.log"; fi
  } > "$out/gpu_torchrun.txt" 2>&1
  cat "$out/gpu_torchrun.txt"
fi

if want throughput; then
  echo "== throughput"
  timeout 300 $py benchmarks/throughput.py --devices cuda --rounds 3 > "$out/gpu_throughput.txt" 2>&1
  tail -n 6 "$out/gpu_throughput.txt"
fi

if want predict; then  # engine.predict on a zip against a bare batched forward pass, on the GPU
  echo "== predict"
  timeout 300 $py benchmarks/predict_throughput.py --device cuda --image-size 224 --batch-size 256 --images 640 \
    --rounds 5 > "$out/gpu_predict_throughput.txt" 2>&1
  tail -n 8 "$out/gpu_predict_throughput.txt"
fi

if want compile; then  # optional torch.compile, plain fine-tuning at 224 px
  echo "== compile"
  for c in false true; do
    timeout 150 $py -m engine train --data assets/sample_textures.zip --backbone resnet18 --pretrained bundled \
      --epochs 3 --image-size 224 --batch-size 128 --device cuda --out "$work/compile_$c" --data-dir "$work/data" \
      --set "train.compile=$c" --set eval.ood=false --quiet > "$work/compile_$c.log" 2>&1
    rc=$?
    if [[ $rc == 0 ]]; then summarise "$work/compile_$c/summary.json" "compile=$c"; else echo "compile=$c FAILED rc=$rc"; tail -n 20 "$work/compile_$c.log"; fi
  done > "$out/gpu_compile.txt" 2>&1
  cat "$out/gpu_compile.txt"
fi
rm -rf "$work"
