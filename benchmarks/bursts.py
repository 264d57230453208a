"""Bursts kept in one split (engine.bursts) against bursts split frame by frame: how far each split's validation
and test figures stand from the accuracy on new bursts.

A generated camera-trap export (`tools.camera_trap`: one camera at one site, bursts of 3-5 frames of a deer, a fox
or nothing, 40% at night) is written twice with the same pixels: with the EXIF times a trail camera writes (the
studio keeps each burst in one split) and without them (each frame is split on its own, as before; the frames all
look alike, so the near-copy search does not keep them together either). First the bursts each split cuts. Then,
per seed, one Quick demo run on each, measured on its own validation and test images and on new bursts from
another export of the same camera (the user's OOD set, `data.ood_source`). Held-out figures that stand above the
accuracy on new bursts flatter the model.

    python benchmarks/bursts.py [--seeds 0 1 2] [--bursts 40] [--fresh 40]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import zipfile
from pathlib import Path

from common import ROOT, table
from first_model import one_run

sys.path.insert(0, str(ROOT))
from engine.data import load_dataset  # noqa: E402
from tools.camera_trap import camera_trap_export  # noqa: E402


def write(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def cut(path: Path, bursts: list[list[str]], work: Path) -> tuple[int, dict]:
    """(how many of `bursts` (file names in the zip at `path`) the studio's split puts in two splits, its split
    counts)."""
    rep = load_dataset(path, work, image_size=64).report
    split_of = {f: s for s, files in rep.split_files.items() for f in files}

    def where(name: str) -> str:  # the report's names may leave out the export's wrapper folder
        return split_of.get(name) or split_of[name.split("/", 1)[1]]

    return sum(len({where(f) for f in b}) > 1 for b in bursts), rep.split_counts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--bursts", type=int, default=40, help="bursts per class in the export trained on")
    ap.add_argument("--fresh", type=int, default=40, help="bursts per class in the export of new bursts")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        timed_files, bursts = camera_trap_export(args.bursts, seed=0, timed=True)
        plain_files, _ = camera_trap_export(args.bursts, seed=0, timed=False)
        fresh_files, _ = camera_trap_export(args.fresh, seed=1, timed=True, top="new bursts")
        zips = {"bursts kept in one split (EXIF times)": write(tmp / "timed.zip", timed_files),
                "frames split one by one (no EXIF times)": write(tmp / "plain.zip", plain_files)}
        fresh = write(tmp / "fresh.zip", {n.split("/", 1)[1]: b for n, b in fresh_files.items()})
        print(f"{len(timed_files)} pictures in {len(bursts)} bursts; new bursts: {len(fresh_files)} pictures")
        for name, path in zips.items():
            n, counts = cut(path, bursts, tmp / "work")
            print(f"{name}: {n} of {len(bursts)} bursts in two splits; validation "
                  f"{sum(counts['val'].values())}, test {sum(counts['test'].values())} pictures")
        results: dict[str, list[dict]] = {name: [] for name in zips}
        for seed in args.seeds:
            for name, path in zips.items():
                s = one_run(["--preset", "quick_demo", "--set", f"data.ood_source={fresh}"], seed, path)["summary"]
                results[name].append(s)
                print(f"seed {seed}, {name}: validation {100 * s['val_acc']:.1f}%, test {100 * s['test_acc']:.1f}%, "
                      f"new bursts {100 * s['ood_user_acc']:.1f}%", flush=True)
    rows = []
    for name, runs in results.items():
        def mean(key: str) -> float:
            return 100 * statistics.mean(r[key] for r in runs)

        def gap(key: str) -> str:
            gaps = [100 * (r[key] - r["ood_user_acc"]) for r in runs]
            return f"{statistics.mean(gaps):+.1f} ({' / '.join(f'{g:+.0f}' for g in gaps)})"

        rows.append([name, f"{mean('val_acc'):.1f}", f"{mean('test_acc'):.1f}", f"{mean('ood_user_acc'):.1f}",
                     gap("val_acc"), gap("test_acc")])
    print(table(["split", "validation %", "test %", "new bursts %", "validation - new (per seed)",
                 "test - new (per seed)"], rows))


if __name__ == "__main__":
    main()
