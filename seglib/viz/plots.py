"""Class-distribution and image-statistics figures (plotly) as pure functions.

Every clickable bar carries a tagged ``customdata`` list that :func:`seglib.browse.apply_selection`
turns into a filter: ``["class", id, ...]``, ``["range", column, lo, hi, closed, id or -1, count]``,
``["pair", a, b, count]``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..browse import CLASS, PAIR, RANGE
from ..data.classmap import UNKNOWN_INDEX, ClassMap
from ..review.tables import NO_DETECTOR, UNREVIEWED

__all__ = ["class_share_figure", "images_per_class_figure", "fraction_histograms_figure",
           "stat_histogram_figure", "cooccurrence_figure", "pairs_figure", "bar_color", "map_figure", "STATE_COLORS",
           "distribution_figure"]

_MARGIN = dict(l=10, r=10, t=40, b=10)
# Review states on the map: grey not yet seen, amber flagged, green keep, red exclude, violet relabel.
STATE_COLORS = {UNREVIEWED: "#9AA5B1", "flagged": "#F5A623", "keep": "#2E9E5B", "exclude": "#D0021B",
                "relabel": "#7B61FF"}


def bar_color(color: str) -> str:
    """Black bars vanish on dark themes and look like holes on light ones: draw them grey."""
    return "#BBBBBB" if color.upper() == "#000000" else color


def _class_bars(per_class: pd.DataFrame, x: str, title: str, text: list[str], hover: str,
                xformat: str | None = None) -> go.Figure:
    df = per_class.iloc[::-1]
    custom = [[CLASS, int(r.id), int(r.pixels), int(r.images_with_class)] for r in df.itertuples()]
    # Unknown pixels are no class: hatched, so the bar never reads as one of the class colours.
    hatch = ["/" if i == UNKNOWN_INDEX else "" for i in df["id"]]
    fig = go.Figure(go.Bar(x=df[x], y=df["name"], orientation="h", marker_color=[bar_color(c) for c in df["color"]],
                           marker_pattern_shape=hatch, customdata=custom, text=text[::-1], textposition="auto",
                           hovertemplate=hover))
    fig.update_layout(title=title, height=60 + 32 * len(df), margin=_MARGIN, clickmode="event+select",
                      xaxis_tickformat=xformat, xaxis_rangemode="nonnegative")
    if not len(df) or not (df[x] > 0).any():  # all zero: plotly would centre the axis on 0 (-100%..100%)
        fig.update_xaxes(range=[0, 1])
    return fig


def class_share_figure(per_class: pd.DataFrame, title: str = "Pixel share per class") -> go.Figure:
    """Horizontal bars of ``stats.per_class()`` (or ``browse.subset_per_class``) in the class colours;
    an unknown row (``per_class(unknown_name=...)``, id UNKNOWN_INDEX) is hatched magenta."""
    return _class_bars(per_class, "pixel_fraction", title, [f"{v:.2%}" for v in per_class["pixel_fraction"]],
                       "%{y}: %{x:.2%} of pixels<br>%{customdata[2]:,} px in %{customdata[3]:,} images"
                       "<extra>click: images with %{y}</extra>", ".0%")


def images_per_class_figure(per_class: pd.DataFrame, title: str = "Images containing each class") -> go.Figure:
    """Horizontal bars: number of labeled images in which each class occurs."""
    return _class_bars(per_class, "images_with_class", title, [f"{v:,}" for v in per_class["images_with_class"]],
                       "%{y}: in %{x:,} images<extra>click: images with %{y}</extra>")


def _bins(values: np.ndarray, bins: int, lo: float | None = None, hi: float | None = None):
    """np.histogram with integer-aware edges: an integer column gets one bin per value when few."""
    lo = float(np.min(values)) if lo is None else lo
    hi = float(np.max(values)) if hi is None else hi
    if hi <= lo:
        hi = lo + 1.0
    if np.all(np.mod(values, 1) == 0) and hi - lo + 1 <= bins:
        edges = np.arange(lo, hi + 2) - 0.5
    else:
        edges = np.linspace(lo, hi, bins + 1)
    counts, edges = np.histogram(values, edges)
    return counts, edges


def _nice_ceiling(v: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k that is >= v (capped at 1: shares)."""
    if v <= 0:
        return 1.0
    base = 10 ** np.floor(np.log10(v))
    return float(min(1.0, next(m * base for m in (1, 2, 2.5, 5, 10) if m * base >= v - 1e-12)))


