"""CPU threads with `train.threads: 0` (automatic): the thread count before the run less the CPUs
other programs keep busy while it sets up, because threads that wait for a busy CPU slow every step
(on a 2-core CPU with one core busy, 2 threads trained 3-4x slower than 1). The caller's thread count
comes back after the run."""

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


def test_busy_cpus_are_left_to_their_programs():
    assert auto_cpu_threads(2, busy=1.0, cpus=2).threads == 1
    assert auto_cpu_threads(2, busy=1.9, cpus=2).threads == 1  # never fewer than one
    assert auto_cpu_threads(8, busy=3.0, cpus=8).threads == 5
    assert auto_cpu_threads(4, busy=2.0, cpus=8).threads == 3  # 4 cores, 8 logical CPUs: 6 free = 3 cores
    # a container allowed 2 CPUs on a 16-CPU host (8 cores): 7 CPUs busy elsewhere leave 9 free, so both threads
    assert auto_cpu_threads(2, busy=7.0, cpus=16, threads_per_cpu=0.5).threads == 2
    assert auto_cpu_threads(2, busy=14.0, cpus=16, threads_per_cpu=0.5).threads == 1  # 2 CPUs free: 1 core
    idle = auto_cpu_threads(4, busy=0.2, cpus=4)
    assert idle.threads == 4 and idle.note() == ""
    # a browser drawing the page keeps a CPU 0.5-0.7 busy: not a reason to give up a thread before the run;
    # during the run one busy program gets about 2/3 of a CPU beside the run's two threads: it is
    assert auto_cpu_threads(2, busy=0.7, cpus=2).threads == 2
    assert auto_cpu_threads(2, busy=0.66, cpus=2, keep=devices.KEEP_DURING_RUN).threads == 1
    assert auto_cpu_threads(2, busy=0.5, cpus=2, keep=devices.KEEP_DURING_RUN).threads == 2
    note = auto_cpu_threads(2, busy=1.0, cpus=2).note()
    assert "1 of 2 CPU threads" in note and "1.0 of the 2 CPUs busy when the run started" in note
    assert "Model and methods page (train.threads)" in note, "the command line's key"
    from app.state import message_words

    assert message_words(note).endswith("on the Model and methods page."), "the dashboard's words"


def test_one_thread_is_not_measured(monkeypatch):
    monkeypatch.setattr(devices, "start_load_sample", lambda: pytest.fail("a 1-thread limit needs no measurement"))
    assert auto_cpu_threads(1).threads == 1


def test_the_own_process_is_not_counted():
    """Work this process does itself during the window (decoding, building the model) is not load."""
    import psutil

    me = psutil.Process()
    sample = devices.start_load_sample()
    own0 = me.cpu_times()
    a, b = torch.randn(300, 300), torch.randn(300, 300)
    t = time.perf_counter()
    while time.perf_counter() - t < 0.5:  # this process keeps a core busy
        a @ b
    busy = sample.busy(min_s=0.0)
    wall = time.perf_counter() - sample._t0
    everyone = (sample._busy_seconds() - sample._cpu0) / wall
    own1 = me.cpu_times()
    own = (own1.user + own1.system - own0.user - own0.system) / wall
    assert own > 0.3, own  # the loop did run on this process's account
    assert busy == pytest.approx(max(0.0, everyone - own), abs=0.1)  # (clock reads a moment apart)


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
    assert choice.busy >= 0.7  # the spinning process keeps one CPU busy (other work only adds)
    assert 1 <= choice.threads <= cpus - 1


def test_an_automatic_cpu_run_records_its_threads_and_gives_the_callers_back(tmp_path, monkeypatch):
    import engine.train as engine_train

    chosen = []
    def fake(limit=None, sample=None, min_s=0.0, **_):  # the run's setup asks with no limit; an epoch's end with one
        if limit is None:
            chosen.append(torch.get_num_threads())
        return devices.CpuThreads(1, 1.0, 2, 2)

    monkeypatch.setattr(engine_train, "auto_cpu_threads", fake)
    data = write_tiny_zip(tmp_path / "d.zip", per_class=6)  # what is checked is the threads: the fewest images
    (tmp_path / "run").mkdir(), (tmp_path / "run2").mkdir()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        s = train(tiny_config(data, "train.epochs=1"), run_dir=tmp_path / "run", work_dir=tmp_path / "w").summary
        assert chosen == [2] and s["cpu_threads"] == 1 and "1 of 2 CPU threads" in s["cpu_threads_note"]
        assert torch.get_num_threads() == 2, "the caller's thread count comes back"
        s = train(tiny_config(data, "train.epochs=1", "train.threads=1"), run_dir=tmp_path / "run2",
                  work_dir=tmp_path / "w").summary
        assert chosen == [2], "the user's own number is not measured"
        assert s["cpu_threads"] == 1 and s["cpu_threads_note"] == "" and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_threads_follow_the_load_epoch_by_epoch(monkeypatch):
    """At each epoch's end the load of that epoch sets the next epoch's threads: down when another
    program starts, back up when it ends; each change is in the summary and the live note."""
    from types import SimpleNamespace

    from engine.contract import Reporter
    from engine.train import retune_threads

    class Load:
        def __init__(self, busy):
            self.value, self.cpus = busy, [0, 1]

        def busy(self, min_s=0.0):
            return self.value

    loads = iter([Load(1.0), Load(0.0), Load(0.1)])  # what each next epoch will measure
    monkeypatch.setattr("engine.train.start_load_sample", lambda: next(loads))
    said = []
    reporter = Reporter()
    reporter.progress = lambda **f: said.append(f)
    ctx = SimpleNamespace(cpu_load=Load(0.0), cpu_threads_limit=2, epoch=0, summary={}, reporter=reporter)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        retune_threads(ctx)  # an idle epoch: no change
        assert torch.get_num_threads() == 2 and "cpu_threads_changes" not in ctx.summary
        ctx.epoch = 1
        retune_threads(ctx)  # another program kept a CPU busy during epoch 2
        assert torch.get_num_threads() == 1 and ctx.summary["cpu_threads"] == 1
        assert "1 of 2 CPU threads" in said[-1]["cpu_threads_note"] and "during epoch 2" in said[-1]["cpu_threads_note"]
        ctx.epoch = 2
        retune_threads(ctx)  # and stopped
        assert torch.get_num_threads() == 2 and ctx.summary["cpu_threads_note"] == "" and said[-1] == {
            "cpu_threads_note": ""}
        assert [(c["after_epoch"], c["threads"]) for c in ctx.summary["cpu_threads_changes"]] == [(2, 1), (3, 2)]
        retune_threads(SimpleNamespace(cpu_load=None))  # not automatic (or one thread): nothing to do
    finally:
        torch.set_num_threads(before)


