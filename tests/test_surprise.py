"""The top-surprise measure (seglib.quality.surprise): a few confidently wrong pixels stand out,
a class the model is never sure of does not."""
import numpy as np

from seglib.quality.surprise import class_thresholds, top_surprise


def _probs(labels: np.ndarray, k: int, sure: float) -> np.ndarray:
    p = np.full((len(labels), k) + labels.shape[1:], (1 - sure) / (k - 1))
    np.put_along_axis(p, labels[:, None], sure, 1)
    return p


def test_a_small_confident_disagreement_scores_higher_than_a_clean_image():
    labels = np.zeros((2, 40, 40), np.int64)
    probs = _probs(labels, 3, 0.95)
    probs[1, :, :3, :3] = [[[0.02]], [[0.96]], [[0.02]]]   # 9 of 1,600 px: the model sees class 1, the label says 0
    s = top_surprise(labels, probs)
    assert s[1] > s[0] + 2
    # a mean over every pixel would dilute those 9 px; the top share keeps them
    assert top_surprise(labels, probs, share=1.0)[1] < s[1] / 10


def test_a_class_the_model_is_never_sure_of_is_not_surprising_against_its_threshold():
    labels = np.zeros((4, 20, 20), np.int64)
    labels[:, 10:] = 1
    probs = _probs(labels, 2, 0.99)
    probs[:, :, 10:] = [[[0.4]], [[0.6]]]                  # class 1: always only 60% sure, everywhere
    t = class_thresholds(labels, probs)
    assert np.allclose(t, [0.99, 0.6])
    assert np.allclose(top_surprise(labels, probs, t), 0, atol=1e-6)
    assert (top_surprise(labels, probs, np.ones(2)) > 0.5).all()   # without the thresholds it would


def test_a_class_no_pixel_is_labeled_has_threshold_one():
    labels = np.zeros((1, 4, 4), np.int64)
    assert class_thresholds(labels, _probs(labels, 3, 0.9))[2] == 1.0
