"""Training views as pure functions: curves (plotly) of history records (the lines of a run's
history.jsonl) and of the per-step points a live job reports (``JobSnapshot.steps_log``), and
the strip of validation images with their true and predicted masks.

>>> loss_figure(history, steps_log)          # train (per step and per epoch) and validation loss
>>> compare_figure({"run a": hist_a, "run b": hist_b}, "miou")
>>> panels = prediction_panels(snapshot.preview, ClassMap.from_list(snapshot.class_map))
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from ..data.classmap import ClassMap
from .draw import render, thumbnail_pair
from .plots import bar_color

__all__ = ["METRICS", "metric_label", "metric_values", "loss_figure", "metrics_figure", "per_class_iou_figure",
           "lr_figure", "compare_figure", "confusion_figure", "prediction_panels"]

METRICS = {"val_loss": "validation loss", "train_loss": "training loss", "miou": "mIoU",
           "miou_no_bg": "mIoU without background", "dice": "Dice", "pixel_accuracy": "pixel accuracy",
           "mean_pixel_accuracy": "mean pixel accuracy", "lr": "learning rate", "images_per_s": "images/s"}
PER_CLASS = "iou:"  # metric keys "iou:<class name>" pick one class's IoU
_MARGIN = dict(l=10, r=10, t=40, b=10)
_HEIGHT = 320


def metric_label(key: str) -> str:
    return f"IoU of {key[len(PER_CLASS):]}" if key.startswith(PER_CLASS) else METRICS.get(key, key)


def metric_values(history: Sequence[dict], key: str) -> tuple[list[int], list[float | None]]:
    """(epochs, values) of one metric; a per-class key reads ``per_class_iou``."""
    if key.startswith(PER_CLASS):
        name = key[len(PER_CLASS):]
        values = [(r.get("per_class_iou") or {}).get(name) for r in history]
    else:
        values = [r.get(key) for r in history]
    return [r["epoch"] for r in history], values


def _layout(fig: go.Figure, title: str, history: Sequence[dict], yformat: str | None = None,
            empty_text: str = "waiting for the first epoch…") -> go.Figure:
    epochs = max((r["epoch"] for r in history), default=1)
    # The legend sits under the plot, clear of the x-axis title (plotly does not move it itself).
    fig.update_layout(title=title, height=_HEIGHT, margin=_MARGIN, hovermode="x unified",
                      legend=dict(orientation="h", yanchor="top", y=-0.32, x=0),
                      xaxis=dict(title=dict(text="epoch", standoff=4), dtick=1 if epochs <= 12 else None,
                                 rangemode="tozero"),
                      yaxis=dict(tickformat=yformat))
    if not history:
        fig.add_annotation(text=empty_text, showarrow=False, xref="paper", yref="paper",
                           x=0.5, y=0.5, font=dict(color="#888"))
    if not _has_points(fig):  # plotly's range for no data is -1..4: -100% to 400% on a score axis
        fig.update_xaxes(range=[0, 1])
        fig.update_yaxes(range=[0, 1])
    return fig


def _has_points(fig: go.Figure) -> bool:
    return any(y is not None for trace in fig.data for y in (trace.y if trace.y is not None else ()))


def _mode(points: Sequence) -> str:
    """Lines alone vanish with one point and hide where the points are with few: add markers."""
    return "lines" if len(points) > 30 else "lines+markers"


def _best_marker(fig: go.Figure, history: Sequence[dict]) -> None:
    best = history[-1].get("best_epoch") if history else None
    if best:
        fig.add_vline(x=best, line_dash="dot", line_color="#888", annotation_text=f"best {best}",
                      annotation_position="top left", annotation_font_color="#888")


def loss_figure(history: Sequence[dict], steps_log: Sequence[dict] = ()) -> go.Figure:
    """Training loss every 10 steps (faint; x in fractional epochs), and the epoch means of the
    training and validation loss."""
    fig = go.Figure()
    if steps_log:
        fig.add_scatter(x=[p["epoch"] for p in steps_log], y=[p["loss"] for p in steps_log], mode=_mode(steps_log),
                        name="train (every 10 steps)", line=dict(color="rgba(31,119,180,0.35)", width=1),
                        marker=dict(size=4))
    epochs = [r["epoch"] for r in history]
    fig.add_scatter(x=epochs, y=[r.get("train_loss") for r in history], mode="lines+markers", name="train",
                    line=dict(color="#1f77b4"))
    fig.add_scatter(x=epochs, y=[r.get("val_loss") for r in history], mode="lines+markers", name="validation",
                    line=dict(color="#d62728"))
    _best_marker(fig, history)
    return _layout(fig, "Loss", history)


def metrics_figure(history: Sequence[dict], keys: Sequence[str] = ("miou", "miou_no_bg", "dice")) -> go.Figure:
    """Validation scores per epoch, the best epoch marked."""
    fig = go.Figure()
    for key in keys:
        x, y = metric_values(history, key)
        fig.add_scatter(x=x, y=y, mode="lines+markers", name=metric_label(key))
    _best_marker(fig, history)
    fig = _layout(fig, "Validation scores", history, ".0%")
    fig.update_yaxes(rangemode="tozero")
    return fig


def per_class_iou_figure(history: Sequence[dict], class_map: Sequence[dict] = ()) -> go.Figure:
    """IoU of every class per epoch, each in its class colour (``class_map``: the run's
    ``resolved.class_map`` list of {"name", "color"})."""
    colors = {c["name"]: bar_color(c["color"]) for c in class_map if "name" in c and "color" in c}
    names = list(history[-1].get("per_class_iou", {})) if history else []
    fig = go.Figure()
    for name in names:
        x, y = metric_values(history, PER_CLASS + name)
        fig.add_scatter(x=x, y=y, mode="lines+markers", name=name, line=dict(color=colors.get(name)))
    fig = _layout(fig, "IoU per class", history, ".0%")
    fig.update_yaxes(rangemode="tozero")
    return fig


def lr_figure(history: Sequence[dict], steps_log: Sequence[dict] = ()) -> go.Figure:
    """The learning rate: every 10 steps when known (schedules that move within an epoch), else
    per epoch; log scale."""
    fig = go.Figure()
    if steps_log:
        fig.add_scatter(x=[p["epoch"] for p in steps_log], y=[p["lr"] for p in steps_log], mode=_mode(steps_log),
                        name="learning rate", line=dict(color="#2ca02c"))
    else:
        fig.add_scatter(x=[r["epoch"] for r in history], y=[r.get("lr") for r in history], mode="lines+markers",
                        name="learning rate", line=dict(color="#2ca02c"))
    fig = _layout(fig, "Learning rate", history if history or not steps_log else [{"epoch": 1}], ".1e")
    _lr_axis(fig, [p["lr"] for p in steps_log] or [r.get("lr") for r in history])
    fig.update_layout(showlegend=False)
    return fig


def _lr_axis(fig: go.Figure, values: Sequence, tickformat: str = ".1e") -> None:
    """Log scale when the rate spans a decade or more (a schedule); a constant rate on a log
    axis gets a crowd of minor tick labels, so it stays linear."""
    values = [v for v in values if v]
    wide = bool(values) and max(values) / min(values) >= 10
    if wide:
        fig.update_yaxes(type="log", tickformat=tickformat, nticks=6)
    else:  # from 0: plotly centres a flat line on a range around it that reaches below zero
        fig.update_yaxes(type="linear", tickformat=tickformat, nticks=6,
                         range=[0, 1.25 * max(values)] if values else [0, 1])


def compare_figure(histories: Mapping[str, Sequence[dict]], key: str) -> go.Figure:
    """One metric of several runs, one line each (a run's best epoch drawn larger)."""
    fig = go.Figure()
    for name, history in histories.items():
        x, y = metric_values(history, key)
        best = history[-1].get("best_epoch") if history else None
        fig.add_scatter(x=x, y=y, mode="lines+markers", name=name,
                        marker=dict(size=[11 if e == best else 6 for e in x]))
    longest = max(histories.values(), key=len, default=[])
    fmt = ".0%" if key.startswith(PER_CLASS) or key in ("miou", "miou_no_bg", "dice", "pixel_accuracy",
                                                       "mean_pixel_accuracy") else None
    fig = _layout(fig, metric_label(key), longest, fmt, empty_text="no finished epoch")
    if fmt:  # scores from 0: a narrow automatic range would make small differences look large
        fig.update_yaxes(rangemode="tozero")
    if key == "lr":
        _lr_axis(fig, [r.get("lr") for h in histories.values() for r in h], ".1e")
    return fig


def confusion_figure(confusion: Sequence[Sequence[float]], class_names: Sequence[str]) -> go.Figure:
    """Rows = true class, columns = predicted, each row as shares of its true pixels."""
    m = np.asarray(confusion, dtype=np.float64)
    shares = m / np.maximum(m.sum(1, keepdims=True), 1)
    names = list(class_names)[: len(m)] + [f"class_{k}" for k in range(len(class_names), len(m))]
    fig = go.Figure(go.Heatmap(z=shares, x=names, y=names, colorscale="Blues", zmin=0, zmax=1,
                               text=[[f"{v:.0%}" for v in row] for row in shares], texttemplate="%{text}",
                               customdata=m, hovertemplate="true %{y}, predicted %{x}: %{z:.1%} "
                                                           "(%{customdata:,.0f} px)<extra></extra>"))
    fig.update_layout(title="Confusion (rows: true class, shares of its pixels)", height=60 + 40 * len(m) + 60,
                      margin=_MARGIN, xaxis_title="predicted", yaxis=dict(autorange="reversed", title="true"))
    return fig


def prediction_panels(preview: Mapping, class_map: ClassMap, size: int = 256, alpha: float = 0.55,
                      gap: int = 4) -> list[np.ndarray]:
    """One uint8 (H', W', 3) panel per validation image: the true mask over the image on top,
    the prediction below, ``gap`` white rows apart. Small images grow by a whole factor (sharp
    class borders), large ones shrink to about ``size`` pixels on the longer side.

    ``preview``: {"images" (N, H, W[, 3]) uint8, "masks" and "predictions" (N, H, W) uint8}."""
    panels = []
    for image, mask, pred in zip(preview["images"], preview["masks"], preview["predictions"], strict=True):
        img, truth = thumbnail_pair(np.asarray(image), np.asarray(mask), size)
        _, guess = thumbnail_pair(np.asarray(image), np.asarray(pred), size)
        top = render(img, truth, class_map, "overlay", alpha)
        bottom = render(img, guess, class_map, "overlay", alpha)
        panel = np.full((top.shape[0] * 2 + gap, top.shape[1], 3), 255, np.uint8)
        panel[: top.shape[0]] = top
        panel[top.shape[0] + gap :] = bottom
        panels.append(panel)
    return panels
