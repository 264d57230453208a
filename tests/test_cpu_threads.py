"""CPU threads with `train.threads: 0` (automatic): PyTorch's default less the cores other programs
keep busy when the run starts, because threads that wait for a busy core slow every step (on a
2-core CPU with one core busy, 2 threads trained 3-4x slower than 1)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch

from engine import devices
from engine.devices import auto_cpu_threads
from engine.train import train
from conftest import tiny_config, write_tiny_zip


def test_busy_cores_are_left_to_their_programs():
    assert auto_cpu_threads(2, busy_cores=1.0).threads == 1
    assert auto_cpu_threads(2, busy_cores=1.9).threads == 1  # never fewer than one
    assert auto_cpu_threads(8, busy_cores=3.0).threads == 5
    idle = auto_cpu_threads(4, busy_cores=0.2)
    assert idle.threads == 4 and idle.note() == ""
    note = auto_cpu_threads(2, busy_cores=1.0).note()
    assert "1 of 2 CPU threads" in note and "1.0 cores busy" in note and "train.threads" in note


def test_the_own_process_is_not_counted_and_setup_time_is_the_window():
    """A sample started before work this process does itself (decoding, building the model) counts
    only other programs, and needs no wait when that work took longer than the minimum window."""
    import psutil

    sample = devices.start_load_sample()
    before, t0 = psutil.cpu_times(percpu=True), time.perf_counter()
    t = time.perf_counter()
    x = torch.randn(600, 600)
    while time.perf_counter() - t < 0.6:  # this process keeps one core busy
        x = x @ x.T / 600
    t = time.perf_counter()
    busy = sample.busy_cores(min_s=0.3)
    assert time.perf_counter() - t < 0.1, "the window had passed: no wait"
    after, wall = psutil.cpu_times(percpu=True), time.perf_counter() - t0
    everyone = sum((sum(a) - a.idle - getattr(a, "iowait", 0)) - (sum(b) - b.idle - getattr(b, "iowait", 0))
                   for i, (a, b) in enumerate(zip(after, before)) if i in sample.cpus) / wall
    assert everyone >= 0.8 and busy <= everyone - 0.7, (busy, everyone)  # our own core is left out


def test_one_thread_is_not_measured(monkeypatch):
    monkeypatch.setattr(devices.time, "sleep", lambda s: pytest.fail("a 1-thread limit needs no measurement"))
    assert auto_cpu_threads(1) == devices.CpuThreads(1, 0.0, 1)


def test_a_busy_process_is_measured():
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if cpus < 2:
        pytest.skip("needs two CPUs")
    spin = subprocess.Popen([sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<20: pass"])
    try:
        time.sleep(0.5)
        choice = auto_cpu_threads(cpus, min_s=0.5)
    finally:
        spin.kill()
    assert choice.busy_cores >= 0.7  # the spinning process keeps one core busy (other work only adds)
    assert 1 <= choice.threads <= cpus - 1


def test_an_automatic_cpu_run_records_its_threads(tmp_path, monkeypatch):
    import engine.train as engine_train

    monkeypatch.setattr(engine_train, "auto_cpu_threads", lambda sample=None: devices.CpuThreads(1, 1.0, 2))
    data = write_tiny_zip(tmp_path / "d.zip")
    (tmp_path / "run").mkdir(), (tmp_path / "run2").mkdir()
    before = torch.get_num_threads()
    try:
        s = train(tiny_config(data, "train.epochs=1"), run_dir=tmp_path / "run", work_dir=tmp_path / "w").summary
        assert s["cpu_threads"] == 1 and "1 of 2 CPU threads" in s["cpu_threads_note"]
        s = train(tiny_config(data, "train.epochs=1", "train.threads=1"), run_dir=tmp_path / "run2",
                  work_dir=tmp_path / "w").summary
        assert s["cpu_threads"] == 1 and s["cpu_threads_note"] == ""  # the user's own number: no note
    finally:
        torch.set_num_threads(before)
