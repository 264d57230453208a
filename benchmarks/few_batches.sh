#!/usr/bin/env bash
# The few-optimiser-steps advice: the Quick demo on a small training split of the bundled sample (8 images
# per class: 64 images, 2 steps an epoch at batch 32), against the batch size the warning suggests (8) at the
# same learning rate and at a rate scaled with the batch (Goyal et al. 2017's linear scaling rule), 3 seeds.
# Prints test and validation accuracy per run. Usage: bash benchmarks/few_batches.sh [data dir, default
# runs/benchmarks/few_batches] [images per class, default 8]
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-runs/benchmarks/few_batches}
PER_CLASS=${2:-8}
for s in 0 1 2; do
  for v in "32 0.02" "8 0.02" "8 0.005"; do
    set -- $v
    python -m engine train --preset quick_demo --data assets/sample_textures.zip --data-dir "$D" --quiet --seed $s \
        --batch-size $1 --lr $2 --set data.train_per_class=$PER_CLASS --name "seed $s batch $1 lr $2" > /dev/null
  done
done
python - "$D" <<'PY'
import glob, json, sys

import yaml

for f in sorted(glob.glob(f"{sys.argv[1]}/runs/*/summary.json")):
    s, c = json.load(open(f)), yaml.safe_load(open(f.replace("summary.json", "config.yaml")))
    print(f"{c.get('name')}: test {100 * s['test_acc']:.1f}, val {100 * s['val_acc']:.1f}, "
          f"{s['steps_per_epoch']} steps an epoch on {s['train_images']} training images")
PY
