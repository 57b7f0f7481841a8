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


def _key(ds, names: list[str], options: dict) -> str:
    key = f"{ds.fingerprint()}-v{OUTLIERS_VERSION}-{'+'.join(sorted(names))}"
    if options:
        key += "-" + hashlib.sha1(json.dumps(options, sort_keys=True).encode()).hexdigest()[:12]
    return key


def cached_detections(ds, detectors: Iterable[str] | None = None,
                      options: dict[str, dict] | None = None) -> pd.DataFrame | None:
    """What :func:`detect` would return from its on-disk cache, or None when it would have to read
    the images (a page can say so instead of starting a pass)."""
    names = _names(detectors)
    hit = cache.load("outliers", _key(ds, names, {n: o for n, o in (options or {}).items() if o and n in names}))
    return None if hit is None else _from_arrays(hit)


def detect(ds, stats=None, detectors: Iterable[str] | None = None, use_cache: bool = True,
           progress: Progress | None = None, options: dict[str, dict] | None = None) -> pd.DataFrame:
    """Flag suspicious images of ``ds``.

    Args:
        ds: a SegDataset.
        stats: its DatasetStats (``seglib.stats.compute_stats(ds)`` if None).
        detectors: names from ``DETECTORS`` (default: all). Unknown names raise ValueError.
        use_cache: read/write the on-disk cache keyed by ``ds.fingerprint()`` (and the options).
        progress: optional ``(done, total)`` callback for the pixel passes: the shared one, then those of
            detectors that read the images again (overlap), as one count over all of them.
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
    key = _key(ds, names, options)
    hit = cache.load("outliers", key) if use_cache else None
    if hit is not None:
        return _from_arrays(hit)
    own = [n for n in names if getattr(DETECTORS[n], "reads_pixels", False)]  # detectors with a pass of their own
    passes = _pass_progress(progress, 1 + len(own))
    features_for(ds, stats, next(passes))  # one pixel pass, shared by every detector below
    parts = [DETECTORS[n](ds, stats, **options.get(n, {}), **({"progress": next(passes)} if n in own else {}))
             for n in names]
    parts = [p for p in parts if len(p)]
    flags = sort_flags(pd.concat(parts, ignore_index=True)) if parts else flags_frame()
    cache.save("outliers", key, _to_arrays(flags), meta={"detectors": names, "dataset": str(ds.source),
                                                          "options": options})
    return flags


def _pass_progress(progress: Progress | None, passes: int):
    """One ``(done, total)`` callback per pixel pass, reporting to ``progress`` as one bar over
    the images: pass k of n fills the bar from k/n to (k + 1)/n, so it reads "x / total images"
    throughout and reaches the total once, at the end of the last pass."""
    last = {"done": -1}

    def report(k: int, done: int, total: int) -> None:
        value = (k * total + done) // passes
        if value > last["done"]:   # the scaled count repeats when passes > 1: say each value once
            last["done"] = value
            progress(value, total)

    for k in range(passes):
        yield None if progress is None else (lambda done, total, k=k: report(k, done, total))


def replace_detector(flags: pd.DataFrame, name: str, rows: pd.DataFrame) -> pd.DataFrame:
    """``flags`` with detector ``name``'s rows replaced by ``rows`` (e.g. the same detector run
    with other options), most suspicious first."""
    parts = [p for p in (flags[flags["detector"] != name], rows) if len(p)]
    return sort_flags(pd.concat(parts, ignore_index=True)) if parts else flags_frame()
