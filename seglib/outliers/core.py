"""Run the registered detectors over a dataset and cache the flag table by dataset content."""
from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from .. import cache
from .base import COLUMNS, DETECTORS, flags_frame, sort_flags
from .features import features_for

OUTLIERS_VERSION = 1
Progress = Callable[[int, int], None]


def _names(detectors: Iterable[str] | None) -> list[str]:
    if detectors is None:
        return list(DETECTORS)
    names = [d.strip() for d in ([detectors] if isinstance(detectors, str) else detectors) if d.strip()]
    unknown = [d for d in names if d not in DETECTORS]
    if unknown:
        raise ValueError(f"unknown detector {', '.join(map(repr, unknown))}; known: {', '.join(DETECTORS)}")
    return list(dict.fromkeys(names))


def _to_arrays(df: pd.DataFrame) -> dict:
    return {"image_id": df["image_id"].to_numpy(str), "detector": df["detector"].to_numpy(str),
            "reason": df["reason"].to_numpy(str), "score": df["score"].to_numpy(np.float64),
            "group": df["group"].fillna("").to_numpy(str)}


def _from_arrays(hit: dict) -> pd.DataFrame:
    df = pd.DataFrame({c: hit[c] for c in COLUMNS})
    df["group"] = df["group"].astype(str).replace("", None)
    return flags_frame(df.to_dict("records"))


def detect(ds, stats=None, detectors: Iterable[str] | None = None, use_cache: bool = True,
           progress: Progress | None = None) -> pd.DataFrame:
    """Flag suspicious images of ``ds``.

    Args:
        ds: a SegDataset.
        stats: its DatasetStats (``seglib.stats.compute_stats(ds)`` if None).
        detectors: names from ``DETECTORS`` (default: all). Unknown names raise ValueError.
        use_cache: read/write the on-disk cache keyed by ``ds.fingerprint()``.
        progress: optional ``(done, total)`` callback for the pixel pass.

    Returns:
        DataFrame with columns image_id (str), detector (str), reason (str), score (float 0..1,
        higher = more suspicious), group (str or None); one row per (image, detector), most
        suspicious first.
    """
    names = _names(detectors)
    if stats is None:
        from ..stats import compute_stats
        stats = compute_stats(ds)
    key = f"{ds.fingerprint()}-v{OUTLIERS_VERSION}-{'+'.join(sorted(names))}"
    hit = cache.load("outliers", key) if use_cache else None
    if hit is not None:
        return _from_arrays(hit)
    features_for(ds, stats, progress)  # one pixel pass, shared by every detector below
    parts = [DETECTORS[n](ds, stats) for n in names]
    parts = [p for p in parts if len(p)]
    flags = sort_flags(pd.concat(parts, ignore_index=True)) if parts else flags_frame()
    cache.save("outliers", key, _to_arrays(flags), meta={"detectors": names, "dataset": str(ds.source)})
    return flags
