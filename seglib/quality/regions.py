"""What a per-image score misses: label errors found region by region from a model's probabilities.

A softmin score over pixels sees *that* an image disagrees with the model, not *how*. Real
annotators' errors have shapes, and each shape has its own check here, on one image's label and
the out-of-fold probabilities of a model that never saw it:

- **dropped**: a connected region the model confidently gives class c where the label has no c
  anywhere near (the object was left unlabeled): "a car of 1,240 px that the label calls road".
- **swapped**: a connected region of the label, class c, that the model confidently calls
  another class over most of its area (the region was given the wrong class).
- **boundary**: along the label's edges, the signed distance to the model's edges, fitted as a
  per-class offset (the label's class reaches beyond the model's edge everywhere: dilated; stops
  short everywhere: eroded) plus one shift shared by every class (the whole mask moved), and the
  spread left over (a coarse or sloppy outline). A model's edges are never exact; what counts is
  a displacement that is the same along a whole edge, which noise is not.

:func:`find_regions` returns the findings (each with its pixels' box, a packed mask and words)
and :class:`Measures`, the few numbers the dataset-level scoring compares across images.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

NOT_SCORED = 255       # label value of pixels that are never an issue (unknown, ignored, padding)
CONFIDENT = 0.8        # the model's probability for "the model sees class c here"
SWAPPED_SHARE = 0.5    # a labeled region is swapped when the model calls this much of it another class
DROPPED_TOUCH = 0.25   # a region is dropped when at most this share of its ring is labeled its class
MAX_OFFSET = 12.0      # boundary distances beyond this are other errors (dropped, swapped), not an edge
MIN_EDGE_PX = 40       # a class's edge shorter than this gives no boundary fit


def min_region_px(h: int, w: int) -> int:
    """Regions smaller than this are noise: 16 px, or a ten-thousandth of a big image."""
    return max(16, int(1e-4 * h * w))


@dataclass
class Finding:
    kind: str                 # "dropped" | "swapped"
    label_class: int          # what the label says there
    model_class: int          # what the model says there
    pixels: int
    confidence: float         # the model's mean probability of model_class over the region
    box: tuple[int, int, int, int]   # y0, x0, y1, x1 (exclusive) in the image
    packed: np.ndarray        # np.packbits of the region's mask inside ``box``
    words: str = ""

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        """bool (H, W): the region's pixels."""
        y0, x0, y1, x1 = self.box
        out = np.zeros(shape, bool)
        out[y0:y1, x0:x1] = np.unpackbits(self.packed, count=(y1 - y0) * (x1 - x0)).reshape(y1 - y0, x1 - x0)
        return out

    floor: int = 16           # the image's noise floor (min_region_px) the severity is relative to

    @property
    def severity(self) -> float:
        """0..1: confident and big. A region of 4x the noise floor at full confidence is ~0.6."""
        return float(self.confidence * (1.0 - np.exp(-self.pixels / (4.0 * self.floor))))


@dataclass
class Edge:
    """The boundary fit: label edge = model edge + offset[c] + shift . normal, per edge pixel."""

    offsets: dict[int, float]     # class -> px the label's class reaches beyond the model's edge (< 0: short of it)
    edge_px: dict[int, int]       # class -> edge pixels fitted
    coverage: dict[int, float]    # class -> share of its edge displaced on the offset's side by >= 1 px
    shift: tuple[float, float]    # (dy, dx) px the whole label lies from the model's edges
    spread: float                 # RMS px of what the fit leaves (a coarse or sloppy outline)
    n: int                        # edge pixels in the fit


@dataclass
class Measures:
    findings: list[Finding]
    edge: Edge | None
    shape: tuple[int, int]


