"""Plotly figures of the Compare page (pure functions of seglib.predict.Comparison tables).

The confusion matrix is a scatter of squares, not a heatmap: Streamlit reports no selection for
plotly heatmaps, and a click on a cell must list the images behind it. Each square's
``customdata`` is ``[true id, predicted id, pixels]``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

__all__ = ["column_colors", "grouped_bars", "confusion_figure", "TRUTH_COLOR"]

_MARGIN = dict(l=10, r=10, t=40, b=10)
# Models in a qualitative palette; ensembles in darker tones, so the eye tells them apart.
_MODEL_COLORS = ["#4C78A8", "#F58518", "#54A24B", "#B279A2", "#9D755D", "#72B7B2", "#FF9DA6", "#BAB0AC"]
_ENSEMBLE_COLORS = ["#1B3A5C", "#7A2E0B", "#1F4D1A", "#4B2A5C"]
TRUTH_COLOR = "#9E9E9E"


def column_colors(models: list[str], ensembles: list[str]) -> dict[str, str]:
    """A colour per column name ("ground truth" grey), stable for a given order."""
    out = {"ground truth": TRUTH_COLOR}
    out.update({n: _MODEL_COLORS[k % len(_MODEL_COLORS)] for k, n in enumerate(models)})
    out.update({n: _ENSEMBLE_COLORS[k % len(_ENSEMBLE_COLORS)] for k, n in enumerate(ensembles)})
    return out


def grouped_bars(table: pd.DataFrame, colors: dict[str, str], title: str, percent: bool = True,
                 log: bool = False, height: int = 340) -> go.Figure:
    """Grouped bars: x = ``table.index`` (classes or metrics), one bar per column of ``table``
    (the comparison's columns) in its colour, the value written on the bar."""
    fig = go.Figure()
    fmt = ".1%" if percent else ".3f"
    # Side by side, more than a dozen values overlap when written flat: stand them up instead.
    upright = table.size > 12
    for name in table.columns:
        values = table[name].astype(float)
        fig.add_bar(x=list(table.index), y=values, name=name, marker_color=colors.get(name, "#888888"),
                    text=["–" if np.isnan(v) else format(v, fmt) for v in values], textposition="outside",
                    cliponaxis=False, textfont_size=10, textangle=-90 if upright else 0,
                    hovertemplate=f"{name}<br>%{{x}}: %{{y:{fmt}}}<extra></extra>")
    top = float(np.nanmax(table.to_numpy(float), initial=0))
    ticks = ("~%" if log else ".0%") if percent else None   # log: 0.001% stays 0.001%, not 0%
    fig.update_layout(title=title, barmode="group", height=height, margin=dict(_MARGIN, t=70), bargap=0.2,
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1, xanchor="right"),
                      yaxis=dict(type="log" if log else "linear", tickformat=ticks,
                                 range=None if log else [0, max(1.0, top) * (1.3 if upright else 1.12)]))
    return fig


def confusion_figure(counts: np.ndarray, class_names: list[str], title: str,
                     picked: tuple[int, int] | None = None, classes: list[int] | None = None) -> go.Figure:
    """Row-normalised confusion matrix (true classes down, predicted across) with clickable cells.

    A heatmap draws the cells; a transparent scatter point sits at each cell's centre and takes
    the click (``hoverdistance=-1``: a click anywhere picks the nearest centre, so the cell under
    the pointer).

    Args:
        counts: int (K, K) pixels [true, predicted].
        classes: the ids to show (default all), e.g. the scored ones.
        picked: (true, predicted) outlined.
    """
    classes = list(range(len(counts))) if classes is None else list(classes)
    sub = np.asarray(counts, np.float64)[np.ix_(classes, classes)]
    share = np.nan_to_num(sub / np.maximum(sub.sum(1, keepdims=True), 1))
    names = [class_names[c] for c in classes]
    k = len(classes)
    text = [[f"{share[i, j]:.0%}" if sub[i, j] else "" for j in range(k)] for i in range(k)]
    fig = go.Figure(go.Heatmap(z=share, x=list(range(k)), y=list(range(k)), text=text, texttemplate="%{text}",
                               colorscale="Blues", zmin=0, zmax=1, showscale=False, hoverinfo="skip", xgap=1, ygap=1))
    ii, jj = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    fig.add_trace(go.Scatter(
        x=jj.ravel(), y=ii.ravel(), mode="markers", marker=dict(size=1, opacity=0), showlegend=False,
        customdata=[[classes[i], classes[j], int(sub[i, j]), names[i], names[j], share[i, j]]
                    for i, j in zip(ii.ravel(), jj.ravel(), strict=True)],
        hovertemplate="true %{customdata[3]} → predicted %{customdata[4]}<br>%{customdata[5]:.1%} of the true "
                      "%{customdata[3]} pixels<br>%{customdata[2]:,} px<extra>click: the images</extra>"))
    if picked is not None and picked[0] in classes and picked[1] in classes:
        i, j = classes.index(picked[0]), classes.index(picked[1])
        fig.add_shape(type="rect", x0=j - 0.5, x1=j + 0.5, y0=i - 0.5, y1=i + 0.5, line=dict(color="#D81B60", width=3))
    axis = dict(tickmode="array", tickvals=list(range(k)), ticktext=names, showgrid=False, zeroline=False,
                fixedrange=True)
    fig.update_layout(title=title, height=150 + 44 * k, margin=dict(l=10, r=10, t=40, b=10), hoverdistance=-1,
                      clickmode="event+select", dragmode=False, plot_bgcolor="white",
                      xaxis=dict(axis, title="predicted", range=[-0.5, k - 0.5], tickangle=-30),
                      yaxis=dict(axis, title="true", range=[k - 0.5, -0.5]))
    return fig
