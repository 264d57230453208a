"""Startup: the CLI's train path imports only what it uses, and summary.json's wall_time_s is
measured from the process's start (imports and decoding included)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UNUSED_BY_TRAIN = {"streamlit", "captum", "onnx", "onnxruntime", "onnxscript", "optuna", "altair"}


def test_process_start_is_before_the_first_line_runs():
    # engine/clock.py on its own (it imports nothing of the engine): the package's import is seconds of torch
    code = ("import time; t = time.time(); time.sleep(0.3); import importlib.util as u; "
            "s = u.spec_from_file_location('clock', 'engine/clock.py'); clock = u.module_from_spec(s); "
            "s.loader.exec_module(clock); print(t - clock.process_started_at())")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    before = float(out.stdout)
    assert 0 <= before < 5, before  # the interpreter's own start only; not the sleep, not the engine's import


def test_cli_train_imports_no_ui_or_export_packages_and_times_the_whole_process(tmp_path, tiny_zip):
    cmd = [sys.executable, "-X", "importtime", "-m", "engine", "train", "--data", str(tiny_zip), "--backbone",
           "resnet18", "--pretrained", "none", "--epochs", "1", "--image-size", "32", "--batch-size", "8",
           "--out", str(tmp_path / "run"), "--data-dir", str(tmp_path / "d"), "--device", "cpu", "--quiet",
           "--set", "eval.ood=false"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    imported = {m.group(1).split(".")[0] for m in re.finditer(r"^import time:.*\|\s+(\S+)$", out.stderr, re.M)}
    assert "torch" in imported  # the parse works
    assert not imported & UNUSED_BY_TRAIN, imported & UNUSED_BY_TRAIN
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    # the loop is timed inside the process; the process also imported torch and decoded the data first
    assert summary["wall_time_s"] >= summary["loop_wall_time_s"] + 0.3, summary


def test_the_dashboards_first_page_waits_for_no_torchvision(tmp_path):
    """Importing torchvision takes 1-2 s (it loads torch._dynamo): the first page (Data) a new user opens
    is drawn without it, and the Model page, which builds networks to count their parameters, then loads
    it. ImageNet weights of ResNet-18 in torch hub's cache (a file of that name there) change nothing: the
    default preset's bundled weights come first."""
    code = ("import sys; from streamlit.testing.v1 import AppTest; at = AppTest.from_file('app/main.py', "
            "default_timeout=120).run(); assert not at.exception, at.exception; "
            "assert not [c for c in at.caption if c.value.startswith('Starting the studio')], 'gone once loaded'; "
            "print('torchvision' in sys.modules); "
            "at.switch_page('app_pages/model.py').run(); print('torchvision' in sys.modules)")
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"weights")
    env = {**os.environ, "STUDIO_DATA_DIR": str(tmp_path / "studio"), "TORCH_HOME": str(tmp_path / "torch")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False", "True"], out.stdout


def test_the_dashboard_skips_streamlits_full_garbage_collection_after_every_rerun():
    """The live views rerun every 1-2 s in the process that trains; a gc.collect(2) after each rerun
    held the GIL for most of a run (a 20 s run took 77 s in the browser). Streamlit reads the
    project's .streamlit/config.toml from the working directory, which run_app.py makes the root."""
    code = "from streamlit import config; print(config.get_option('runner.postScriptGC'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stdout + out.stderr


def test_ctrl_c_while_the_engine_starts_ends_quietly(tmp_path):
    """Ctrl-C during the seconds of `import torch` (before any command runs) ends with a word, not a
    traceback of torch's import machinery, and the usual exit status of an interrupted program."""
    # the child starts with Ctrl-C's default action: a process that ignores SIGINT passes that on to the
    # programs it starts (Python then installs no KeyboardInterrupt handler), and an earlier test's library in
    # this worker may have: in CI the command then ran to its end, status 0, the signal unseen
    proc = subprocess.Popen([sys.executable, "-m", "engine", "runs", "--data-dir", str(tmp_path)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # once torch's libraries are mapped, the engine's import is under way (Python's own start-up is over) and
    # has a second or more of torch's Python modules ahead: the signal lands during it on any machine
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None and not _loads_torch(proc.pid):
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.strip() == "interrupted", (proc.returncode, err[-2000:])


def _loads_torch(pid: int) -> bool:
    """Whether process `pid` has mapped torch's C++ library (Linux's /proc/PID/maps)."""
    try:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False
