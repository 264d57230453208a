"""benchmarks/run_all.sh refuses an argument it does not know before it runs or writes anything: a typo
such as `--longonly` would otherwise start the hour-long default steps."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_run_all_refuses_an_unknown_argument_before_writing(tmp_path):
    results = tmp_path / "results"
    env = {**os.environ, "STUDIO_BENCH_RESULTS": str(results)}
    # its own process group: were the argument accepted, the benchmarks it starts are stopped with it
    proc = subprocess.Popen(["bash", str(ROOT / "benchmarks" / "run_all.sh"), "--longonly"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 2
    assert "usage: bash benchmarks/run_all.sh [--long | --long-only]" in err
    assert not results.exists()
