"""A 2-D map of a dataset: PCA of small greyscale thumbnails plus class fractions.

>>> proj = projection(ds, stats)       # DataFrame, index image_id, columns pc1, pc2
>>> proj.join(stats.per_image)         # ready for a scatter plot

Images that look alike and carry alike labels land near each other; outliers (alien images,
blank or saturated frames, odd labels) land apart. Cached on disk by the dataset fingerprint.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from PIL import Image

from .. import cache
from ..data.dataset import SegDataset
from ..stats import DatasetStats

PROJECTION_VERSION = 2
THUMB = 16  # thumbnails are THUMB x THUMB: enough for layout and brightness, cheap for thousands


def thumbnail_features(ds: SegDataset, ids: list[str], size: int = THUMB) -> np.ndarray:
    """float32 (N, size*size) greyscale thumbnails in [0, 1]; rows of unreadable images are 0."""
    def one(image_id: str) -> np.ndarray:
        try:
            img = ds.image(image_id)
        except Exception:  # reported by the stats pass; a blank row keeps the others aligned
            return np.zeros(size * size, np.float32)
        grey = Image.fromarray(img).convert("L").resize((size, size), Image.Resampling.BOX)
        return np.asarray(grey, np.float32).ravel() / 255.0

    with ThreadPoolExecutor(4) as pool:
        rows = list(pool.map(one, ids))
    return np.stack(rows) if rows else np.zeros((0, size * size), np.float32)


def _features(ds: SegDataset, stats: DatasetStats) -> np.ndarray:
    """Thumbnails and class fractions, each block scaled to unit total variance so neither
    dominates just because it has more columns."""
    thumbs = thumbnail_features(ds, stats.ids)
    frac = stats.per_image.filter(like="frac_")
    # Unlabeled images have no fractions: give them the labeled mean, so that their place on
    # the map comes from how they look, not from a made-up "no classes at all" label.
    frac = frac.fillna(frac.mean()).fillna(0.0).to_numpy(np.float32)
    blocks = []
    for block in (thumbs, frac):
        if block.shape[1] == 0:
            continue
        centred = block - block.mean(0)
        scale = np.sqrt((centred ** 2).sum(1).mean()) or 1.0
        blocks.append(centred / scale)
    return np.concatenate(blocks, axis=1)


def projection(ds: SegDataset, stats: DatasetStats, seed: int = 0, use_cache: bool = True) -> pd.DataFrame:
    """DataFrame (index image_id in ``stats.ids`` order) with float columns pc1, pc2."""
    key = f"{ds.fingerprint()}-v{PROJECTION_VERSION}-s{seed}"
    hit = cache.load("projection", key) if use_cache else None
    if hit is not None and list(hit["meta"]["ids"]) == list(stats.ids):
        coords = hit["coords"]
    else:
        coords = _pca2(_features(ds, stats), seed)
        cache.save("projection", key, {"coords": coords}, meta={"ids": list(stats.ids)})
    return pd.DataFrame(coords, columns=["pc1", "pc2"], index=pd.Index(stats.ids, name="image_id"))


def _pca2(x: np.ndarray, seed: int) -> np.ndarray:
    """float32 (N, 2); degenerate inputs (under 2 images or features) give zeros."""
    if len(x) < 2 or x.shape[1] < 2:
        return np.zeros((len(x), 2), np.float32)
    from sklearn.decomposition import PCA
    return PCA(n_components=2, random_state=seed).fit_transform(x).astype(np.float32)
