"""Words for messages the user reads: counts with the right plural."""
from __future__ import annotations


def plural(n: int, word: str, many: str = "") -> str:
    """`n` and `word`, with an "s" unless n is 1: plural(1, "epoch") -> "1 epoch", plural(3, "epoch") -> "3 epochs".
    `many` gives another plural form: plural(2, "batch", "batches") -> "2 batches"."""
    return f"{n} {word if n == 1 else many or word + 's'}"
