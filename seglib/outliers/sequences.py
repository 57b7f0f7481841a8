"""Sequences of frames: near-copy groups that are consecutive images of a video, not copies.

Consecutive frames of a video look alike by nature. A group of near copies whose members are
consecutive in the dataset's order and whose ids differ only in a frame number
(``seq3/frame_0001`` ... ``seq3/frame_0004``, or npz rows ``00012`` ... ``00015``) is such a
sequence: the near-duplicate detector names it once ("frames seq3/frame_0001-0004 are a
sequence") instead of flagging every pair.
"""
from __future__ import annotations

import re

import numpy as np

_FRAME = re.compile(r"^(.*?)(\d+)(\D*)$")  # prefix, the last number, suffix


def frame_number(image_id: str) -> tuple[str, int, str, str] | None:
    """('seq3/frame_', 1, '', '0001') for 'seq3/frame_0001'; None for an id without a number."""
    m = _FRAME.match(image_id)
    return (m.group(1), int(m.group(2)), m.group(3), m.group(2)) if m else None


def is_sequence(ids: list[str], members: np.ndarray) -> bool:
    """Whether ``members`` (row indices into ``ids``, the dataset's order) are consecutive rows
    whose ids differ only in a rising frame number."""
    rows = np.sort(members)
    if len(rows) < 2 or rows[-1] - rows[0] + 1 != len(rows):
        return False
    frames = [frame_number(ids[r]) for r in rows]
    if any(f is None for f in frames):
        return False
    same_name = len({(f[0], f[2]) for f in frames}) == 1
    return same_name and all(b[1] > a[1] for a, b in zip(frames, frames[1:], strict=False))


def sequence_label(ids: list[str], members: np.ndarray) -> str:
    """'seq3/frame_0001-0004' for the rows of one sequence."""
    rows = np.sort(members)
    first, last = frame_number(ids[rows[0]]), frame_number(ids[rows[-1]])
    return f"{first[0]}{first[3]}{first[2]}-{last[3]}{last[2]}"
