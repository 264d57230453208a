"""Helpers shared by the benchmark scripts: config building, seeds, markdown tables."""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.config import RunConfig, apply_overrides  # noqa: E402

# STUDIO_BENCH_WORK gives side-by-side benchmark processes a work folder (decode cache, results JSON) each
WORK = Path(os.environ.get("STUDIO_BENCH_WORK") or ROOT / "runs" / "benchmarks")

if os.environ.get("BENCH_THREADS"):  # run_all.sh runs two benchmarks side by side, one thread each
    torch.set_num_threads(int(os.environ["BENCH_THREADS"]))


def config(*overrides: str) -> RunConfig:
    """A run config with `overrides`; its CPU threads pinned to this process's count (BENCH_THREADS,
    a script's --threads, or PyTorch's default), so that a benchmark measures at a fixed thread count
    rather than the engine's load-dependent automatic choice. An override can still set them."""
    return apply_overrides(RunConfig(), ["train.device=auto", f"train.threads={torch.get_num_threads()}", *overrides])


def median_s(fn, rounds: int) -> float:
    """Median wall seconds of `fn()` over `rounds` calls, after one untimed call."""
    fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def mean_std(xs: list[float]) -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "n/a"
    if len(xs) == 1:
        return f"{100 * xs[0]:.1f}"
    return f"{100 * statistics.mean(xs):.1f} ± {100 * statistics.stdev(xs):.1f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)
