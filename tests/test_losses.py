"""seglib.losses: formulas, class weights, ignored classes, and every loss learning a tiny overfit."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from seglib.losses import LOSSES, LossConfig, LossError, build_loss, class_weights, parse_formula


def test_parse_formula_reads_weights_and_refuses_unknown_terms():
    assert parse_formula("focal+dice") == [(1.0, "focal"), (1.0, "dice")]
    assert parse_formula(" 0.5*ce + 2 * tversky") == [(0.5, "ce"), (2.0, "tversky")]
    with pytest.raises(LossError, match="unknown loss 'boundary'"):
        parse_formula("focal+boundary")
    with pytest.raises(LossError, match="cannot read"):
        parse_formula("focal+*dice")


def test_class_weights_inverse_median_manual():
    px = [900.0, 90.0, 10.0, 0.0]
    inv = class_weights(px, "inverse", scored=[0, 1, 2, 3])
    assert inv[3] == 0 and inv[2] > inv[1] > inv[0]
    assert inv[:3].mean() == pytest.approx(1.0)
    med = class_weights(px, "median", scored=[0, 1, 2])
    assert med[:3] == pytest.approx(np.array([0.1, 1, 9]) / np.mean([0.1, 1, 9]))  # median freq / freq
    assert class_weights(px, "none", scored=[0, 1]) is None
    man = class_weights(px, "manual", scored=[1, 2], manual=[5, 1, 3, 7])
    assert man[0] == 0 and man[3] == 0 and man[1:3].mean() == pytest.approx(1.0)
    with pytest.raises(LossError, match="4 values"):
        class_weights(px, "manual", scored=[0], manual=[1, 2])


def _overfit(formula: str, steps: int = 30, **cfg) -> list[float]:
    torch.manual_seed(0)
    target = torch.zeros(2, 8, 8, dtype=torch.long)
    target[:, 2:5, 2:6] = 1
    target[:, 6:, :3] = 2
    target[0, 0, 0] = 255
    logits = torch.zeros(2, 3, 8, 8, requires_grad=True)
    loss_fn = build_loss(LossConfig(formula, **cfg), num_classes=3, scored=[0, 1, 2],
                         pixels=np.bincount(target[target != 255].flatten(), minlength=3))
    opt = torch.optim.Adam([logits], lr=0.1)
    values = []
    for _ in range(steps):
        loss = loss_fn(logits, target)
        values.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return values


@pytest.mark.parametrize("name", list(LOSSES))
def test_every_loss_is_finite_and_falls(name):
    values = _overfit(name)
    assert all(np.isfinite(values))
    assert values[-1] < 0.7 * values[0]


@pytest.mark.parametrize("weighting", ["inverse", "median"])
def test_weighted_sums_and_class_weights_train(weighting):
    values = _overfit("0.5*ce+focal+dice", class_weighting=weighting)
    assert values[-1] < 0.5 * values[0]


def test_exclude_background_ignores_its_pixels_in_every_term():
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    target[0, :2] = 1
    good = torch.full((1, 2, 4, 4), -5.0)
    good[:, 1][target == 1] = 5.0
    good[:, 0][target == 0] = 5.0
    wrong_bg = good.clone()
    wrong_bg[:, 0][target == 0] = -5.0  # background pixels predicted as class 1
    wrong_bg[:, 1][target == 0] = 5.0
    for formula in ["ce", "focal", "dice", "jaccard", "tversky", "lovasz"]:
        keep = build_loss(LossConfig(formula), 2, scored=[0, 1])
        skip = build_loss(LossConfig(formula, exclude_background=True), 2, scored=[0, 1])
        assert keep(wrong_bg, target) > keep(good, target) + 1e-3, formula
        assert skip(wrong_bg, target) == pytest.approx(skip(good, target).item(), abs=1e-4), formula


def test_ignored_class_does_not_count():
    target = torch.tensor([[[0, 0, 2, 2], [1, 1, 2, 2]]])
    logits = torch.randn(1, 3, 2, 4)
    other = logits.clone()
    other[:, :, :, 2:] = torch.randn(1, 3, 2, 2) * 5  # change only the class-2 (ignored) pixels
    loss = build_loss(LossConfig("ce+dice"), 3, scored=[0, 1])
    assert loss(logits, target).item() == pytest.approx(loss(other, target).item(), abs=1e-5)


def test_nothing_to_learn_is_refused():
    with pytest.raises(LossError, match="no class left"):
        build_loss(LossConfig("dice", exclude_background=True), 2, scored=[0])
