"""seglib.words: counts in words."""
from __future__ import annotations

import pytest

from seglib.words import plural


@pytest.mark.parametrize(("count", "word", "said"), [
    (1, "epoch", "1 epoch"), (0, "epoch", "0 epochs"), (2, "step", "2 steps"), (1, "CPU process", "1 CPU process"),
    (4, "CPU process", "4 CPU processes"), (3, "class", "3 classes"), (2, "batch", "2 batches"),
    (1200, "labeled image", "1,200 labeled images"), (2, "GPU", "2 GPUs"), (2, "child", "2 children")])
def test_plural(count, word, said):
    many = {"child": "children", "batch": "batches"}.get(word)
    assert plural(count, word, many) == said
