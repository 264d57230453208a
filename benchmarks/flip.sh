#!/usr/bin/env bash
# Mirroring in training (train.flip) on data whose mirror image is another thing: scikit-learn's
# handwritten digits (benchmarks/digits.py) at 32 px, the peers' matched recipe (10 epochs, batch 32,
# SGD 0.01, cosine) and a shorter one (5 epochs, lr 0.02), each with crop + flip (the default), crops
# only (train.flip=false) and no augmentation; then the bundled sample (textures, 64 px, Quick demo),
# where mirrors are real pictures, with and without flip. 3 seeds, alternating; prints test and
# validation accuracy and the run's wall time.
# Usage: bash benchmarks/flip.sh [data dir, default runs/benchmarks/flip]
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-runs/benchmarks/flip}
python benchmarks/digits.py > /dev/null
for s in 0 1 2; do
  for recipe in "10 0.01" "5 0.02"; do
    set -- $recipe
    for v in "crop+flip train.flip=true" "crop-only train.flip=false" "none train.augment=false"; do
      python -m engine train --data runs/benchmarks/digits.zip --image-size 32 --epochs $1 --batch-size 32 --lr $2 \
          --data-dir "$D" --quiet --seed $s --set eval.ood=false --set ${v#* } --name "digits $1 ep lr $2 ${v%% *} seed $s" > /dev/null
    done
  done
  for v in "crop+flip train.flip=true" "crop-only train.flip=false"; do
    python -m engine train --preset quick_demo --data assets/sample_textures.zip --data-dir "$D" --quiet --seed $s \
        --set ${v#* } --name "sample quick demo ${v%% *} seed $s" > /dev/null
  done
done
python - "$D" <<'PY'
import glob, json, sys

import yaml

for f in sorted(glob.glob(f"{sys.argv[1]}/runs/*/summary.json")):
    s, c = json.load(open(f)), yaml.safe_load(open(f.replace("summary.json", "config.yaml")))
    print(f"{c.get('name')}: test {100 * s['test_acc']:.1f}, val {100 * s['val_acc']:.1f}, wall {s['wall_time_s']:.1f} s")
PY
