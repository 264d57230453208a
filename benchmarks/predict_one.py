"""One image through `python -m engine predict`, whole process, before and after the run's features are kept.

To flag an image unlike the training images, predict measures where the run's training images sit (up to
2048 of them) and how far its held-out images are from them: a forward pass over each, every time a model
was loaded, so one image cost as much as predicting the whole dataset. The features are now kept in the
run's folder (`feature_cache/`, engine.predict.cached_features) the first time a model is loaded.

For each image size, the script trains a 1-epoch run on `--data` (the sample by default; its time is not
measured), then times whole `predict` processes on one generated image, alternating: "cold" with the run's
`feature_cache/` deleted first (what every call cost before), "warm" with it kept. It also times a process
that only imports torch and torchvision (the floor no predict goes under). Printed: the median seconds of
each and the ratio warm / cold, measured in one run.

    python benchmarks/predict_one.py [--data assets/sample_textures.zip] [--sizes 64 128] [--rounds 3]
        [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from common import ROOT, table


def timed(cmd: list[str], env: dict) -> float:
    """Seconds of one whole process; raises CalledProcessError with its output when it fails."""
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / "assets" / "sample_textures.zip"))
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(ROOT)}
    work = Path(tempfile.mkdtemp(prefix="predict_one_"))
    image = work / "one.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)).save(image)
    rows = []
    try:
        floor = statistics.median(timed([sys.executable, "-c", "import torch, torchvision"], env)
                                  for _ in range(args.rounds))
        for size in args.sizes:
            store = work / f"studio_{size}"
            subprocess.run([sys.executable, "-m", "engine", "train", "--data", args.data, "--epochs", "1",
                            "--image-size", str(size), "--data-dir", str(store), "--quiet", "--set", "eval.ood=false",
                            "--set", f"train.threads={args.threads}"], cwd=ROOT, env=env, check=True)
            (run,) = (store / "runs").iterdir()
            predict = [sys.executable, "-m", "engine", "predict", "--run", str(run), "--data", str(image),
                       "--out", str(work / "p.csv"), "--data-dir", str(store), "--quiet"]
            cold, warm = [], []
            for _ in range(args.rounds):
                shutil.rmtree(run / "feature_cache", ignore_errors=True)
                cold.append(timed(predict, env))
                warm.append(timed(predict, env))
            c, w = statistics.median(cold), statistics.median(warm)
            rows.append([f"{size} px", f"{c:.2f}", f"{w:.2f}", f"{w / c:.2f}", f"{floor:.2f}"])
            print(f"{size} px: cold {['%.2f' % x for x in cold]}, warm {['%.2f' % x for x in warm]}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nOne image through `predict`, {args.threads} threads, {Path(args.data).name}, "
          f"median of {args.rounds} rounds:")
    print(table(["image size", "cold s (features measured)", "warm s (features kept)", "warm / cold",
                 "import torch + torchvision s"], rows))


if __name__ == "__main__":
    main()
