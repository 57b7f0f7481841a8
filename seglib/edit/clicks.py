"""Interactive segmentation measured in clicks: the standard click simulator and NoC@85 / NoC@90.

>>> result = clicks_to_iou(tool, truth, thresholds=(0.85, 0.90), max_clicks=20)
>>> result.noc[0.90], result.ious             # clicks to reach 90% IoU (None: never), IoU after each

A *tool* is anything that turns the clicks so far into a mask: ``tool(clicks) -> bool (H, W)``,
each click a :class:`Click` (image pixel ``x``, ``y`` and whether it is positive). The simulator
puts each next click where the mask is most wrong, as the interactive-segmentation literature
does (Xu et al. 2016; RITM, SimpleClick): in the largest error region (false negatives or false
positives, whichever holds it), at its interior point farthest from the region's boundary,
positive when the region is missing object pixels, negative when it holds extra ones. Pixels the
truth marks as ignored count neither way.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

THRESHOLDS = (0.85, 0.90)
MAX_CLICKS = 20


@dataclass(frozen=True)
class Click:
    x: int
    y: int
    positive: bool


def iou(mask: np.ndarray, truth: np.ndarray, ignore: np.ndarray | None = None) -> float:
    """Intersection over union of two bool masks outside ``ignore`` (1.0 when both are empty)."""
    m, t = np.asarray(mask, bool), np.asarray(truth, bool)
    if ignore is not None:
        keep = ~np.asarray(ignore, bool)
        m, t = m & keep, t & keep
    union = np.count_nonzero(m | t)
    return 1.0 if union == 0 else np.count_nonzero(m & t) / union


def _largest_region(errors: np.ndarray) -> tuple[int, np.ndarray | None]:
    """(area, bool pixels) of the largest 8-connected region of ``errors`` (0, None when none)."""
    n, comp, stats, _ = cv2.connectedComponentsWithStats(errors.astype(np.uint8), connectivity=8)
    if n <= 1:
        return 0, None
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return int(stats[k, cv2.CC_STAT_AREA]), comp == k


def next_click(mask: np.ndarray, truth: np.ndarray, ignore: np.ndarray | None = None) -> Click | None:
    """The simulator's next click for the current ``mask`` against ``truth`` (bool (H, W)); None
    when nothing is wrong. The image border counts as a boundary, so a click is never put on it
    when an inner point exists."""
    m, t = np.asarray(mask, bool), np.asarray(truth, bool)
    keep = np.ones(t.shape, bool) if ignore is None else ~np.asarray(ignore, bool)
    missing, extra = t & ~m & keep, m & ~t & keep
    area_fn, fn = _largest_region(missing)
    area_fp, fp = _largest_region(extra)
    if fn is None and fp is None:
        return None
    positive = area_fn >= area_fp
    region = fn if positive else fp
    padded = np.pad(region, 1).astype(np.uint8)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return Click(int(x), int(y), bool(positive))


@dataclass
class ClickResult:
    """One object's run of the simulator: IoU after each click, and the clicks to reach each threshold."""

    ious: list[float] = field(default_factory=list)
    clicks: list[Click] = field(default_factory=list)
    noc: dict[float, int | None] = field(default_factory=dict)     # None: not reached within max_clicks
    seconds: list[float] = field(default_factory=list)              # the tool's time per click


def clicks_to_iou(tool: Callable[[Sequence[Click]], np.ndarray], truth: np.ndarray,
                  thresholds: Sequence[float] = THRESHOLDS, max_clicks: int = MAX_CLICKS,
                  ignore: np.ndarray | None = None) -> ClickResult:
    """Click on one object until the tool's mask reaches the highest threshold or ``max_clicks``
    are spent. NoC@t is the first click count whose IoU is at least ``t``."""
    import time

    truth = np.asarray(truth, bool)
    result = ClickResult(noc={float(t): None for t in thresholds})
    mask = np.zeros(truth.shape, bool)
    for n in range(1, max_clicks + 1):
        click = next_click(mask, truth, ignore)
        if click is None:   # already exact: every threshold is met at the clicks spent
            for t in thresholds:
                if result.noc[float(t)] is None:
                    result.noc[float(t)] = n - 1
            break
        result.clicks.append(click)
        start = time.perf_counter()
        mask = np.asarray(tool(list(result.clicks)), bool)
        result.seconds.append(time.perf_counter() - start)
        score = iou(mask, truth, ignore)
        result.ious.append(score)
        for t in thresholds:
            if result.noc[float(t)] is None and score >= t:
                result.noc[float(t)] = n
        if score >= max(thresholds):
            break
    return result


def summarise(results: Sequence[ClickResult], max_clicks: int = MAX_CLICKS) -> dict:
    """NoC@t averaged over objects (an object that never reaches t counts ``max_clicks``, as is
    usual), and the share of objects that never reach the highest threshold."""
    out: dict = {"objects": len(results)}
    if not results:
        return out
    thresholds = sorted(results[0].noc)
    for t in thresholds:
        spent = [r.noc[t] if r.noc[t] is not None else max_clicks for r in results]
        out[f"noc@{round(t * 100)}"] = float(np.mean(spent))
    top = thresholds[-1]
    out[f"failed@{round(top * 100)}"] = float(np.mean([r.noc[top] is None for r in results]))
    secs = [s for r in results for s in r.seconds]
    out["ms_per_click"] = 1000 * float(np.mean(secs)) if secs else 0.0
    return out
