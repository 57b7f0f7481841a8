"""A mask proposed by a click tool (SAM 2), shown before it is applied: the prompts so far, the
mask they give, and each earlier state, so a click can be taken back without touching the
working mask. Applying it gives its pixels the chosen class as one undoable step.

>>> prop = Proposal("00012", "sam2")
>>> prop.push([Click(120, 80, True)], None, sam.segment(image, "00012", [Click(120, 80, True)]))
>>> prop.back()                     # the click before
>>> prop.apply(work, class_id=3)    # pixels changed; work.step_back() undoes it
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .clicks import Click


@dataclass
class Proposal:
    image_id: str
    tool: str                                  # what the applied step records: "sam2"
    clicks: list[Click] = field(default_factory=list)
    box: tuple[float, float, float, float] | None = None
    result: object = None                      # the tool's result: .box (raster Box), .pixels (bool)
    _before: list = field(default_factory=list, repr=False)

    @property
    def empty(self) -> bool:
        return self.result is None

    @property
    def area(self) -> int:
        return 0 if self.result is None else int(np.count_nonzero(self.result.pixels))

    def push(self, clicks: list[Click], box, result) -> None:
        """The prompts after one more click or a box, and the mask they give."""
        self._before.append((self.clicks, self.box, self.result))
        self.clicks, self.box, self.result = list(clicks), box, result

    def back(self) -> bool:
        """Take the last prompt back; False when there is none."""
        if not self._before:
            return False
        self.clicks, self.box, self.result = self._before.pop()
        return True

    def clear(self) -> None:
        self.clicks, self.box, self.result = [], None, None
        self._before.clear()

    def apply(self, work, class_id: int) -> int:
        """Give the proposed pixels ``class_id`` in the working mask, one undoable step; pixels
        changed. The proposal is cleared."""
        if self.result is None:
            return 0
        box, pixels = self.result.box, np.asarray(self.result.pixels, bool)
        new = np.array(work.mask[box.slices], np.uint8, copy=True)
        new[pixels] = int(class_id)
        changed = work.edit_box(box, new, self.tool)
        self.clear()
        return changed
