"""Ensembles of segmentation models, and what every prediction column reduces to per pixel.

Kinds:
- ``mean``: the mean of the members' class probabilities (soft voting);
- ``weighted``: a weighted mean; weights given by the user, or fitted on validation pixels by
  :func:`fit_weights` (the grid point of the weight simplex with the best mIoU). Fitted weights
  are scored cross-fitted (:class:`CrossFit`): an image that helped choose the weights would
  flatter them, so each fold of the fitting images is predicted with weights fitted on the others;
- ``vote``: majority vote of the members' argmax masks; ties go to the class with the higher
  mean probability. Its "confidence" is the share of members that voted for the winner.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

KINDS = ("mean", "weighted", "vote")


@dataclass(frozen=True)
class CrossFit:
    """Weights fitted without each fold of the fitting images: an image of fold k is predicted
    with ``weights[k]``, fitted on the other folds only, so no image scores weights it chose.
    Images outside every fold (never used for fitting) take the ensemble's own weights."""

    folds: tuple[tuple[str, ...], ...]          # image ids of each fold
    weights: tuple[tuple[float, ...], ...]      # per fold: weights fitted on the other folds

    def __post_init__(self):
        if len(self.folds) != len(self.weights) or len(self.folds) < 2:
            raise ValueError(f"cross-fitting needs 2 or more folds with one weight vector each, got "
                             f"{len(self.folds)} folds and {len(self.weights)} weight vectors")
        object.__setattr__(self, "_fold_of", {i: k for k, fold in enumerate(self.folds) for i in fold})

    def weights_for(self, image_id: str) -> tuple[float, ...] | None:
        k = self._fold_of.get(image_id)
        return None if k is None else self.weights[k]

    def identity(self) -> list:
        """What the predictions depend on (for cache keys)."""
        return [[list(f) for f in self.folds], [[round(w, 6) for w in ws] for ws in self.weights]]


@dataclass(frozen=True)
class Ensemble:
    """An ensemble column: its kind, its members (column names of models) and, for ``weighted``,
    one weight per member (normalised to sum 1; None = fit on validation data)."""

    kind: str
    members: tuple[str, ...]
    weights: tuple[float, ...] | None = None
    name: str = ""
    # How fitted weights were found ({"miou", "n_images", "n_pixels"}); not part of the identity.
    fit_info: dict | None = field(default=None, compare=False, hash=False, repr=False)
    # Per-fold weights for honest scores of fitted weights (None: every image uses ``weights``).
    crossfit: CrossFit | None = field(default=None, compare=False, hash=False, repr=False)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"ensemble kind {self.kind!r}: choose from {', '.join(KINDS)}")
        if not self.members:
            raise ValueError("an ensemble needs at least one member")
        if self.weights is not None:
            w = [float(v) for v in self.weights]
            if len(w) != len(self.members):
                raise ValueError(f"{len(w)} weights for {len(self.members)} members")
            if any(v < 0 or not math.isfinite(v) for v in w) or sum(w) <= 0:
                raise ValueError(f"weights must be non-negative with a positive sum, got {w}")
            object.__setattr__(self, "weights", tuple(v / sum(w) for v in w))
        object.__setattr__(self, "members", tuple(self.members))
        if not self.name:
            object.__setattr__(self, "name", f"{self.kind} ensemble")

    @property
    def needs_fit(self) -> bool:
        return self.kind == "weighted" and self.weights is None

    def member_weights(self) -> tuple[float, ...]:
        if self.kind == "weighted":
            if self.weights is None:
                raise ValueError(f"{self.name}: weights not set (fit them first)")
            return self.weights
        return tuple(1.0 / len(self.members) for _ in self.members)


