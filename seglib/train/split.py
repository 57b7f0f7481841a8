"""A seeded train/validation split, stratified so that rare classes land in both parts.

Each image's stratum is the rarest class it contains (rarest = in the fewest images); each
stratum is split in the same proportion. A class present in at least two images is in both
parts, which a plain random 90/10 split does not promise for a class in 1% of the images.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def stratified_split(ids: Sequence[str], presence: np.ndarray, val_fraction: float = 0.1,
                     seed: int = 0) -> tuple[list[str], list[str]]:
    """(train_ids, val_ids) in the order of ``ids``.

    Args:
        presence: bool (N, K), which scored classes each image contains.
    """
    ids = list(ids)
    n = len(ids)
    if n < 2:
        raise ValueError(f"need at least 2 labeled images to split, have {n}")
    presence = np.asarray(presence, bool)
    images_per_class = presence.sum(0)
    rarity = np.where(images_per_class > 0, images_per_class, np.iinfo(np.int64).max)
    # The rarest class present in each image; images with no scored class form their own stratum.
    masked = np.where(presence, rarity[None, :], np.iinfo(np.int64).max)
    stratum = np.where(presence.any(1), masked.argmin(1), -1)
    rng = np.random.default_rng(seed)
    val = np.zeros(n, bool)
    for s in np.unique(stratum):
        members = np.flatnonzero(stratum == s)
        rng.shuffle(members)
        k = int(round(len(members) * val_fraction))
        if len(members) >= 2:
            k = min(max(k, 1), len(members) - 1)  # both parts get one
        val[members[:k]] = True
    if not val.any():
        val[rng.integers(n)] = True
    if val.all():
        val[rng.integers(n)] = False
    return [i for i, v in zip(ids, val, strict=True) if not v], [i for i, v in zip(ids, val, strict=True) if v]
