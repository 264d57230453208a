"""Start the fine-tuning studio's dashboard: `python run_app.py [--host 127.0.0.1] [--port 8501]`.

Runs `streamlit run app/main.py` from the project root (so .streamlit/config.toml applies) with
the studio's flags. Other arguments (before or after `--`) go to streamlit unchanged, except
Streamlit's own `--server.address` and `--server.port`, which are `--host` and `--port` by another
name: the login check and the printed address use them.
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


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def configure_access(host: str, no_auth: bool, env: dict | None = None) -> str | None:
    """Set STUDIO_HOST/STUDIO_ACCESS for the app; return an error message when it must not start.

    On 127.0.0.1 nobody else can connect, so there is no login. Bound to a network address, the
    studio requires an access control: a shared password (STUDIO_PASSWORD or `studio_password` in
    .streamlit/secrets.toml) or Streamlit's OIDC login (an [auth] section in secrets.toml), unless
    --no-auth is given, which prints a loud warning.
    """
    env = os.environ if env is None else env
    env["STUDIO_HOST"] = host
    if host in LOCAL_HOSTS:
        env.setdefault("STUDIO_ACCESS", "off")
        return None
    if no_auth:
        env["STUDIO_ACCESS"] = "off"
        print("\n" + "!" * 78 + f"\n WARNING: the studio listens on {host} WITHOUT any login. Anyone who can reach "
              "this\n machine can see, start, stop and delete every run. Use only on a trusted network.\n"
              + "!" * 78 + "\n", file=sys.stderr, flush=True)
        return None
    secrets = ROOT / ".streamlit" / "secrets.toml"
    text = secrets.read_text() if secrets.is_file() else ""
    if env.get("STUDIO_ACCESS", "") == "oidc" or "[auth]" in text:
        env["STUDIO_ACCESS"] = "oidc"
        return None
    if env.get("STUDIO_PASSWORD") or "studio_password" in text:
        env["STUDIO_ACCESS"] = "password"
        return None
    return (f"Refusing to listen on {host} without a login: anyone on the network could use the studio.\n"
            "Set a shared password (STUDIO_PASSWORD=... python run_app.py --host ...), configure an OIDC\n"
            "login in .streamlit/secrets.toml ([auth]), or pass --no-auth to run without one.")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Start the fine-tuning studio dashboard.")
    # Streamlit's own spellings are the same settings: taken here, so that the login check sees the
    # address the server will listen on and the address printed is the one it serves
    p.add_argument("--host", "--server.address", dest="host", default="127.0.0.1",
                   help="address to listen on (default: this computer only)")
    p.add_argument("--port", "--server.port", dest="port", type=int, default=8501, help="port (default: 8501)")
    p.add_argument("--data-dir", default=None,
                   help="the engine's folder for runs, uploads and the run store (default: env STUDIO_DATA_DIR, else runs/)")
    p.add_argument("--no-auth", action="store_true",
                   help="allow an exposed server without any login (anyone who can reach it can use it)")
    # everything else goes to Streamlit unchanged; `--` is dropped first, so that the address and port
    # are taken whichever side of it they are given
    args, extra = p.parse_known_args([a for a in (sys.argv[1:] if argv is None else argv) if a != "--"])
    problem = configure_access(args.host, args.no_auth)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    if args.data_dir:
        os.environ["STUDIO_DATA_DIR"] = str(Path(args.data_dir).expanduser().resolve())
    os.chdir(ROOT)  # .streamlit/config.toml is read from the working directory
    cmd = build_command(args.host, args.port, extra=extra)
    print(f"Fine-tuning studio: http://{'localhost' if args.host == '0.0.0.0' else args.host}:{args.port}",
          flush=True)
    if os.name == "nt":  # no exec on Windows: run it as a child and pass its exit code on
        import subprocess

        return subprocess.call(cmd)
    os.execv(sys.executable, cmd)  # the server replaces this process: signals reach it directly
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
