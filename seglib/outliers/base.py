"""The detector registry and the shape of a flag table.

A detector is ``fn(ds, stats, **options) -> DataFrame`` with the columns of :data:`COLUMNS`,
one row per flagged image, registered with ``@detector("name")``; options have defaults.
Scores are 0..1, higher = more suspicious; ``group`` ties together images that a reviewer
should look at side by side.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

COLUMNS = ["image_id", "detector", "reason", "score", "group"]
BLOCK = 1024  # hash rows compared per step, at most ...
XOR_CELLS = 1 << 20  # ... and at most this many pairs per step: an 8 MB uint64 XOR table even for 100,000 hashes
DETECTORS: dict[str, Callable] = {}


def detector(name: str, reads_pixels: bool = False):
    """Register ``fn(ds, stats) -> DataFrame`` under ``name`` in :data:`DETECTORS`.

    ``reads_pixels``: the detector makes a pass of its own over the images beyond the shared one,
    and takes a ``progress=`` callback for it (``detect`` hands it its own)."""
    def wrap(fn):
        fn.detector_name = name
        fn.reads_pixels = reads_pixels
        DETECTORS[name] = fn
        return fn
    return wrap


def flags_frame(rows: list[dict] | None = None) -> pd.DataFrame:
    """Rows (dicts with the COLUMNS keys) -> a typed table sorted most suspicious first."""
    df = pd.DataFrame(rows or [], columns=COLUMNS)
    df["image_id"] = df["image_id"].astype(str)
    df["detector"] = df["detector"].astype(str)
    df["reason"] = df["reason"].astype(str)
    df["score"] = df["score"].astype(float).clip(0.0, 1.0)
    df["group"] = df["group"].astype(object).where(df["group"].notna(), None)
    return sort_flags(df)


def sort_flags(df: pd.DataFrame) -> pd.DataFrame:
    """Most suspicious first; ties kept together by group, then by image id (stable output)."""
    order = df.assign(_g=df["group"].fillna("")).sort_values(
        ["score", "_g", "image_id", "detector"], ascending=[False, True, True, True], kind="mergesort")
    return order.drop(columns="_g").reset_index(drop=True)


def robust_z(x: np.ndarray) -> np.ndarray:
    """(x - median) / (1.4826 * MAD), with the scale floored so that a dataset with no spread
    does not turn tiny differences into huge scores. float64 (N,)."""
    x = np.asarray(x, np.float64)
    if not len(x):
        return x
    med = np.median(x)
    scale = 1.4826 * np.median(np.abs(x - med))  # 1.4826 x MAD is the SD of normally distributed data
    scale = max(scale, 0.02 * abs(med), 1e-6)     # at least 2% of the median: a uniform dataset stays calm
    return (x - med) / scale


def z_score(z: float, scale: float = 10.0) -> float:
    """A robust z (in SDs) -> a 0..1 suspicion score: 6 SDs ~0.45, 20 SDs ~0.86.

    ``scale`` 10 puts the flag threshold (6 SDs) mid-range, below the duplicate detectors'
    scores: an unusual image is less surely a problem than a copy."""
    return float(1.0 - np.exp(-abs(z) / scale))


def groups_from_pairs(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected components of the graph with edges (a[k], b[k]) over n nodes: (n,) int labels."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    g = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n))
    return connected_components(g, directed=False)[1]


def numbered_groups(labels: np.ndarray, members: np.ndarray, prefix: str) -> dict[int, str]:
    """Name the components that hold >= 2 of ``members`` (indices) as prefix1, prefix2, ...:
    largest first, ties by first member, so names are stable for a dataset."""
    lab = labels[members]
    uniq, counts = np.unique(lab, return_counts=True)
    first = {u: members[lab == u].min() for u in uniq}
    keep = sorted((u for u, c in zip(uniq, counts, strict=True) if c >= 2),
                  key=lambda u: (-counts[uniq == u][0], first[u]))
    return {int(u): f"{prefix}{k + 1}" for k, u in enumerate(keep)}


def hash_pairs(h: np.ndarray, max_bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs i < j whose uint64 hashes differ in at most ``max_bits`` bits.

    h: (N,) uint64. Returns (a, b, bits) int64, int64, uint8 arrays of equal length.
    Memory stays at about XOR_CELLS x 9 bytes per step, whatever N (rows per step shrink as N grows)."""
    a_out, b_out, d_out = [], [], []
    block = max(16, min(BLOCK, XOR_CELLS // max(1, len(h))))
    for s in range(0, len(h), block):
        d = np.bitwise_count(h[s : s + block, None] ^ h[None, s:])  # (B, N - s)
        i, j = np.nonzero(d <= max_bits)
        keep = j > i  # j is offset by s like i: the upper triangle of this block
        a_out.append(i[keep] + s)
        b_out.append(j[keep] + s)
        d_out.append(d[i[keep], j[keep]])
    cat = lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt)  # noqa: E731
    return cat(a_out, np.int64), cat(b_out, np.int64), cat(d_out, np.uint8)