def _components(mask: np.ndarray, min_px: int):
    """(labels, stats rows with area >= min_px and their component ids) of an 8-connected mask."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = [k for k in range(1, n) if stats[k, cv2.CC_STAT_AREA] >= min_px]
    return labels, stats, keep


def _region(labels: np.ndarray, stats: np.ndarray, k: int) -> tuple[tuple[int, int, int, int], np.ndarray]:
    x, y, w, h = (int(v) for v in stats[k, :4])
    return (y, x, y + h, x + w), labels[y:y + h, x:x + w] == k


def _dropped(y: np.ndarray, pred: np.ndarray, conf: np.ndarray, probs: np.ndarray, c: int, min_px: int,
             ring: np.ndarray) -> list[Finding]:
    cand = (pred == c) & (y != c) & (y != NOT_SCORED) & (conf >= CONFIDENT)
    if cand.sum() < min_px:
        return []
    labels, stats, keep = _components(cand, min_px)
    out = []
    h, w = y.shape
    for k in keep:
        (y0, x0, y1, x1), local = _region(labels, stats, k)
        # the ring: the region grown by 2 px, itself left out, in a box grown to hold it
        gy0, gx0, gy1, gx1 = max(0, y0 - 2), max(0, x0 - 2), min(h, y1 + 2), min(w, x1 + 2)
        grown = np.zeros((gy1 - gy0, gx1 - gx0), np.uint8)
        grown[y0 - gy0:y1 - gy0, x0 - gx0:x1 - gx0] = local
        around = cv2.dilate(grown, ring).astype(bool) & ~grown.astype(bool)
        labs = y[gy0:gy1, gx0:gx1][around]
        labs = labs[labs != NOT_SCORED]
        if labs.size and (labs == c).mean() > DROPPED_TOUCH:
            continue   # the label has c right beside it: an edge question, not a missing object
        under = y[y0:y1, x0:x1][local]
        under = under[under != NOT_SCORED]
        out.append(Finding("dropped", int(np.bincount(under).argmax()), c, int(local.sum()),
                           float(probs[c, y0:y1, x0:x1][local].mean()), (y0, x0, y1, x1),
                           np.packbits(local.reshape(-1)), floor=min_px))
    return out


def _swapped(y: np.ndarray, pred: np.ndarray, conf: np.ndarray, probs: np.ndarray, c: int,
             min_px: int) -> list[Finding]:
    labels, stats, keep = _components(y == c, min_px)
    out = []
    for k in keep:
        (y0, x0, y1, x1), local = _region(labels, stats, k)
        p = pred[y0:y1, x0:x1][local]
        sure = (p != c) & (conf[y0:y1, x0:x1][local] >= CONFIDENT)
        if sure.mean() < SWAPPED_SHARE:
            continue
        d = int(np.bincount(p[sure]).argmax())
        out.append(Finding("swapped", c, d, int(local.sum()), float(probs[d, y0:y1, x0:x1][local].mean()),
                           (y0, x0, y1, x1), np.packbits(local.reshape(-1)), floor=min_px))
    return out


def _edge_fit(y: np.ndarray, pred: np.ndarray, classes: list[int]) -> Edge | None:
    """Least squares of the signed label-to-model edge distance on [one-hot class, normal y, normal x]."""
    h, w = y.shape
    inner = np.zeros((h, w), bool)
    inner[1:-1, 1:-1] = True     # edges on the image border say nothing about displacement
    valid = y != NOT_SCORED
    valid_inner = cv2.erode(valid.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & inner
    rows, targets, which = [], [], []
    for j, c in enumerate(classes):
        lab = (y == c).astype(np.uint8)
        edge = lab.astype(bool) & ~cv2.erode(lab, np.ones((3, 3), np.uint8)).astype(bool) & valid_inner
        if edge.sum() < MIN_EDGE_PX:
            continue
        model = (pred == c).astype(np.uint8)
        if not model.any():
            continue
        outside = cv2.distanceTransform(1 - model, cv2.DIST_L2, 3)    # to the nearest model-c pixel
        inside = cv2.distanceTransform(model, cv2.DIST_L2, 3)         # to the nearest non-c pixel
        # An edge pixel on the model's own inner edge is displaced 0; one pixel outside it, 1.
        s = np.where(model.astype(bool), 1.0 - inside, outside)[edge]
        soft = cv2.GaussianBlur(lab.astype(np.float32), (0, 0), 1.5)
        gy, gx = np.gradient(soft)
        norm = np.hypot(gy, gx)[edge]
        ok = (norm > 1e-3) & (np.abs(s) <= MAX_OFFSET)
        if ok.sum() < MIN_EDGE_PX:
            continue
        ny, nx = -gy[edge][ok] / norm[ok], -gx[edge][ok] / norm[ok]   # outward: the label's c falls off
        rows.append(np.stack([ny, nx], 1))
        targets.append(s[ok])
        which.append(np.full(ok.sum(), j))
    if not rows:
        return None
    normals, s, which = np.concatenate(rows), np.concatenate(targets), np.concatenate(which)
    used = np.unique(which)
    design = np.concatenate([(which[:, None] == used[None, :]).astype(np.float64), normals], 1)
    coef, *_ = np.linalg.lstsq(design, s, rcond=None)
    resid = s - design @ coef
    offsets, edge_px, coverage = {}, {}, {}
    for col, j in enumerate(used):
        c = classes[j]
        part = s[which == j] - normals[which == j] @ coef[-2:]
        offsets[c] = float(coef[col])
        edge_px[c] = int((which == j).sum())
        coverage[c] = float((np.sign(coef[col]) * part >= 1.0).mean())
    return Edge(offsets, edge_px, coverage, (float(coef[-2]), float(coef[-1])), float(np.sqrt(np.mean(resid ** 2))),
                len(s))


def find_regions(label: np.ndarray, probs: np.ndarray, scored: list[int], background: int | None = None
                 ) -> Measures:
    """The findings of one image.

    Args:
        label: (H, W) int class ids; NOT_SCORED (255) where nothing is to be judged.
        probs: (K, H, W) float class probabilities of a model that never trained on the image.
        scored: the class ids that count (ignored classes left out).
        background: its edges are the other classes' edges; it is not fitted on its own.
    """
    y = np.asarray(label).astype(np.int64)
    probs = np.asarray(probs, np.float32)
    y = np.where(np.isin(y, scored), y, NOT_SCORED)
    pred, conf = probs.argmax(0), probs.max(0)
    h, w = y.shape
    floor = min_region_px(h, w)
    ring = np.ones((5, 5), np.uint8)
    findings: list[Finding] = []
    for c in scored:
        findings += _swapped(y, pred, conf, probs, c, floor)
    for c in scored:
        findings += _dropped(y, pred, conf, probs, c, floor, ring)
    findings = _without_repeats(findings, (h, w))
    present = [c for c in scored if c != background and (y == c).any()]
    return Measures(findings, _edge_fit(y, pred, present), (h, w))


def _without_repeats(findings: list[Finding], shape: tuple[int, int]) -> list[Finding]:
    """A region relabeled to another class shows as swapped (its label region) and as dropped (the
    model's region): keep the swapped one where the two cover the same pixels."""
    swapped = [f for f in findings if f.kind == "swapped"]
    if not swapped:
        return findings
    covered = np.zeros(shape, bool)
    for f in swapped:
        covered |= f.mask(shape)
    return swapped + [f for f in findings if f.kind == "dropped" and covered[f.mask(shape)].mean() < 0.5]
