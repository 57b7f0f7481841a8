"""Segmentation metrics from confusion matrices: per dataset and per image.

Every dataset-level figure comes from ONE confusion matrix summed over all images (never an
average of batch means), so a metric does not depend on the batch size or on image order.

    cm[t, p] = number of pixels whose true class is t and predicted class is p.

Pixels whose target is ``ignore_index`` (unknown colour, 255) or an ignored class are dropped
before counting. Classes absent from both the targets and the predictions have no IoU (NaN)
and do not enter the means, as in smp's "macro-imagewise" reading of an empty class.

>>> acc = ConfusionMatrix(num_classes=5)
>>> acc.update(logits.argmax(1), masks)          # torch tensors on any device
>>> scores(acc.matrix, class_names, scored=[0, 1, 2, 3, 4], background=0)
{'miou': 0.71, 'miou_no_bg': 0.66, 'pixel_accuracy': 0.93, 'mean_pixel_accuracy': 0.8,
 'dice': 0.82, 'per_class_iou': {'background': 0.9, ...}}
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

IGNORE_INDEX = 255

# The keys of a score dictionary, in the order reports print them (the CLI contract).
SCORE_KEYS = ("miou", "miou_no_bg", "pixel_accuracy", "mean_pixel_accuracy", "dice", "per_class_iou")


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """int64 (K, K) confusion matrix of integer tensors of one shape (any number of images)."""
    pred, target = pred.reshape(-1), target.reshape(-1)
    keep = (target != ignore_index) & (target >= 0) & (target < num_classes)
    idx = target[keep].long() * num_classes + pred[keep].long().clamp_(0, num_classes - 1)
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_image_confusion(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                        ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """int64 (B, K, K): one confusion matrix per image of a (B, H, W) batch, in one bincount."""
    b = pred.shape[0]
    pred, target = pred.reshape(b, -1).long(), target.reshape(b, -1).long()
    keep = (target != ignore_index) & (target >= 0) & (target < num_classes)
    offset = torch.arange(b, device=pred.device)[:, None] * num_classes * num_classes
    idx = offset + target.clamp(0, num_classes - 1) * num_classes + pred.clamp(0, num_classes - 1)
    counts = torch.bincount(idx[keep], minlength=b * num_classes * num_classes)
    return counts.reshape(b, num_classes, num_classes)


class ConfusionMatrix:
    """Accumulates one confusion matrix on the device of the first update."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix: torch.Tensor | None = None

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        cm = confusion_matrix(pred, target, self.num_classes, self.ignore_index)
        self.matrix = cm if self.matrix is None else self.matrix + cm

    def numpy(self) -> np.ndarray:
        if self.matrix is None:
            return np.zeros((self.num_classes, self.num_classes), np.int64)
        return self.matrix.cpu().numpy()


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)


def class_iou(cm: np.ndarray) -> np.ndarray:
    """(..., K) IoU per class of one (K, K) or many (B, K, K) matrices; NaN where the class is
    in neither target nor prediction."""
    cm = np.asarray(cm, np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    union = cm.sum(-1) + cm.sum(-2) - tp
    return _safe_div(tp, union)


def class_dice(cm: np.ndarray) -> np.ndarray:
    cm = np.asarray(cm, np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    return _safe_div(2 * tp, cm.sum(-1) + cm.sum(-2))


def class_recall(cm: np.ndarray) -> np.ndarray:
    """Per-class pixel accuracy (recall): NaN where the class is not in the target."""
    cm = np.asarray(cm, np.float64)
    return _safe_div(np.diagonal(cm, axis1=-2, axis2=-1), cm.sum(-1))


def _nanmean(values: np.ndarray, axis=-1) -> np.ndarray | float:
    v = np.asarray(values, np.float64)
    n = np.sum(~np.isnan(v), axis=axis)
    s = np.nansum(v, axis=axis)
    return np.where(n > 0, s / np.maximum(n, 1), np.nan)


def scores(cm: np.ndarray, class_names: Sequence[str], scored: Sequence[int] | None = None,
           background: int | None = 0) -> dict:
    """The score dictionary of one (K, K) confusion matrix.

    Args:
        class_names: name of each class id 0..K-1 (used as keys of ``per_class_iou``).
        scored: class ids that count (default all; leave out ignored classes and gaps).
        background: the id dropped from ``miou_no_bg`` (None: same as ``miou``).
    """
    cm = np.asarray(cm, np.float64)
    k = cm.shape[0]
    scored = list(range(k)) if scored is None else [c for c in scored if 0 <= c < k]
    # Only the scored classes' rows count: pixels of an unscored true class are not judged.
    rows = np.zeros_like(cm)
    rows[scored] = cm[scored]
    iou, dice, recall = class_iou(rows), class_dice(rows), class_recall(rows)
    no_bg = [c for c in scored if c != background]
    total = rows.sum()
    return {
        "miou": float(_nanmean(iou[scored])),
        "miou_no_bg": float(_nanmean(iou[no_bg])) if no_bg else float("nan"),
        "pixel_accuracy": float(np.trace(rows) / total) if total else float("nan"),
        "mean_pixel_accuracy": float(_nanmean(recall[scored])),
        "dice": float(_nanmean(dice[scored])),
        "per_class_iou": {class_names[c]: (None if np.isnan(iou[c]) else float(iou[c])) for c in scored},
    }


def per_image_scores(cms: np.ndarray, scored: Sequence[int], background: int | None = 0) -> dict[str, np.ndarray]:
    """Per-image arrays from (B, K, K) matrices: ``miou``, ``miou_no_bg``, ``pixel_accuracy``
    (B,) and ``iou`` (B, K) with NaN for classes in neither mask nor prediction."""
    cms = np.asarray(cms, np.float64)
    rows = np.zeros_like(cms)
    rows[:, scored] = cms[:, scored]
    iou = class_iou(rows)
    no_bg = [c for c in scored if c != background]
    total = rows.sum((1, 2))
    return {
        "miou": _nanmean(iou[:, scored]),
        "miou_no_bg": _nanmean(iou[:, no_bg]) if no_bg else np.full(len(cms), np.nan),
        "pixel_accuracy": _safe_div(np.trace(rows, axis1=1, axis2=2), total),
        "iou": iou,
    }


def normalized(cm: np.ndarray) -> np.ndarray:
    """Rows divided by their sums: cm[t, p] = share of true class t predicted as p."""
    cm = np.asarray(cm, np.float64)
    return np.nan_to_num(_safe_div(cm, cm.sum(1, keepdims=True)))
