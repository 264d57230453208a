import os
import sys

# Sent to a file or a pipe, stdout is block-buffered while stderr is not: with `> log 2>&1` the epoch lines
# (stdout) landed after the warnings printed when the run ended (stderr). A line at a time keeps the order.
if hasattr(sys.stdout, "reconfigure"):
    sys.stdout.reconfigure(line_buffering=True)

try:
    from engine.cli import main  # imports torch: seconds, and a Ctrl-C may come during them

    sys.exit(main())
except BrokenPipeError:  # `python -m engine presets | head`: the reader left; no traceback (Python's signal docs)
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(1)
except KeyboardInterrupt:  # Ctrl-C outside a one-process training run (which records what it kept): no traceback
    print("\ninterrupted", file=sys.stderr)
    sys.exit(130)
