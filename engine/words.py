"""Words for messages the user reads: counts with the right plural, names joined as a sentence, percentages
rounded as the charts round them."""
from __future__ import annotations

import math


def plural(n: int, word: str, many: str = "") -> str:
    """`n` and `word`, with an "s" unless n is 1: plural(1, "epoch") -> "1 epoch", plural(3, "epoch") -> "3 epochs".
    `many` gives another plural form: plural(2, "batch", "batches") -> "2 batches"."""
    return f"{n} {word if n == 1 else many or word + 's'}"


def percent_half_up(x: float) -> str:
    """A fraction as a whole percentage, halves rounded up as the charts' labels round them (d3-format):
    0.125 -> "13%" (Python's format gives "12%", and the per-class chart beside the words showed 13%)."""
    return f"{math.floor(100 * x + 0.5)}%"


def and_words(names: tuple[str, ...] | list[str]) -> str:
    """Names joined as a sentence says them: "a", "a and b", "a, b and c"."""
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
