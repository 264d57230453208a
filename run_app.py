"""Start the fine-tuning studio's dashboard: `python run_app.py [--host 127.0.0.1] [--port 8501]`.

Runs `streamlit run app/main.py` from the project root (so .streamlit/config.toml applies) with
the studio's flags. Extra arguments after `--` go to streamlit unchanged.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def build_command(host: str, port: int, extra: list[str] | None = None) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "main.py"),
        "--server.address", host,
        "--server.port", str(port),
        "--server.headless", "true",
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
        *(extra or []),
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Start the fine-tuning studio dashboard.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this computer only)")
    p.add_argument("--port", type=int, default=8501, help="port (default: 8501)")
    p.add_argument("--data-dir", default=None,
                   help="the engine's folder for runs, uploads and the run store (default: env STUDIO_DATA_DIR, else runs/)")
    args, extra = p.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]
    if args.data_dir:
        os.environ["STUDIO_DATA_DIR"] = str(Path(args.data_dir).expanduser().resolve())
    os.chdir(ROOT)  # .streamlit/config.toml is read from the working directory
    cmd = build_command(args.host, args.port, extra=extra)
    print(f"Fine-tuning studio: http://{'localhost' if args.host in ('127.0.0.1', '0.0.0.0') else args.host}:{args.port}",
          flush=True)
    if os.name == "nt":  # no exec on Windows: run it as a child and pass its exit code on
        import subprocess

        return subprocess.call(cmd)
    os.execv(sys.executable, cmd)  # the server replaces this process: signals reach it directly
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
