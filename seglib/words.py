"""Counts in words for messages: "1 epoch", "2 epochs", "1,024 images", "4 CPU processes".

>>> plural(1, "epoch"), plural(30, "epoch"), plural(2, "CPU process"), plural(1200, "image")
('1 epoch', '30 epochs', '2 CPU processes', '1,200 images')
"""
from __future__ import annotations

__all__ = ["plural"]

# process -> processes, class -> classes, box -> boxes; not "ch" (epoch -> epochs): pass ``many`` for batch
_ES = ("s", "x")


def plural(count: int, word: str, many: str | None = None) -> str:
    """``count`` (thousands separated) and ``word``, in the plural unless ``count`` is 1;
    ``many`` spells an irregular plural."""
    if count == 1:
        return f"1 {word}"
    return f"{count:,} {many or word + ('es' if word.endswith(_ES) else 's')}"
