"""Automatic CPU threads against fixed ones while another program keeps one CPU busy.

The same short run (the sample at 64 px, ResNet-18, 2 epochs of batch 32, no OOD measurement) as a
whole CLI process with `train.threads` 2, 1 and 0 (automatic), `--rounds` times in turn, while a
busy loop in another process keeps one CPU busy; then once automatic on the idle machine. Prints the
train img/s and the threads each run used (its summary).

    python benchmarks/threads_under_load.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUSY = "import time\nt = time.time()\nwhile time.time() - t < 3600: pass"


def one_run(threads: int, work: Path) -> dict:
    out = work / f"run_{threads}_{len(list(work.iterdir()))}"
    subprocess.run([sys.executable, "-m", "engine", "train", "--data", str(ROOT / "assets" / "sample_textures.zip"),
                    "--epochs", "2", "--image-size", "64", "--batch-size", "32", "--set", "eval.ood=false",
                    "--set", f"train.threads={threads}", "--data-dir", str(work / "studio"), "--out", str(out),
                    "--quiet"], cwd=ROOT, check=True, capture_output=True)
    return json.loads((out / "summary.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "studio").mkdir()
        busy = subprocess.Popen([sys.executable, "-c", BUSY])
        try:
            for r in range(args.rounds):
                for threads in (2, 1, 0):
                    s = one_run(threads, work)
                    rows.append(("one CPU busy", threads, s))
                    print(f"round {r}, one CPU busy, train.threads={threads}: {s['train_images_per_sec']:.1f} img/s "
                          f"on {s['cpu_threads']} threads (busy at start: {s.get('cpu_busy_at_start')})", flush=True)
        finally:
            busy.kill()
        s = one_run(0, work)
        rows.append(("idle", 0, s))
        print(f"idle, train.threads=0: {s['train_images_per_sec']:.1f} img/s on {s['cpu_threads']} threads "
              f"(busy at start: {s.get('cpu_busy_at_start')})", flush=True)
    print("\n| machine | train.threads | threads used | train img/s |\n|---|---|---|---|")
    for load, threads, s in rows:
        print(f"| {load} | {threads or 'automatic'} | {s['cpu_threads']} | {s['train_images_per_sec']:.0f} |")


if __name__ == "__main__":
    main()
