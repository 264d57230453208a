"""Driving the dashboard in a headless browser: start `run_app.py` on a free port, wait for it, and
the waits a Streamlit page needs. Used by the browser test (tests/test_e2e_browser.py) and the
dashboard benchmark (benchmarks/dashboard_refresh.py). Needs Playwright and Debian's Chromium
(`apt-get install chromium`; never `playwright install`), imported only when a browser is opened.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("STUDIO_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# the Train page's banner when a run ends: a success, or a warning when it stayed at guessing
FINISHED = re.compile(r"Finished(\. (Validation accuracy|Training ended)|, but: this run)")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(port: int, data_dir: Path, log_path: Path, env: dict | None = None) -> subprocess.Popen:
    """`python run_app.py --port PORT` with STUDIO_DATA_DIR=`data_dir`, its output appended to
    `log_path`; returns once the app answers its health check. Raises RuntimeError when the app
    exits first, TimeoutError after 120 s (the process is stopped before either is raised)."""
    env = {**os.environ, "STUDIO_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1", **(env or {})}
    with open(log_path, "a") as log:
        proc = subprocess.Popen([sys.executable, "run_app.py", "--port", str(port)], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
    except BaseException:
        stop_app(proc)
        raise
    return proc


def stop_app(proc: subprocess.Popen | None, timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds."""
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """Wait until Streamlit's /_stcore/health answers "ok". Raises RuntimeError when `proc` exits
    first, TimeoutError after `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with code {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.read().decode().strip() == "ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError("the app did not answer /_stcore/health in time")


def settle(page, timeout_ms: int = 120_000) -> None:
    """Wait until the app's script run has finished (stApp's data-test-script-state)."""
    page.wait_for_timeout(200)
    page.wait_for_function(
        "() => { const app = document.querySelector(\"[data-testid='stApp']\");"
        " return app && app.getAttribute('data-test-script-state') === 'notRunning'; }",
        timeout=timeout_ms)


def open_app(browser, url: str):
    """A new 1400 x 1000 page on `url`, once the app's frame is there."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.wait_for_selector("[data-testid='stApp']", timeout=60_000)
    return page


def go(page, title: str, heading: str) -> None:
    """Navigate inside the app with the sidebar, as a user clicks (a page load starts a new session, which
    restores the user's saved draft but not what is only in the tab's state, such as the open tab)."""
    page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
    page.get_by_role("heading", name=heading).wait_for(timeout=60_000)
    settle(page)