def _range_custom(column: str, edges: np.ndarray, counts: np.ndarray, class_id: int = -1) -> list[list]:
    """One ``["range", ...]`` per bin: half-open like np.histogram, the last bin closed."""
    n = len(counts)
    return [[RANGE, column, float(edges[k]), float(edges[k + 1]), k == n - 1, class_id, int(counts[k])]
            for k in range(n)]


def fraction_histograms_figure(per_image: pd.DataFrame, class_map: ClassMap, class_ids: list[int] | None = None,
                               bins: int = 20, cols: int = 3) -> go.Figure:
    """Small multiples: per class, how much of each image it covers, over the images that contain it.

    Images without the class are left out (the images-per-class chart counts them), so the
    bins show the spread where the class occurs. Clicking a bin keeps those images.
    """
    class_ids = [c.id for c in class_map if not c.ignore] if class_ids is None else list(class_ids)
    cols = max(1, min(cols, len(class_ids)))
    rows = max(1, -(-len(class_ids) // cols))
    names = [class_map.name_of(c) for c in class_ids]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names,
                        vertical_spacing=0.5 / max(rows, 1) if rows > 1 else 0.1)
    for k, cid in enumerate(class_ids):
        col = f"frac_{cid}"
        values = per_image[col].to_numpy(np.float64) if col in per_image else np.zeros(0)
        values = values[np.nan_to_num(values) > 0]
        # Each panel spans 0..its largest share: a class under 1% would be one bar on 0..100%.
        hi = _nice_ceiling(float(values.max())) if len(values) else 1.0
        if len(values):
            counts, edges = _bins(values, bins, 0.0, hi)
        else:
            counts, edges = np.zeros(bins, int), np.linspace(0, 1, bins + 1)
        color = bar_color(class_map.by_id(cid).color) if cid in class_map.ids else "#888888"
        fig.add_trace(go.Bar(
            x=(edges[:-1] + edges[1:]) / 2, y=counts, width=np.diff(edges), marker_color=color, name=names[k],
            customdata=_range_custom(col, edges, counts, cid), showlegend=False,
            hovertemplate=f"{names[k]}: %{{customdata[2]:.1%}}–%{{customdata[3]:.1%}} of the image"
                          "<br>%{y:,} images<extra></extra>"), row=k // cols + 1, col=k % cols + 1)
    fig.update_xaxes(tickformat=".1%", rangemode="tozero")
    fig.update_layout(title="Share of the image covered, per class (images that contain it)", bargap=0.05,
                      height=100 + 190 * rows, margin=dict(_MARGIN, t=80), clickmode="event+select")
    return fig


def stat_histogram_figure(per_image: pd.DataFrame, column: str, bins: int = 30, label: str | None = None) -> go.Figure:
    """Histogram of one per-image column (NaN rows left out); clicking a bin keeps those images."""
    values = per_image[column].to_numpy(np.float64)
    values = values[~np.isnan(values)]
    counts, edges = _bins(values, bins) if len(values) else (np.zeros(1, int), np.array([0.0, 1.0]))
    label = label or column
    fig = go.Figure(go.Bar(
        x=(edges[:-1] + edges[1:]) / 2, y=counts, width=np.diff(edges), marker_color="#4363D8",
        customdata=_range_custom(column, edges, counts),
        hovertemplate=f"{label} in [%{{customdata[2]:,.4g}}, %{{customdata[3]:,.4g}}]<br>%{{y:,}} images"
                      "<extra></extra>"))
    fig.update_layout(title=f"Images by {label}", xaxis_title=label, yaxis_title="images", bargap=0.05,
                      height=300, margin=_MARGIN, clickmode="event+select")
    return fig


def cooccurrence_figure(cooc: pd.DataFrame, normalize: bool = False) -> go.Figure:
    """Heatmap of ``cooccurrence()``: images holding both classes (or, normalized, the share of
    the row class's images that also hold the column class)."""
    counts = cooc.to_numpy(np.float64)
    z = counts / np.maximum(np.diag(counts)[:, None], 1) if normalize else counts
    text = [[f"{v:.0%}" if normalize else f"{int(v):,}" for v in row] for row in z]
    fig = go.Figure(go.Heatmap(z=z, x=list(cooc.columns), y=list(cooc.index), text=text, texttemplate="%{text}",
                               colorscale="Blues", customdata=counts,
                               hovertemplate="%{y} & %{x}: %{customdata:,} images<extra></extra>"))
    which = " (share of the row class's images)" if normalize else " (images)"
    fig.update_layout(title="Class co-occurrence" + which,
                      yaxis_autorange="reversed", height=120 + 40 * len(cooc), margin=_MARGIN)
    return fig


def pairs_figure(cooc: pd.DataFrame, class_map: ClassMap, top: int = 15) -> go.Figure:
    """Bars of the ``top`` class pairs by number of images holding both; clicking one keeps them.

    Plotly heatmaps report no selections in Streamlit, so pairs are picked here instead.
    """
    ids, counts = class_map.ids, cooc.to_numpy()
    pairs = [(int(counts[i, j]), ids[i], ids[j]) for i in range(len(ids)) for j in range(i + 1, len(ids))
             if counts[i, j] > 0]
    pairs = sorted(pairs, key=lambda p: (-p[0], p[1], p[2]))[:top][::-1]
    labels = [f"{class_map.name_of(a)} + {class_map.name_of(b)}" for _, a, b in pairs]
    fig = go.Figure(go.Bar(
        x=[p[0] for p in pairs], y=labels, orientation="h", marker_color="#3CB44B",
        customdata=[[PAIR, a, b, n] for n, a, b in pairs], text=[f"{p[0]:,}" for p in pairs], textposition="auto",
        hovertemplate="%{y}: %{x:,} images<extra>click: images with both</extra>"))
    fig.update_layout(title="Class pairs: images holding both", height=60 + 28 * max(len(pairs), 1),
                      margin=_MARGIN, clickmode="event+select")
    return fig


# --- class rebalancing -------------------------------------------------------------------
def distribution_figure(table: pd.DataFrame, measure: str = "pixel_share") -> go.Figure:
    """Grouped bars: share per class before vs after rebalancing (``sampling.compare_distributions``)."""
    label = {"pixel_share": "Pixel share", "image_share": "Images with the class"}[measure]
    fig = go.Figure()
    for when, opacity in (("before", 0.45), ("after", 1.0)):
        part = table[(table["measure"] == measure) & (table["when"] == when)]
        colors = [bar_color(c) for c in part["color"]]
        fig.add_bar(x=part["name"], y=part["share"], name=when, marker_color=colors, opacity=opacity,
                    text=[f"{v:.1%}" for v in part["share"]], textposition="outside",
                    hovertemplate="%{x} " + when + ": %{y:.2%}<extra></extra>")
    fig.update_layout(title=label, barmode="group", yaxis_tickformat=".0%",
                      height=340, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=1.12, x=1,
                                                                                   xanchor="right"))
    return fig


# --- the review map ------------------------------------------------------------------------
def map_figure(table: pd.DataFrame, x: str, y: str, color: str) -> go.Figure:
    """The Review page's map: a point per row of ``table`` (``seglib.review.tables.map_table``) at
    (``x``, ``y``), one go.Scatter per value of the ``color`` column ("review state" in
    :data:`STATE_COLORS`, or "detector"); SVG, so points are DOM elements; customdata = image id."""
    fig = go.Figure()
    if color == "review state":
        order = list(STATE_COLORS)
    else:
        order = sorted(table[color].unique(), key=lambda v: v != NO_DETECTOR)
    for cat in order:
        part = table[table[color] == cat]
        if part.empty:
            continue
        fig.add_trace(go.Scatter(
            x=part[x], y=part[y], mode="markers", name=f"{cat} ({len(part):,})",
            customdata=part.index.to_numpy(), marker=dict(size=7, opacity=0.8, color=STATE_COLORS.get(cat),
                                                          line=dict(width=0.5, color="white")),
            hovertemplate=f"%{{customdata}}<br>{x}=%{{x:.3g}}<br>{y}=%{{y:.3g}}<br>{cat}<extra></extra>"))
    fig.update_layout(height=520, margin=dict(l=10, r=10, t=30, b=10), xaxis_title=x, yaxis_title=y,
                      legend=dict(orientation="h", y=1.08, x=0), showlegend=True)
    # No dragmode/clickmode here: Streamlit then lets a click select a point; box and lasso
    # are on the modebar (a "select" dragmode would turn click-to-select off).
    return fig
