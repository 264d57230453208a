"""A run trained from the dashboard, watched in a browser on the same machine, against the same run
on the command line: what the live views cost the training.

    python benchmarks/dashboard_refresh.py [--epochs 6] [--rounds 2] [--refresh auto 1]

Each round runs, one after another: the Quick demo preset on the bundled sample for `--epochs`
epochs as a `python -m engine train` process, then the same run started from the dashboard
(`run_app.py` on a free port, headless Chromium via Playwright: Model and methods -> Epochs ->
Train -> Start training, the Train page left open until the run finishes) once per `--refresh`
interval ("auto" = the dashboard's own choice, a number = STUDIO_LIVE_REFRESH_S seconds). Every run
picks its CPU threads automatically, as a user's does (OMP_NUM_THREADS and BENCH_THREADS are not
passed on). Printed per run: the summary's wall time (from process start on the command line, from
the run's start in the dashboard) and loop time (the epochs and their evaluations alone), its training
img/s (first epoch excluded) and CPU threads, and the CPU seconds each process used: the command
line's, the dashboard server's (training included) and the browser's, from the click on Start
training to the finish banner; then, per interval, the ratios to the command line's runs of the same
rounds. Needs Playwright, psutil and Chromium (`apt-get install chromium`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.devices import EARLY_THREADS_CHECK_S  # noqa: E402
from tools.browser import (CHROMIUM, CHROMIUM_ARGS, FINISHED, free_port, go, open_app, settle,  # noqa: E402
                           start_app, stop_app)

SAMPLE = ROOT / "assets" / "sample_textures.zip"


def summary_row(summary: dict) -> dict:
    """What the comparison reads from a run's summary.json."""
    changes = summary.get("cpu_threads_changes") or []
    return {"wall_s": summary["wall_time_s"], "loop_s": summary["loop_wall_time_s"], "img_s": summary.get("train_images_per_sec"),
            "threads": summary.get("cpu_threads"), "busy_at_start": summary.get("cpu_busy_at_start"),
            "changes": [(c["after_epoch"], c["threads"], c["busy"], c.get("early", False)) for c in changes],
            "val": summary.get("best_val_acc")}


def cli_run(work: Path, epochs: int) -> dict:
    """The Quick demo as a command-line process; its summary's fields."""
    out = work / "cli_run"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "engine", "train", "--preset", "quick_demo", "--data", str(SAMPLE),
                    "--epochs", str(epochs), "--out", str(out), "--data-dir", str(work / "cli"), "--quiet"],
                   cwd=ROOT, check=True, capture_output=True, timeout=1800)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {**summary_row(json.loads((out / "summary.json").read_text())), "cpu": {"command line": cpu}}


def cpu_seconds(procs) -> float:
    """User + system CPU seconds of `procs` so far (those gone meanwhile count 0)."""
    import psutil

    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def dashboard_run(work: Path, epochs: int, refresh: str, timeout_s: float = 1800.0) -> dict:
    """The Quick demo started from the dashboard in headless Chromium, the Train page open until the
    run finishes; its summary's fields."""
    import psutil
    from playwright.sync_api import sync_playwright

    data_dir, port = work / f"studio_{refresh}", free_port()
    data_dir.mkdir()
    env = {} if refresh == "auto" else {"STUDIO_LIVE_REFRESH_S": refresh}
    proc = start_app(port, data_dir, work / f"server_{refresh}.log", env)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = open_app(browser, f"http://127.0.0.1:{port}")
            settle(page)
            go(page, "Model and methods", "2 · Model and methods")
            box = page.get_by_label("Epochs", exact=True)
            box.fill(str(epochs))
            box.press("Enter")
            settle(page)
            go(page, "Train (live)", "3 · Train (live)")
            server = psutil.Process(proc.pid)
            others = [c for c in psutil.Process(os.getpid()).children(recursive=True) if c.pid != proc.pid]
            cpu0 = {"server": cpu_seconds([server]), "browser": cpu_seconds(others)}
            page.get_by_role("button", name="Start training").click()
            page.get_by_text(FINISHED).first.wait_for(timeout=timeout_s * 1000)
            cpu = {"server": cpu_seconds([server]) - cpu0["server"], "browser": cpu_seconds(others) - cpu0["browser"]}
            browser.close()
    finally:
        stop_app(proc)
    (path,) = (data_dir / "runs").glob("*/summary.json")
    return {**summary_row(json.loads(path.read_text())), "cpu": cpu}


def describe(row: dict) -> str:
    changes = "".join(f", to {t} {f'{EARLY_THREADS_CHECK_S:g} s into epoch {e + 1}' if early else f'after epoch {e}'}"
                      f" ({busy:.2f} CPUs busy)" for e, t, busy, early in row["changes"])
    cpu = ", ".join(f"{k} {v:.0f}" for k, v in row["cpu"].items())
    busy = "n/a" if row["busy_at_start"] is None else f"{row['busy_at_start']:.2f}"
    img_s = "n/a" if row["img_s"] is None else f"{row['img_s']:.0f}"
    return (f"wall {row['wall_s']:.1f} s, loop {row['loop_s']:.1f} s, train {img_s} img/s, {busy} CPUs busy at "
            f"the start, {row['threads']} thread(s) at the end"
            f"{changes and ' (threads changed' + changes[1:] + ')'}, best val {100 * row['val']:.1f}%; "
            f"CPU s: {cpu}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--refresh", nargs="+", default=["auto", "1"],
                    help='live redraw intervals to compare: "auto" (the dashboard\'s choice) or seconds')
    args = ap.parse_args()
    if not CHROMIUM.is_file():
        sys.exit(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set STUDIO_CHROMIUM)")
    for name in ("OMP_NUM_THREADS", "BENCH_THREADS"):  # the runs choose their threads as a user's do
        os.environ.pop(name, None)
    rows: dict[str, list[dict]] = {"cli": [], **{r: [] for r in args.refresh}}
    with tempfile.TemporaryDirectory(prefix="dashboard_refresh_") as tmp:
        for rnd in range(args.rounds):
            for kind in ["cli", *args.refresh]:
                work = Path(tmp) / f"round{rnd}_{kind}"
                work.mkdir()
                t0 = time.perf_counter()
                row = cli_run(work, args.epochs) if kind == "cli" else dashboard_run(work, args.epochs, kind)
                rows[kind].append(row)
                label = "command line" if kind == "cli" else f"dashboard, redraw {kind}{'' if kind == 'auto' else ' s'}"
                print(f"round {rnd}, {label}: {describe(row)} ({time.perf_counter() - t0:.0f} s in all)", flush=True)
                shutil.rmtree(work, ignore_errors=True)
    cli = {k: statistics.mean(r[k] for r in rows["cli"]) for k in ("wall_s", "loop_s", "img_s")}
    print(f"\ncommand line: wall {cli['wall_s']:.1f} s, loop {cli['loop_s']:.1f} s, train {cli['img_s']:.0f} img/s "
          f"(mean of {args.rounds})")
    for kind in args.refresh:
        m = {k: statistics.mean(r[k] for r in rows[kind]) for k in ("wall_s", "loop_s", "img_s")}
        print(f"dashboard, redraw {kind}: wall {m['wall_s']:.1f} s, loop {m['loop_s']:.1f} s "
              f"({m['loop_s'] / cli['loop_s']:.2f}x the command line's), train {m['img_s']:.0f} img/s "
              f"({m['img_s'] / cli['img_s']:.2f}x)")


if __name__ == "__main__":
    main()
