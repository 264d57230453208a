"""The fine-tuning studio's engine: data, backbones, config, evaluation, the training loop, the
methods, runs and jobs (no Streamlit import anywhere). Read README's layout section for the order.

Importing the package registers every fine-tuning method (their config sections and hooks), so
any `RunConfig` made anywhere knows all of them.
"""

import engine.methods  # noqa: F401
