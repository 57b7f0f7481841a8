"""How surprised the model is by an image's worst-fitting labeled pixels: the per-image measure
the out-of-fold ranking leans on.

A pixel's surprise is ``-log(p[label] / t[label])``: its self-confidence against confident
learning's per-class threshold ``t[c]`` (the mean probability the model gives class ``c`` on the
pixels labeled ``c``; Northcutt et al. 2021), so a rare or hard class that the model is never
very sure of does not look wrong everywhere. An image's surprise is the mean over its
``TOP_SHARE`` most surprising pixels: realistic label errors touch a few percent of an image
(an object dropped, an outline dilated), which a mean over every pixel dilutes and cleanlab's
softmin (one smooth minimum) only partly catches. Measured in ``bench/bench_label_errors.py``.
"""
from __future__ import annotations

import numpy as np

TOP_SHARE = 0.005     # the share of an image's pixels its surprise is the mean of
FLOOR = 1e-6          # probabilities are clipped here before the log


def class_thresholds(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(K,) float64: the mean probability of class c over the pixels labeled c (1 where none is).

    labels (N, H, W) int, every value < K; probs (N, K, H, W)."""
    k = probs.shape[1]
    t = np.ones(k)
    for c in range(k):
        where = labels == c
        if where.any():
            t[c] = float(np.moveaxis(probs, 1, 0)[c][where].mean())
    return np.clip(t, FLOOR, 1.0)


def top_surprise(labels: np.ndarray, probs: np.ndarray, thresholds: np.ndarray | None = None,
                 share: float = TOP_SHARE) -> np.ndarray:
    """(N,) float64: each image's mean surprise over its ``share`` most surprising pixels
    (at least one). ``thresholds`` default to :func:`class_thresholds` of these images."""
    if thresholds is None:
        thresholds = class_thresholds(labels, probs)
    own = np.take_along_axis(probs, labels[:, None].astype(np.int64), 1)[:, 0].astype(np.float64)
    surprise = -np.log(np.clip(own / thresholds[labels], FLOOR, 1.0)).reshape(len(labels), -1)
    k = max(1, int(round(share * surprise.shape[1])))
    return np.partition(surprise, surprise.shape[1] - k, axis=1)[:, -k:].mean(1)
