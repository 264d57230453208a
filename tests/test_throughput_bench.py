"""The throughput benchmark's CPU clock: engine steps and bare steps alternate inside the engine's
progress report, and the engine's time must exclude the bare steps run there. Work added to the
engine's step must show up in the engine's time and nowhere else."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import throughput  # noqa: E402

EXTRA_S = 0.05


class SlowEngine(throughput.Interleaved):
    """`step_metrics` is called by the engine after each step's progress report, outside the bare
    step's timing: time spent there belongs to the engine."""

    def step_metrics(self, *args, **kwargs) -> None:
        time.sleep(EXTRA_S)


def _per_step(monkeypatch, reporter_cls) -> tuple[float, float]:
    made = []

    class Keep(reporter_cls):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append(self)

    monkeypatch.setattr(throughput, "Interleaved", Keep)
    args = argparse.Namespace(images=64, data="", batch_size=16, image_size=32, epochs=2, rounds=1,
                              compile=False, gpu_images=0, gpu_batch_size=0)
    throughput.measure("resnet18", torch.device("cpu"), args)
    (rep,) = made
    assert rep.engine_images == rep.bare_images == 2 * 4 * 16  # 2 timed epochs of 4 steps, both loops
    steps = rep.engine_images // 16
    assert len(rep.engine_laps) == len(rep.bare_laps) == steps
    assert sum(rep.engine_laps) == pytest.approx(rep.engine_s) and sum(rep.bare_laps) == pytest.approx(rep.bare_s)
    # the median step of each: a burst of load from another process on a 2-core machine (a CI run's other
    # test worker) lands on a step or two and moved the means by more than the tolerance once
    return statistics.median(rep.engine_laps), statistics.median(rep.bare_laps)


@pytest.mark.parametrize("reporter", ["plain", "slow engine"])
def test_engine_time_excludes_the_interleaved_bare_steps(monkeypatch, reporter):
    engine, bare = _per_step(monkeypatch, SlowEngine if reporter == "slow engine" else throughput.Interleaved)
    expected = EXTRA_S if reporter == "slow engine" else 0.0
    # a bare step here takes tens of milliseconds: counting it in the engine's time would add that much
    assert bare > 0.02
    assert engine - bare == pytest.approx(expected, abs=0.5 * max(bare, EXTRA_S) if expected else 0.5 * bare)
