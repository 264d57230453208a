"""Words for messages the user reads: counts with the right plural."""
from __future__ import annotations


def plural(n: int, word: str) -> str:
    """`n` and `word`, with an "s" unless n is 1: plural(1, "epoch") -> "1 epoch", plural(3, "epoch") -> "3 epochs".

    Only regular English plurals; a word with another plural form is written out by its caller."""
    return f"{n} {word}" + ("" if n == 1 else "s")
