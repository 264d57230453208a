#!/usr/bin/env bash
# Continuing from one's own model: the Adversarial demo started from a Quick demo model (its head kept),
# at the preset's learning rate (0.02) and at a tenth of it, 3 seeds. Prints test, robust and validation
# accuracy per run. Usage: bash benchmarks/continue_lr.sh [data dir, default runs/benchmarks/continue_lr]
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-runs/benchmarks/continue_lr}
for s in 0 1 2; do
  python -m engine train --preset quick_demo --data-dir "$D" --quiet --set seed=$s --name "quick demo s$s" > /dev/null
  ck=$(ls -td "$D"/runs/*/ | head -1)last.safetensors
  for lr in 0.02 0.002; do
    python -m engine train --preset adversarial_demo --data-dir "$D" --quiet --set seed=$s --checkpoint "$ck" \
        --set optim.lr=$lr --name "adversarial demo from quick demo s$s lr $lr" > /dev/null
  done
done
python - "$D" <<'PY'
import glob, json, sys

import yaml

for f in sorted(glob.glob(f"{sys.argv[1]}/runs/*/summary.json")):
    s, c = json.load(open(f)), yaml.safe_load(open(f.replace("summary.json", "config.yaml")))
    robust = "" if s.get("robust_acc") is None else f", robust {100 * s['robust_acc']:.1f}"
    print(f"{c.get('name')}: test {100 * s['test_acc']:.1f}{robust}, val {100 * s['val_acc']:.1f}")
PY
