"""Training curves and the validation strip as pure functions (seglib.viz.training)."""
from __future__ import annotations

import numpy as np

from seglib.data.classmap import ClassMap
from seglib.viz import training


def _history(n: int = 3, lr=lambda e: 1e-3) -> list[dict]:
    return [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "miou": 0.2 * e, "miou_no_bg": 0.1 * e,
             "dice": 0.25 * e, "lr": lr(e), "best_epoch": e, "confusion": [[5, 1], [2, 7]],
             "per_class_iou": {"soil": 0.1 * e, "rock": 0.05 * e}} for e in range(1, n + 1)]


def test_curves_of_one_run():
    hist = _history()
    steps = [{"global_step": 10 * k, "epoch": k / 2, "loss": 1.0 / k, "lr": 1e-3} for k in range(1, 7)]
    loss = training.loss_figure(hist, steps)
    assert [t.name for t in loss.data] == ["train (every 10 steps)", "train", "validation"]
    assert list(loss.data[2].y) == [r["val_loss"] for r in hist]
    classes = training.per_class_iou_figure(hist, [{"name": "soil", "color": "#000000"}])
    assert [t.name for t in classes.data] == ["soil", "rock"] and classes.data[0].line.color == "#BBBBBB"
    assert training.metrics_figure(hist).layout.yaxis.tickformat == ".0%"
    flat = training.lr_figure(hist).layout.yaxis
    assert flat.type == "linear" and tuple(flat.range) == (0, 1.25e-3)  # a constant rate, from 0
    assert training.lr_figure(_history(lr=lambda e: 10.0 ** -e)).layout.yaxis.type == "log"  # a schedule
    empty = training.loss_figure([])
    assert "waiting for the first epoch" in empty.layout.annotations[0].text


def test_empty_charts_keep_a_sane_range():
    # plotly's range for no data is -1..4: a score axis would read -100% to 400%
    steps = [{"global_step": 1, "epoch": 0.1, "loss": 1.0, "lr": 1e-3}]
    for fig in (training.metrics_figure([]), training.per_class_iou_figure([]), training.loss_figure([]),
                training.lr_figure([]), training.compare_figure({"cancelled": []}, "miou"),
                training.compare_figure({"cancelled": []}, "lr")):
        assert tuple(fig.layout.yaxis.range) == (0, 1) and tuple(fig.layout.xaxis.range) == (0, 1), fig.layout.title
    assert "no finished epoch" in training.compare_figure({"cancelled": []}, "miou").layout.annotations[0].text
    assert training.loss_figure([], steps).layout.yaxis.range is None  # points: plotly fits them


def test_compare_runs_and_confusion():
    fig = training.compare_figure({"a": _history(3), "b": _history(2)}, "iou:soil")
    assert [t.name for t in fig.data] == ["a", "b"] and list(fig.data[1].y) == [0.1, 0.2]
    assert training.metric_label("iou:soil") == "IoU of soil" and training.metric_label("miou") == "mIoU"
    conf = training.confusion_figure([[5, 1], [2, 6]], ["soil", "rock"])
    assert np.allclose(np.array(conf.data[0].z), [[5 / 6, 1 / 6], [0.25, 0.75]])


def test_prediction_panels_show_truth_over_prediction():
    cmap = ClassMap.default([0, 1])
    preview = {"images": np.zeros((2, 64, 128), np.uint8), "masks": np.zeros((2, 64, 128), np.uint8),
               "predictions": np.ones((2, 64, 128), np.uint8), "ids": ["a", "b"]}
    panels = training.prediction_panels(preview, cmap, size=256, alpha=1.0)
    assert len(panels) == 2 and panels[0].shape == (2 * 128 + 4, 256, 3)  # grown 2x, two rows and a gap
    top, bottom = panels[0][0, 0], panels[0][-1, 0]
    assert tuple(top) == cmap.by_id(0).rgb and tuple(bottom) == cmap.by_id(1).rgb
    assert (panels[0][128:132] == 255).all()