def summarize(probs: torch.Tensor, stride: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(labels int64 (B, H, W), confidence, normalised entropy) of probabilities (B, K, H, W);
    confidence and entropy at every ``stride``-th pixel of each axis (B, ceil(H / stride), ...):
    a column keeps no finer maps, and entropy is the costliest reduction of a pass.

    Entropy is divided by log K: 0 = all mass on one class, 1 = uniform over all classes."""
    conf, labels = probs.max(1)   # max(1) gives both; argmax(1) alone is several times slower on a CPU
    if stride == 1:
        return labels, conf, _entropy(probs)
    return labels, conf[:, ::stride, ::stride], _entropy(probs[:, :, ::stride, ::stride])


def _entropy(probs: torch.Tensor) -> torch.Tensor:
    """-sum p log p over dim 1, / log K. p log p of p = 0 is NaN here, set to 0: half the time
    of torch.special.entr, the biggest cost of a prediction pass after the models."""
    k = probs.shape[1]
    if k < 2:
        return torch.zeros_like(probs[:, 0])
    return (probs * probs.log()).nan_to_num_(0.0).sum(1).div_(-math.log(k))


def combine(ens: Ensemble, probs: Sequence[torch.Tensor], ids: Sequence[str] | None = None, stride: int = 1,
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ensemble's (labels, confidence, entropy) from its members' probabilities, in the
    order of ``ens.members``; confidence and entropy at every ``stride``-th pixel, as
    :func:`summarize`. With ``ids`` (the batch's image ids) a cross-fitted ensemble takes each
    image's fold weights."""
    if ens.crossfit is not None and ids is not None:
        return _combine_crossfit(ens, probs, ids, stride)
    return _combine(ens, probs, None, stride)


def _combine_crossfit(ens: Ensemble, probs: Sequence[torch.Tensor], ids: Sequence[str], stride: int = 1):
    groups: dict[tuple[float, ...], list[int]] = {}
    for i, image_id in enumerate(ids):
        groups.setdefault(ens.crossfit.weights_for(image_id) or ens.member_weights(), []).append(i)
    if len(groups) == 1:
        return _combine(ens, probs, next(iter(groups)), stride)
    device = probs[0].device
    out = None
    for weights, rows in groups.items():
        idx = torch.as_tensor(rows, device=device)
        got = _combine(ens, [p[idx] for p in probs], weights, stride)
        if out is None:
            out = [torch.empty((len(ids), *g.shape[1:]), dtype=g.dtype, device=device) for g in got]
        for dst, src in zip(out, got, strict=True):
            dst[idx] = src
    return tuple(out)


def _combine(ens: Ensemble, probs: Sequence[torch.Tensor], weights: tuple[float, ...] | None, stride: int = 1):
    if len(probs) != len(ens.members):
        raise ValueError(f"{ens.name}: {len(probs)} probability maps for {len(ens.members)} members")
    if ens.kind == "vote":
        votes = torch.zeros_like(probs[0])
        for p in probs:
            votes.scatter_add_(1, p.max(1, keepdim=True)[1], torch.ones_like(p[:, :1]))
        mean = torch.stack(list(probs)).mean(0)
        labels = (votes + 0.5 * mean).max(1)[1]   # mean < 1: it only breaks ties between equal counts
        share = votes / len(probs)
        conf = share.gather(1, labels[:, None])[:, 0]
        if stride == 1:
            return labels, conf, _entropy(share)
        return labels, conf[:, ::stride, ::stride], _entropy(share[:, :, ::stride, ::stride])
    w = weights or ens.member_weights()
    mix = probs[0] * w[0]
    for p, wk in zip(probs[1:], w[1:], strict=True):
        mix = mix.add(p, alpha=wk)
    return summarize(mix, stride)


# --- fitting the weights ----------------------------------------------------------------------
def simplex_grid(m: int, max_points: int = 300, max_steps: int = 20) -> np.ndarray:
    """(P, m) weight vectors on a regular grid of the simplex (rows sum to 1), the finest with at
    most ``max_points`` points, plus equal weights; nearest to equal weights first, so that a tie
    goes to the least lopsided ensemble."""
    n = max_steps
    while n > 1 and math.comb(n + m - 1, m - 1) > max_points:
        n -= 1
    rows = []
    for bars in itertools.combinations(range(n + m - 1), m - 1):  # stars and bars
        edges = (-1, *bars, n + m - 1)
        rows.append([edges[i + 1] - edges[i] - 1 for i in range(m)])
    grid = np.asarray(rows, np.float64) / n
    grid = grid[~np.all(np.isclose(grid, 1.0 / m), axis=1)]   # equal weights go first, exactly
    grid = grid[np.argsort(((grid - 1.0 / m) ** 2).sum(1), kind="stable")]
    return np.vstack([np.full((1, m), 1.0 / m), grid])


def fit_weights(probs: Sequence[np.ndarray], labels: np.ndarray, scored: Sequence[int],
                max_points: int = 300) -> tuple[tuple[float, ...], float]:
    """The weights (on :func:`simplex_grid`) whose weighted mean of probabilities has the best
    mIoU over the given pixels, and that mIoU.

    Args:
        probs: one float (P, K) array per member: the class probabilities of P sampled pixels.
        labels: int (P,) true classes of those pixels (only pixels with a known class).
        scored: class ids that enter the mIoU.
    """
    from ..metrics import class_iou

    stack = torch.as_tensor(np.stack(probs), dtype=torch.float32)          # (M, P, K)
    y = torch.as_tensor(labels, dtype=torch.long)
    k = stack.shape[-1]
    scored = list(scored)
    best_w, best = None, -1.0
    for w in simplex_grid(len(probs), max_points):
        pred = torch.einsum("m,mpk->pk", torch.as_tensor(w, dtype=torch.float32), stack).max(1)[1]
        cm = torch.bincount(y * k + pred, minlength=k * k).reshape(k, k).numpy()
        iou = class_iou(cm)[scored]
        score = float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0
        if score > best + 1e-12:
            best_w, best = w, score
    return tuple(float(v) for v in best_w), best


def sample_pixels(masks: torch.Tensor, per_image: int, generator: torch.Generator,
                  num_classes: int) -> list[torch.Tensor]:
    """Flat indices of up to ``per_image`` random pixels with a known class, one tensor per
    image of ``masks`` (B, H, W): the same pixels are then taken from every member."""
    picks = []
    for m in masks.reshape(len(masks), -1):
        valid = torch.nonzero((m >= 0) & (m < num_classes))[:, 0]
        if len(valid) > per_image:
            valid = valid[torch.randperm(len(valid), generator=generator)[:per_image]]
        picks.append(valid)
    return picks


def take_pixels(values: torch.Tensor, picks: list[torch.Tensor]) -> np.ndarray:
    """The picked pixels of (B, K, H, W) probabilities as (P, K), or of (B, H, W) masks as (P,)."""
    flat = values.reshape(*values.shape[:2], -1) if values.ndim == 4 else values.reshape(len(values), 1, -1)
    out = torch.cat([flat[i][:, idx].T for i, idx in enumerate(picks)])
    return (out if values.ndim == 4 else out[:, 0]).numpy()
