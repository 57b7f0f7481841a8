"""A 2-D map of a dataset: PCA of small greyscale thumbnails plus class fractions.

>>> proj = projection(ds, stats)       # DataFrame, index image_id, columns pc1, pc2
>>> proj.join(stats.per_image)         # ready for a scatter plot

Images that look alike and carry alike labels land near each other; outliers (alien images,
blank or saturated frames, odd labels) land apart. Cached on disk by the dataset fingerprint.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import cache
from ..data.dataset import SegDataset
from ..data.report import Problem
from ..stats import DatasetStats
from .features import THUMB as FEATURE_THUMB
from .features import Progress, compute_features

PROJECTION_VERSION = 4  # 4: thumbnails from the detectors' pixel pass
THUMB = 16  # thumbnails are THUMB x THUMB: enough for layout and brightness, cheap for thousands


def thumbnail_features(ds: SegDataset, ids: list[str], size: int = THUMB,
                       progress: Progress | None = None) -> tuple[np.ndarray, list[Problem]]:
    """float32 (N, size*size) greyscale thumbnails in [0, 1], and a problem for each image that
    could not be read (its row is NaN). They come from the detectors' pixel pass (memoised:
    the Review page reads every image once for the map and the detectors together); ``size``
    divides its 32x32 thumbnails."""
    f = compute_features(ds, list(ids), progress)
    k = FEATURE_THUMB // size
    if k * size != FEATURE_THUMB:
        raise ValueError(f"thumbnail size {size} does not divide {FEATURE_THUMB}")
    small = f.thumb.reshape(len(f), size, k, size, k).mean((2, 4), dtype=np.float32) / 255.0
    feats = np.full((len(ids), size * size), np.nan, np.float32)
    pos = {i: r for r, i in enumerate(ids)}
    feats[[pos[i] for i in f.ids]] = small.reshape(len(f), size * size)
    problems = []
    read = set(f.ids)
    for i in [i for i in ids if i not in read]:  # unreadable since the statistics pass: say why
        found = ds.load_pair(i)[2]
        problems += found or [Problem(ds.file_of(i), "cannot be read", "unreadable_image", i)]
    return feats, problems


def _features(thumbs: np.ndarray, stats: DatasetStats, rows: np.ndarray) -> np.ndarray:
    """Thumbnails and class fractions of the ``rows`` (bool over ``stats.ids``), each block
    scaled to unit total variance so neither dominates just because it has more columns."""
    frac = stats.per_image.filter(like="frac_")
    # Unlabeled images have no fractions: give them the labeled mean, so that their place on
    # the map comes from how they look, not from a made-up "no classes at all" label.
    frac = frac.fillna(frac.mean()).fillna(0.0).to_numpy(np.float32)[rows]
    thumbs = thumbs[rows]
    blocks = []
    for block in (thumbs, frac):
        if block.shape[0] == 0 or block.shape[1] == 0:
            continue  # no image (the mean of nothing is NaN) or no column
        centred = block - block.mean(0)
        scale = np.sqrt((centred ** 2).sum(1).mean()) or 1.0
        blocks.append(centred / scale)
    return np.concatenate(blocks, axis=1) if blocks else np.zeros((len(thumbs), 0), np.float32)


def projection(ds: SegDataset, stats: DatasetStats, seed: int = 0, use_cache: bool = True,
               progress: Progress | None = None) -> pd.DataFrame:
    """DataFrame (index image_id in ``stats.ids`` order) with float columns pc1, pc2;
    ``progress(done, total)`` follows the pixel pass when it has to run.

    An image that cannot be read any more (it changed since the statistics pass) has NaN
    coordinates and is reported on ``ds`` (``ds.report``, ``record_problems``), like the
    statistics pass reports its problems; the others are placed without it."""
    key = f"{ds.fingerprint()}-v{PROJECTION_VERSION}-s{seed}"
    hit = cache.load("projection", key) if use_cache else None
    if hit is not None and list(hit["meta"]["ids"]) == list(stats.ids):
        coords, problems = hit["coords"], [Problem(**p) for p in hit["meta"]["problems"]]
    else:
        thumbs, problems = thumbnail_features(ds, stats.ids, progress=progress)
        ok = ~np.isnan(thumbs).any(1)
        coords = np.full((len(stats.ids), 2), np.nan, np.float32)
        coords[ok] = _pca2(_features(thumbs, stats, ok), seed)
        cache.save("projection", key, {"coords": coords},
                   meta={"ids": list(stats.ids), "problems": [p.to_dict() for p in problems]})
    if problems:
        ds.record_problems(problems)
    return pd.DataFrame(coords, columns=["pc1", "pc2"], index=pd.Index(stats.ids, name="image_id"))


def _pca2(x: np.ndarray, seed: int) -> np.ndarray:
    """float32 (N, 2); fewer than 2 images or features leave nothing to project: all at 0."""
    if len(x) < 2 or x.shape[1] < 2:
        return np.zeros((len(x), 2), np.float32)
    from sklearn.decomposition import PCA
    return PCA(n_components=2, random_state=seed).fit_transform(x).astype(np.float32)
