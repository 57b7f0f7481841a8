"""seglib.metrics against a plain NumPy computation and smp.metrics on the same predictions."""
from __future__ import annotations

import numpy as np
import pytest
import segmentation_models_pytorch as smp
import torch

from seglib.metrics import ConfusionMatrix, confusion_matrix, normalized, per_image_confusion, per_image_scores, scores

K = 4
NAMES = ["bg", "a", "b", "c"]


@pytest.fixture(scope="module")
def preds():
    rng = np.random.default_rng(0)
    target = rng.integers(0, K, (6, 16, 24))
    pred = np.where(rng.random(target.shape) < 0.7, target, rng.integers(0, K, target.shape))
    target[0, :4] = 255                       # unknown pixels: never counted
    target[1][target[1] == 3] = 2             # image 1 has no class 3
    pred[1][pred[1] == 3] = 1
    return torch.from_numpy(pred), torch.from_numpy(target)


def numpy_iou(pred, target, k):
    keep = target != 255
    ious = []
    for c in range(k):
        inter = np.sum((pred == c) & (target == c) & keep)
        union = np.sum(((pred == c) | (target == c)) & keep)
        ious.append(inter / union if union else np.nan)
    return np.array(ious)


def test_confusion_matrix_counts_every_kept_pixel(preds):
    pred, target = preds
    cm = confusion_matrix(pred, target, K).numpy()
    assert cm.sum() == int((target != 255).sum())
    assert cm[2, 1] == int(((target == 2) & (pred == 1)).sum())


def test_accumulated_matrix_is_independent_of_batching(preds):
    pred, target = preds
    whole = confusion_matrix(pred, target, K)
    acc = ConfusionMatrix(K)
    for i in range(0, 6, 4):  # uneven batches: 4 + 2
        acc.update(pred[i:i + 4], target[i:i + 4])
    assert torch.equal(acc.matrix, whole)


def test_scores_match_numpy(preds):
    pred, target = preds
    p, t = pred.numpy(), target.numpy()
    s = scores(confusion_matrix(pred, target, K).numpy(), NAMES)
    iou = numpy_iou(p, t, K)
    keep = t != 255
    assert s["miou"] == pytest.approx(np.nanmean(iou))
    assert s["miou_no_bg"] == pytest.approx(np.nanmean(iou[1:]))
    assert s["pixel_accuracy"] == pytest.approx(np.mean(p[keep] == t[keep]))
    recall = [np.sum((p == c) & (t == c)) / np.sum(t == c) for c in range(K)]
    assert s["mean_pixel_accuracy"] == pytest.approx(np.mean(recall))
    dice = [2 * np.sum((p == c) & (t == c) & keep) / (np.sum((p == c) & keep) + np.sum(t == c)) for c in range(K)]
    assert s["dice"] == pytest.approx(np.mean(dice))
    assert list(s["per_class_iou"]) == NAMES
    assert s["per_class_iou"]["b"] == pytest.approx(iou[2])


def test_scores_match_smp_metrics(preds):
    pred, target = preds
    tp, fp, fn, tn = smp.metrics.get_stats(pred.long(), target.long(), mode="multiclass", num_classes=K,
                                           ignore_index=255)
    s = scores(confusion_matrix(pred, target, K).numpy(), NAMES)
    # Per-class IoU over the dataset = IoU of the stats summed over images.
    smp_iou = smp.metrics.iou_score(tp.sum(0, keepdim=True), fp.sum(0, keepdim=True), fn.sum(0, keepdim=True),
                                    tn.sum(0, keepdim=True), reduction="none")[0]
    assert np.allclose(list(s["per_class_iou"].values()), smp_iou.numpy())
    assert s["miou"] == pytest.approx(smp.metrics.iou_score(tp, fp, fn, tn, reduction="macro").item())
    assert s["pixel_accuracy"] == pytest.approx(
        (tp.sum() / (tp.sum() + fn.sum())).item())  # micro accuracy over kept pixels


def test_ignored_classes_and_background_are_left_out(preds):
    pred, target = preds
    cm = confusion_matrix(pred, target, K).numpy()
    s = scores(cm, NAMES, scored=[0, 1, 2], background=0)
    iou = numpy_iou(pred.numpy(), target.numpy(), K)
    assert "c" not in s["per_class_iou"]
    assert s["miou_no_bg"] == pytest.approx(np.nanmean(iou[[1, 2]]), rel=0.2)  # class-3 rows dropped
    assert s["miou"] != pytest.approx(scores(cm, NAMES)["miou"])


def test_per_image_scores_match_numpy_and_mark_absent_classes(preds):
    pred, target = preds
    cms = per_image_confusion(pred, target, K).numpy()
    assert np.array_equal(cms.sum(0), confusion_matrix(pred, target, K).numpy())
    per = per_image_scores(cms, scored=list(range(K)))
    for i in range(len(pred)):
        assert per["miou"][i] == pytest.approx(np.nanmean(numpy_iou(pred[i].numpy(), target[i].numpy(), K)))
    assert np.isnan(per["iou"][1, 3])  # class 3 in neither mask nor prediction of image 1
    assert per["miou_no_bg"].shape == (6,)


def test_normalized_rows_sum_to_one(preds):
    n = normalized(confusion_matrix(*preds, K).numpy())
    assert np.allclose(n.sum(1), 1.0)


def test_perfect_prediction_scores_one(preds):
    _, target = preds
    s = scores(confusion_matrix(target.clamp(max=K - 1), target, K).numpy(), NAMES)
    assert s["miou"] == 1.0 and s["pixel_accuracy"] == 1.0 and s["dice"] == 1.0
