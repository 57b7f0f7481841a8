"""Losses for multiclass segmentation on smp.losses, and weighted sums of them.

A loss is written as a formula of terms: ``"focal+dice"``, ``"0.5*ce+1*dice"``,
``"tversky"``. Each term is one of :data:`LOSSES`; its options (focal gamma, Tversky alpha
and beta) come from :class:`LossConfig`.

Ignored pixels: unknown colours (255), classes the class map marks ``ignore`` and, with
``exclude_background``, the background class, are left out by every term: their target pixels
become 255 (every term gets ``ignore_index=255``), and region terms (dice, Jaccard, Tversky)
only average over the scored classes.

>>> cfg = LossConfig("focal+dice", gamma=2.0)
>>> loss_fn = build_loss(cfg, num_classes=5, scored=[0, 1, 2, 3, 4])
>>> loss = loss_fn(logits, masks)               # logits (B, K, H, W), masks (B, H, W) int64
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from segmentation_models_pytorch import losses as smp_losses
from torch import nn

from .metrics import IGNORE_INDEX

LOSSES = {
    "ce": "cross-entropy (class weights apply)",
    "focal": "focal loss, gamma focuses on hard pixels (smp FocalLoss, one-vs-rest per class)",
    "dice": "soft Dice over the scored classes",
    "jaccard": "soft Jaccard (IoU) over the scored classes",
    "tversky": "Tversky: alpha weighs false positives, beta false negatives",
    "lovasz": "Lovasz-softmax, a direct surrogate of mean IoU",
}
CLASS_WEIGHTING = ("none", "inverse", "median", "manual")

_TERM = re.compile(r"^\s*(?:(\d+(?:\.\d*)?|\.\d+)\s*\*\s*)?([a-z]+)\s*$")


class LossError(ValueError):
    """A loss formula or option that cannot be built; the message says what and why."""


@dataclass
class LossConfig:
    formula: str = "focal+dice"
    gamma: float = 2.0           # focal: 0 is plain (one-vs-rest) cross-entropy; 2 won on Mars
    tversky_alpha: float = 0.3   # weight of false positives
    tversky_beta: float = 0.7    # weight of false negatives: > alpha favours recall of small classes
    class_weighting: str = "none"
    manual_weights: list[float] = field(default_factory=list)
    exclude_background: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def parse_formula(formula: str) -> list[tuple[float, str]]:
    """``"0.5*focal + dice"`` -> [(0.5, "focal"), (1.0, "dice")]. Raises LossError."""
    terms = []
    for part in formula.lower().split("+"):
        m = _TERM.match(part)
        if not m:
            raise LossError(f"cannot read loss term {part.strip()!r} in {formula!r}; write e.g. 'focal+0.5*dice'")
        weight, name = float(m.group(1) or 1.0), m.group(2)
        if name not in LOSSES:
            raise LossError(f"unknown loss {name!r}; choose from {', '.join(LOSSES)}")
        if weight <= 0:
            raise LossError(f"loss {name!r} has weight {weight}; weights must be positive")
        terms.append((weight, name))
    if not terms:
        raise LossError("empty loss formula")
    return terms


def class_weights(pixels: Sequence[float], mode: str, scored: Sequence[int],
                  manual: Sequence[float] = ()) -> np.ndarray | None:
    """float (K,) weights from per-class pixel counts of the training split, or None.

    ``inverse``: 1 / frequency; ``median``: median frequency / frequency (Eigen and Fergus);
    ``manual``: as given, one per class id. Normalised so the scored classes average 1;
    unscored classes (ignored, background when excluded) and absent classes get 0."""
    if mode not in CLASS_WEIGHTING:
        raise LossError(f"unknown class weighting {mode!r}; choose from {', '.join(CLASS_WEIGHTING)}")
    if mode == "none":
        return None
    k = len(pixels)
    w = np.zeros(k)
    if mode == "manual":
        if len(manual) != k:
            raise LossError(f"manual class weights need {k} values (one per class id), got {len(manual)}")
        w[:] = manual
    else:
        px = np.asarray(pixels, np.float64)
        present = [c for c in scored if px[c] > 0]
        freq = px[present] / px[present].sum()
        w[present] = 1.0 / freq if mode == "inverse" else np.median(freq) / freq
    keep = np.zeros(k, bool)
    keep[list(scored)] = True
    w[~keep] = 0.0
    mean = w[keep & (w > 0)].mean() if (keep & (w > 0)).any() else 1.0
    return w / mean


class CombinedLoss(nn.Module):
    """sum_i weight_i * term_i(logits, target) over the parsed formula. Targets of unscored
    classes are mapped to ``ignore_index`` once, before the terms see them."""

    def __init__(self, terms: list[tuple[float, str, nn.Module]], unscored: Sequence[int], num_classes: int):
        super().__init__()
        self.weights = [w for w, _, _ in terms]
        self.names = [n for _, n, _ in terms]
        self.terms = nn.ModuleList([t for _, _, t in terms])
        lut = torch.arange(256, dtype=torch.long)
        lut[list(unscored)] = IGNORE_INDEX
        lut[num_classes:] = IGNORE_INDEX
        self.register_buffer("lut", lut, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = self.lut[target.clamp(0, 255)]
        logits = logits.float()  # region losses are unstable in half precision
        return sum(w * term(logits, target) for w, term in zip(self.weights, self.terms, strict=True))


def build_loss(cfg: LossConfig, num_classes: int, scored: Sequence[int], background: int | None = 0,
               pixels: Sequence[float] | None = None) -> CombinedLoss:
    """The loss module for ``num_classes`` model outputs.

    Args:
        scored: class ids that count (not ignored, not gaps in the class map).
        background: the class ``exclude_background`` leaves out.
        pixels: per-class pixel counts of the training split (for ``inverse``/``median`` weights).
    """
    scored = [c for c in scored if not (cfg.exclude_background and c == background)]
    if not scored:
        raise LossError("no class left to learn: every class is ignored or excluded")
    unscored = [c for c in range(num_classes) if c not in scored]
    if cfg.class_weighting in ("inverse", "median") and pixels is None:
        raise LossError(f"{cfg.class_weighting} class weights need the training split's pixel counts")
    w = class_weights(pixels if pixels is not None else np.ones(num_classes), cfg.class_weighting, scored,
                      cfg.manual_weights)
    if cfg.tversky_alpha < 0 or cfg.tversky_beta < 0 or cfg.gamma < 0:
        raise LossError("focal gamma and Tversky alpha/beta must be >= 0")
    weights = None if w is None else w.tolist()
    terms = []
    for weight, name in parse_formula(cfg.formula):
        if name == "ce":
            term = nn.CrossEntropyLoss(weight=None if w is None else torch.tensor(w, dtype=torch.float32),
                                       ignore_index=IGNORE_INDEX)
        elif name == "focal":
            # smp weighs classes only through class_weights: unscored classes get 0.
            fw = weights or [1.0 if c in scored else 0.0 for c in range(num_classes)]
            term = smp_losses.FocalLoss("multiclass", gamma=cfg.gamma, ignore_index=IGNORE_INDEX, class_weights=fw)
        elif name in ("dice", "jaccard"):
            cls = smp_losses.DiceLoss if name == "dice" else smp_losses.JaccardLoss
            # class_weights are indexed by class id; smp slices them by ``classes``.
            term = cls("multiclass", classes=scored, ignore_index=IGNORE_INDEX, class_weights=weights)
        elif name == "tversky":
            term = smp_losses.TverskyLoss("multiclass", classes=scored, ignore_index=IGNORE_INDEX,
                                          alpha=cfg.tversky_alpha, beta=cfg.tversky_beta,
                                          class_weights=weights)
        else:  # lovasz
            term = smp_losses.LovaszLoss("multiclass", ignore_index=IGNORE_INDEX)
        terms.append((weight, name, term))
    return CombinedLoss(terms, unscored, num_classes)