def test_a_cpu_quota_caps_the_threads_of_runs_predictions_and_the_dashboard(tmp_path):
    """A container allowed fewer CPUs than the machine has (docker --cpus, cgroups; here the same limit
    through LOKY_MAX_CPU_COUNT, which joblib.cpu_count reads beside the quota and the affinity): torch's
    default of one thread per physical core would oversubscribe it. The command line and the engine
    lower torch's threads to the quota, an automatic run starts from it, and the dashboard's refresh
    interval and sidebar count it; an explicit `train.threads` is still the user's."""
    data = write_tiny_zip(tmp_path / "d.zip", per_class=6)  # what is checked is the threads: the fewest images
    code = f"""
import json, torch
from engine import devices
from engine.train import train
from conftest import tiny_config  # (it pins torch to one thread: set two after it)
from app import components
torch.set_num_threads(2)  # as PyTorch's default on a 2-core machine
assert devices.usable_cpus() == 1 and components.cpu_count() == 1 and devices.default_cpu_threads() == 1
assert devices.auto_cpu_threads().limit == 1
s = train(tiny_config({str(data)!r}, "train.epochs=1"), work_dir={str(tmp_path / 'w')!r}).summary
print(json.dumps({{"auto": s["cpu_threads"], "refresh": components.live_refresh_s(gpu=False)}}))
torch.set_num_threads(2)
s = train(tiny_config({str(data)!r}, "train.epochs=1", "train.threads=2"), work_dir={str(tmp_path / 'w')!r}).summary
print(json.dumps({{"explicit": s["cpu_threads"], "fit": devices.fit_threads_to_cpus()}}))
"""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "LOKY_MAX_CPU_COUNT": "1",
           "PYTHONPATH": os.pathsep.join([root, os.path.join(root, "tests"), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    import json

    auto, explicit = (json.loads(line) for line in out.stdout.strip().splitlines()[-2:])
    assert auto == {"auto": 1, "refresh": 3.0}
    assert explicit == {"explicit": 2, "fit": 1}


def test_a_burst_of_load_at_the_start_costs_seconds_not_an_epoch(tmp_path, monkeypatch):
    """The dashboard's browser draws the Train page right after the click on Start, so the load measured
    while the run sets up can hold a thread back; a check a few seconds into the first epoch (here at
    once) gives it back there, instead of after a whole epoch on fewer threads. The change is in the
    summary, marked early, and worded on Results."""
    import engine.train as engine_train
    from app.components import threads_changes_text

    class Load:
        def __init__(self, busy):
            self.value, self.cpus = busy, [0, 1]

        def busy(self, min_s=0.0):
            return self.value

    loads = iter([Load(1.0)] + [Load(0.0)] * 10)  # busy while the run sets up, idle from then on
    monkeypatch.setattr(engine_train, "start_load_sample", lambda: next(loads))
    monkeypatch.setattr(engine_train, "EARLY_THREADS_CHECK_S", 0.0)
    monkeypatch.setattr(devices, "usable_cpus", lambda: 2)
    data = write_tiny_zip(tmp_path / "d.zip", per_class=6)  # what is checked is the threads: the fewest images
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        s = train(tiny_config(data, "train.epochs=2"), work_dir=tmp_path / "w").summary
    finally:
        torch.set_num_threads(before)
    assert s["cpu_busy_at_start"] == 1.0  # one thread at the start ...
    assert s["cpu_threads_changes"] == [{"after_epoch": 0, "threads": 2, "busy": 0.0, "early": True}]  # ... two at once
    assert s["cpu_threads"] == 2 and s["cpu_threads_note"] == ""
    rounding = (" Another thread count rounds sums in another order: the same settings and seed can end a few "
                "points apart.")  # a new user's dashboard and command-line runs of one config differed, unexplained
    assert threads_changes_text(s["cpu_threads_changes"]) == (
        " Threads followed the load on the CPUs: 2 threads from 2 s into epoch 1." + rounding)
    assert threads_changes_text([{"after_epoch": 3, "threads": 1, "busy": 1.2}]) == (
        " Threads followed the load on the CPUs: 1 thread after epoch 3." + rounding)
