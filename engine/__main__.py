import os
import sys

from engine.cli import main

try:
    sys.exit(main())
except BrokenPipeError:  # `python -m engine presets | head`: the reader left; no traceback (Python's signal docs)
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(1)
