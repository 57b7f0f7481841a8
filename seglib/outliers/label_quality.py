"""Label quality from a model's predictions, with cleanlab: the hook for trained models.

A label that a good model disagrees with, confidently, over a region is likely wrong.
``cleanlab.segmentation.rank.get_label_quality_scores`` turns that into one score per image
(low = suspicious); this wraps it into the same flag table as the other detectors.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .base import flags_frame, robust_z

LOW_QUALITY = 0.5  # softmin quality under 0.5: the model gives the worst-labeled pixels less than even odds
Z_LOW = 4.0        # ... or this far (robust SDs) under the median: a bad label in a set the model fits poorly


def label_quality_from_predictions(labels: np.ndarray, pred_probs: np.ndarray, ids: Sequence[str],
                                   threshold: float | None = None) -> pd.DataFrame:
    """Flag images whose labels the model's predictions contradict.

    Args:
        labels: (N, H, W) int class ids in 0..K-1.
        pred_probs: (N, K, H, W) float class probabilities (softmax outputs).
        ids: N image ids, in the order of the arrays.
        threshold: flag images with suspicion (1 - quality) at least this; default: quality
            below LOW_QUALITY or Z_LOW robust SDs under the median quality.

    Returns:
        Flag table (image_id, detector="label_quality", reason, score = 1 - quality, group=None),
        most suspicious first.

    Raises:
        ValueError naming the mismatch when the shapes or ids do not agree.
    """
    from cleanlab.segmentation.rank import get_label_quality_scores

    labels = np.asarray(labels)
    pred_probs = np.asarray(pred_probs, np.float32)
    ids = [str(i) for i in ids]
    if labels.ndim != 3 or pred_probs.ndim != 4 or pred_probs.shape[0] != labels.shape[0] \
            or pred_probs.shape[2:] != labels.shape[1:] or len(ids) != len(labels):
        raise ValueError(f"labels {labels.shape}, pred_probs {pred_probs.shape} and {len(ids)} ids do not match: "
                         "expected (N, H, W), (N, K, H, W) and N ids")
    k = pred_probs.shape[1]
    if len(labels) and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"labels hold class ids outside 0..{k - 1} (min {labels.min()}, max {labels.max()})")
    if not len(labels):
        return flags_frame()
    quality, _ = get_label_quality_scores(labels.astype(np.int64), pred_probs, method="softmin", verbose=False)
    disagree = (pred_probs.argmax(1) != labels).mean((1, 2))
    suspicion = 1.0 - quality
    if threshold is not None:
        flagged = suspicion >= threshold
    else:
        z = robust_z(quality) if len(quality) >= 10 else np.zeros(len(quality))
        flagged = (quality < LOW_QUALITY) | (z <= -Z_LOW)
    rows = [{"image_id": ids[i], "detector": "label_quality", "score": float(suspicion[i]), "group": None,
             "reason": f"label quality {quality[i]:.2f} (cleanlab softmin; dataset median {np.median(quality):.2f}): "
                       f"the model disagrees with {disagree[i]:.0%} of the labeled pixels"}
            for i in np.flatnonzero(flagged)]
    return flags_frame(rows)
