"""Class rebalancing: per-image sampling weights, the class distribution they produce, and the
torch sampler that training uses, so the preview and the training loop see the same thing.

Modes:
    ``uniform``   every image weight 1.
    ``oversample`` images containing any of ``classes`` get weight ``factor`` (the same in
                  expectation as copying them ``factor`` times, as the Mars reports did).
    ``presence``  weight = max over the classes an image contains of (N / n_c) ** ``power``,
                  n_c = images containing class c: rare-class images are drawn more often.

>>> w = sample_weights(stats, ids, mode="oversample", classes=[4], factor=5)
>>> dist = class_distribution(stats, ids, w)      # pixel_share and image_share per class
>>> sampler = make_sampler(stats, ids, mode="oversample", classes=[4], factor=5, seed=0)
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .stats import DatasetStats

__all__ = ["MODES", "sample_weights", "class_distribution", "compare_distributions", "make_sampler",
           "rarest_classes", "sampler_code"]

MODES = ("uniform", "oversample", "presence")


def _counts(stats: DatasetStats, ids: Sequence[str]) -> np.ndarray:
    """(N, K) pixels per class of the class map for ``ids`` (rows in the order given)."""
    row = {i: k for k, i in enumerate(stats.ids)}
    missing = [i for i in ids if i not in row]
    if missing:
        raise KeyError(f"{len(missing)} ids are not in the statistics, e.g. {missing[0]!r}")
    return stats.counts[[row[i] for i in ids]][:, stats.class_map.ids].astype(np.float64)


def sample_weights(stats: DatasetStats, ids: Sequence[str], mode: str = "uniform",
                   classes: Sequence[int] = (), factor: float = 2.0, power: float = 0.5) -> np.ndarray:
    """float64 (N,) sampling weight of each id (relative; need not sum to 1).

    Ignored classes (``ignore`` in the class map) never raise a weight in ``presence`` mode."""
    if mode not in MODES:
        raise ValueError(f"unknown mode '{mode}'; choose one of {', '.join(MODES)}")
    counts = _counts(stats, ids)
    n = len(ids)
    if mode == "uniform" or n == 0:
        return np.ones(n)
    cmap_ids = stats.class_map.ids
    present = counts > 0
    if mode == "oversample":
        unknown = [c for c in classes if c not in cmap_ids]
        if unknown:
            raise ValueError(f"class ids {unknown} are not in the class map ({cmap_ids})")
        cols = [cmap_ids.index(c) for c in classes]
        hit = present[:, cols].any(1) if cols else np.zeros(n, bool)
        return np.where(hit, float(factor), 1.0)
    keep = np.array([not c.ignore for c in stats.class_map], bool)
    n_c = present.sum(0)
    rarity = np.where((n_c > 0) & keep, (n / np.maximum(n_c, 1)) ** power, 0.0)  # (K,)
    w = (present * rarity).max(1)
    return np.where(w > 0, w, 1.0)  # images with no counted class keep weight 1


def class_distribution(stats: DatasetStats, ids: Sequence[str], weights: np.ndarray | None = None) -> pd.DataFrame:
    """Expected class distribution of images drawn with probability proportional to ``weights``.

    Returns one row per class: id, name, color, ``pixel_share`` (expected share of the drawn
    pixels, ignored classes excluded from the denominator, as in ``stats.per_class``) and
    ``image_share`` (probability that a drawn image contains the class)."""
    counts = _counts(stats, ids)
    w = np.ones(len(ids)) if weights is None else np.asarray(weights, np.float64)
    q = w / w.sum() if w.sum() > 0 else w
    keep = np.array([not c.ignore for c in stats.class_map], bool)
    px = q @ counts                                   # expected pixels per class per draw
    denom = px[keep].sum()
    return pd.DataFrame({
        "id": stats.class_map.ids, "name": stats.class_map.names,
        "color": [c.color for c in stats.class_map],
        "pixel_share": px / denom if denom > 0 else np.zeros_like(px),
        "image_share": q @ (counts > 0),
    })


def compare_distributions(stats: DatasetStats, ids: Sequence[str], weights: np.ndarray) -> pd.DataFrame:
    """Long table (name, color, measure, when, share) of before (uniform) and after (``weights``)."""
    before = class_distribution(stats, ids).assign(when="before")
    after = class_distribution(stats, ids, weights).assign(when="after")
    both = pd.concat([before, after], ignore_index=True)
    return both.melt(id_vars=["id", "name", "color", "when"], value_vars=["pixel_share", "image_share"],
                     var_name="measure", value_name="share")


def make_sampler(stats: DatasetStats, ids: Sequence[str], mode: str = "uniform", classes: Sequence[int] = (),
                 factor: float = 2.0, power: float = 0.5, num_samples: int | None = None, seed: int | None = None):
    """``torch.utils.data.WeightedRandomSampler`` over positions 0..N-1 of ``ids`` (draws with
    replacement; ``num_samples`` defaults to N: one epoch sees as many images as there are)."""
    import torch
    from torch.utils.data import WeightedRandomSampler

    w = sample_weights(stats, ids, mode, classes, factor, power)
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    return WeightedRandomSampler(torch.as_tensor(w, dtype=torch.double), num_samples or len(ids),
                                 replacement=True, generator=gen)


def rarest_classes(stats: DatasetStats, n: int = 1) -> list[int]:
    """Ids of the ``n`` classes with the smallest pixel share (ignored classes left out): the
    usual first choice of classes to oversample."""
    per_class = stats.per_class()
    counted = per_class[~per_class["ignore"]].sort_values(["pixel_fraction", "id"], kind="stable")
    return [int(c) for c in counted["id"].head(n)]


def sampler_code(mode: str, classes: Sequence[int] = (), factor: float = 2.0, power: float = 0.5,
                 seed: int = 0) -> str:
    """The Python that builds the training sampler for these settings (only the arguments the mode uses)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode '{mode}'; choose one of {', '.join(MODES)}")
    args = {"uniform": "", "oversample": f", classes={[int(c) for c in classes]}, factor={factor}",
            "presence": f", power={power}"}[mode]
    return ("from seglib.sampling import make_sampler\n"
            f"sampler = make_sampler(stats, ids, mode={mode!r}{args}, seed={seed})")
