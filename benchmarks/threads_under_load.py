"""Automatic CPU threads against fixed ones while another program keeps one CPU busy.

The same short run (the sample at 64 px, ResNet-18, 2 epochs of batch 32, no OOD measurement) as a
whole CLI process with `train.threads` 2, 1 and 0 (automatic), `--rounds` times in turn, while a
busy loop in another process keeps one CPU busy; then once automatic on the idle machine. Prints the
train img/s and the threads each run used (its summary). Last, an automatic 8-epoch run with the busy
loop starting during it and ending before it does: its img/s per epoch and its thread changes.

    python benchmarks/threads_under_load.py [--rounds 2] [--busy-from 12] [--busy-for 15]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUSY = "import time\nt = time.time()\nwhile time.time() - t < 3600: pass"


def command(threads: int, out: Path, work: Path, epochs: int = 2) -> list[str]:
    return [sys.executable, "-m", "engine", "train", "--data", str(ROOT / "assets" / "sample_textures.zip"),
            "--epochs", str(epochs), "--image-size", "64", "--batch-size", "32", "--set", "eval.ood=false",
            "--set", f"train.threads={threads}", "--data-dir", str(work / "studio"), "--out", str(out), "--quiet"]


def one_run(threads: int, work: Path) -> dict:
    out = work / f"run_{threads}_{len(list(work.iterdir()))}"
    subprocess.run(command(threads, out, work), cwd=ROOT, check=True, capture_output=True)
    return json.loads((out / "summary.json").read_text())


def load_mid_run(work: Path, start_s: float, busy_s: float) -> dict:
    """An automatic 8-epoch run on the idle machine; a busy loop starts `start_s` seconds after the
    run and keeps one CPU busy for `busy_s` seconds. Returns the run's summary."""
    out = work / "mid_run"
    run = subprocess.Popen(command(0, out, work, epochs=8), cwd=ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    time.sleep(start_s)
    busy = subprocess.Popen([sys.executable, "-c", BUSY])
    time.sleep(busy_s)
    busy.kill()
    if run.wait() != 0:
        raise SystemExit("the mid-run case failed")
    return json.loads((out / "summary.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--busy-from", type=float, default=12.0, help="mid-run case: seconds before the busy loop")
    ap.add_argument("--busy-for", type=float, default=15.0, help="mid-run case: seconds the loop runs")
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
        s = load_mid_run(work, args.busy_from, args.busy_for)
        print(f"\nautomatic, 8 epochs, one CPU busy from {args.busy_from:g} s for {args.busy_for:g} s: "
              f"img/s per epoch {[round(h['images_per_sec']) for h in s['history']]}; thread changes "
              f"{[(c['after_epoch'], c['threads'], c['busy']) for c in s.get('cpu_threads_changes', [])]} "
              "(after epoch, threads, busy CPUs)", flush=True)
    print("\n| machine | train.threads | threads used | train img/s |\n|---|---|---|---|")
    for load, threads, s in rows:
        print(f"| {load} | {threads or 'automatic'} | {s['cpu_threads']} | {s['train_images_per_sec']:.0f} |")


if __name__ == "__main__":
    main()
