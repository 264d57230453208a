import os
import sys

try:
    from engine.cli import main  # imports torch: seconds, and a Ctrl-C may come during them

    sys.exit(main())
except BrokenPipeError:  # `python -m engine presets | head`: the reader left; no traceback (Python's signal docs)
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(1)
except KeyboardInterrupt:  # Ctrl-C outside a one-process training run (which records what it kept): no traceback
    print("\ninterrupted", file=sys.stderr)
    sys.exit(130)
