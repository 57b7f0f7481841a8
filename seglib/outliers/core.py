"""Run the registered detectors over a dataset and cache the flag table by dataset content."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from .. import cache
from .base import COLUMNS, DETECTORS, flags_frame, sort_flags
from .features import features_for

OUTLIERS_VERSION = 2  # 2: image_stats judged against neighbourhoods; near-copy sequences
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
           progress: Progress | None = None, options: dict[str, dict] | None = None) -> pd.DataFrame:
    """Flag suspicious images of ``ds``.

    Args:
        ds: a SegDataset.
        stats: its DatasetStats (``seglib.stats.compute_stats(ds)`` if None).
        detectors: names from ``DETECTORS`` (default: all). Unknown names raise ValueError.
        use_cache: read/write the on-disk cache keyed by ``ds.fingerprint()`` (and the options).
        progress: optional ``(done, total)`` callback for the pixel pass.
        options: keyword arguments per detector, e.g. ``{"near_duplicate": {"min_corr": 0.97}}``.

    Returns:
        DataFrame with columns image_id (str), detector (str), reason (str), score (float 0..1,
        higher = more suspicious), group (str or None); one row per (image, detector), most
        suspicious first.
    """
    names = _names(detectors)
    if stats is None:
        from ..stats import compute_stats
        stats = compute_stats(ds)
    options = {n: o for n, o in (options or {}).items() if o and n in names}
    key = f"{ds.fingerprint()}-v{OUTLIERS_VERSION}-{'+'.join(sorted(names))}"
    if options:
        key += "-" + hashlib.sha1(json.dumps(options, sort_keys=True).encode()).hexdigest()[:12]
    hit = cache.load("outliers", key) if use_cache else None
    if hit is not None:
        return _from_arrays(hit)
    features_for(ds, stats, progress)  # one pixel pass, shared by every detector below
    parts = [DETECTORS[n](ds, stats, **options.get(n, {})) for n in names]
    parts = [p for p in parts if len(p)]
    flags = sort_flags(pd.concat(parts, ignore_index=True)) if parts else flags_frame()
    cache.save("outliers", key, _to_arrays(flags), meta={"detectors": names, "dataset": str(ds.source),
                                                          "options": options})
    return flags


def replace_detector(flags: pd.DataFrame, name: str, rows: pd.DataFrame) -> pd.DataFrame:
    """``flags`` with detector ``name``'s rows replaced by ``rows`` (e.g. the same detector run
    with other options), most suspicious first."""
    parts = [p for p in (flags[flags["detector"] != name], rows) if len(p)]
    return sort_flags(pd.concat(parts, ignore_index=True)) if parts else flags_frame()
