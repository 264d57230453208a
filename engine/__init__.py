"""The fine-tuning studio's engine: data, backbones, config, evaluation, the training loop, the
methods, runs and jobs (no Streamlit import anywhere). Read README's layout section for the order.

Importing the package registers every fine-tuning method (their config sections and hooks), so
any `RunConfig` made anywhere knows all of them.
"""

import sys

try:
    import engine.methods  # noqa: F401  (imports torch: seconds)
except KeyboardInterrupt:
    if sys.argv[:1] != ["-m"]:  # a library import: the caller's interrupt
        raise
    # `python -m engine` is starting (argv[0] is "-m" while Python locates the module): Ctrl-C during
    # torch's import ends with a word, not a traceback of the import machinery (engine/__main__.py
    # does the same once the package is loaded)
    print("\ninterrupted", file=sys.stderr)
    raise SystemExit(130) from None
