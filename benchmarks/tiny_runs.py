"""What the suite's tiny training runs cost with each backbone: tests/conftest.py's tiny_config (2 epochs at 32 px,
batch 8, 20 generated images a class of 3 classes, OOD off, one torch thread, float32) with a MobileNetV3-Small from
its bundled weights (the tests' default) against a ResNet-18 from random weights (RANDOM_RESNET18: the tests of
ResNet-specific things). Ratios measured in one run.

    python benchmarks/tiny_runs.py [--seeds 0 1 2] [--rounds 3]

Prints, per backbone, the median seconds of a whole run (train() with its run folder: data, training, evaluation
and the checkpoints each epoch writes), the size of its weights file, and the test accuracy per seed.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("STUDIO_CPU_PRECISION", "fp32")  # as the suite pins it

from conftest import RANDOM_RESNET18, tiny_config, write_tiny_zip  # noqa: E402  (pins one torch thread)

CHOICES = {"MobileNetV3-Small, bundled weights (tiny_config)": (),
           "ResNet-18, random weights (RANDOM_RESNET18)": RANDOM_RESNET18}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--rounds", type=int, default=3, help="timed runs per backbone (seed 0), after one untimed")
    args = ap.parse_args()
    from engine.train import train

    root = Path(tempfile.mkdtemp(prefix="test-runs-"))
    data = write_tiny_zip(root / "tiny.zip")
    count = itertools.count()

    def run(overrides, seed: int):
        folder = root / f"r{next(count)}"
        folder.mkdir()
        return train(tiny_config(data, *overrides, f"seed={seed}"), run_dir=folder), folder

    rows = {}
    for name, overrides in CHOICES.items():
        run(overrides, 0)  # untimed: first-use costs (the bundled file read, kernels)
        times = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            _, folder = run(overrides, 0)
            times.append(time.perf_counter() - t0)
        accs = [run(overrides, s)[0].summary["test_acc"] for s in args.seeds]
        size = (folder / "last.safetensors").stat().st_size / 1e6
        rows[name] = statistics.median(times)
        print(f"{name}: {rows[name]:.2f} s a run (median of {args.rounds}), weights {size:.1f} MB, "
              f"test accuracy {' / '.join(f'{100 * a:.0f}%' for a in accs)} (seeds {args.seeds})")
    fast, slow = rows.values()
    print(f"ratio of run time, MobileNetV3-Small / ResNet-18: {fast / slow:.2f}")


if __name__ == "__main__":
    main()
