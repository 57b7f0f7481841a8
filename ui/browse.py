"""Dataset page glue: session keys, cached per-image table, filter widgets, chips and plots.

The filter itself is a frozen ``seglib.browse.BrowseFilter`` kept under ``FILTER``; widgets,
chips and plot clicks only ever replace it, and the widgets are re-synced from it each run,
so all three stay consistent.
"""
from __future__ import annotations

from dataclasses import replace

import pandas as pd
import streamlit as st

from seglib import browse
from seglib.browse import BrowseFilter, Range
from seglib.review import STATES, dataset_key
from seglib.viz import plots

from .data import Loaded, review_store

FILTER = "dataset_filter"          # BrowseFilter: what the grid shows
FOR = "dataset_filter_for"         # str: the dataset the filter belongs to (reset on change)
PLOT_GEN = "dataset_plot_gen"      # int: bumped after a plot click so the charts drop the selection
W = "dataset_w_"                   # prefix of this page's filter widget keys
REVIEW_STATES = [browse.NO_STATE] + [s for s in STATES if s != "cleared"]


# --- cached data ---------------------------------------------------------------------------
def fingerprint(loaded: Loaded) -> str:
    return loaded.fingerprint


def per_image(loaded: Loaded) -> pd.DataFrame:
    return loaded.per_image


def review_states(loaded: Loaded) -> dict[str, str]:
    return review_store().states(dataset_key(loaded.ds))


# --- the filter ----------------------------------------------------------------------------
def current_filter(loaded: Loaded) -> BrowseFilter:
    """The filter of this session; a fresh one when the dataset changed."""
    if st.session_state.get(FOR) != loaded.path:
        st.session_state[FOR] = loaded.path
        st.session_state[FILTER] = BrowseFilter()
    return st.session_state.setdefault(FILTER, BrowseFilter())


def set_filter(f: BrowseFilter) -> None:
    st.session_state[FILTER] = f


def _from_widget(field: str, convert=lambda v: v) -> None:
    set_filter(replace(st.session_state[FILTER], **{field: convert(st.session_state[W + field])}))


def _column_label(column: str, loaded: Loaded) -> str:
    return browse.column_label(column, loaded.ds.class_map)


def _sync(f: BrowseFilter) -> None:
    """Widgets show the canonical filter (chips and plot clicks change it behind their back)."""
    st.session_state[W + "present"] = list(f.present)
    st.session_state[W + "absent"] = list(f.absent)
    st.session_state[W + "states"] = list(f.states)
    st.session_state[W + "labeled"] = f.labeled
    st.session_state[W + "sort_by"] = f.sort_by
    st.session_state[W + "descending"] = f.descending


def filter_panel(loaded: Loaded, table: pd.DataFrame) -> BrowseFilter:
    """Widgets for classes present/absent, review state, labeled, one range and the sort order."""
    f = current_filter(loaded)
    _sync(f)
    cmap = loaded.ds.class_map
    names = {c.id: c.name for c in cmap}
    columns = browse.stat_columns(table)
    with st.expander("Filter and sort", expanded=False, icon=":material/filter_alt:"):
        c1, c2, c3, c4 = st.columns([3, 3, 3, 2])
        c1.multiselect("Has all of these classes", cmap.ids, format_func=names.get, key=W + "present",
                       on_change=_from_widget, args=("present", tuple))
        c2.multiselect("Has none of these classes", cmap.ids, format_func=names.get, key=W + "absent",
                       on_change=_from_widget, args=("absent", tuple))
        c3.multiselect("Review state", REVIEW_STATES, key=W + "states", on_change=_from_widget, args=("states", tuple),
                       format_func=lambda s: "not reviewed" if s == browse.NO_STATE else s)
        c4.radio("Masks", ["all", "labeled", "unlabeled"], key=W + "labeled", horizontal=True,
                 on_change=_from_widget, args=("labeled",))
        r1, r2, s1, s2 = st.columns([3, 4, 3, 2])
        col = r1.selectbox("Range on", [""] + columns, key=W + "range_col",
                           format_func=lambda c: "(choose a statistic)" if not c else _column_label(c, loaded))
        if col:
            _range_slider(r2, table, col, f, loaded)
        s1.selectbox("Sort by", ["image_id"] + columns, key=W + "sort_by", on_change=_from_widget, args=("sort_by",),
                     format_func=lambda c: c if c == "image_id" else _column_label(c, loaded))
        s2.toggle("Descending", key=W + "descending", on_change=_from_widget, args=("descending",))
    return st.session_state[FILTER]


def _range_slider(where, table: pd.DataFrame, column: str, f: BrowseFilter, loaded: Loaded) -> None:
    values = table[column].dropna()
    if values.empty:
        where.caption(f"No image has a value for {column}.")
        return
    lo, hi = float(values.min()), float(values.max())
    if column.startswith("frac_"):
        lo, hi, step = 0.0, 1.0, 0.005
    elif pd.api.types.is_integer_dtype(values) or (values % 1 == 0).all():
        step = 1.0
    else:
        step = max((hi - lo) / 200, 1e-6)
    if hi <= lo:
        where.caption(f"Every image has {column} = {lo:g}.")
        return
    key = f"{W}range_{column}"
    have = next((r for r in f.ranges if r.column == column), None)
    st.session_state[key] = (max(lo, have.lo), min(hi, have.hi)) if have else (lo, hi)

    def apply() -> None:
        a, b = st.session_state[key]
        set_filter(st.session_state[FILTER].with_range(Range(column, float(a), float(b))))

    where.slider(_column_label(column, loaded), lo, hi, step=step, key=key, on_change=apply)


def chip_bar(f: BrowseFilter, loaded: Loaded, shown: int, total: int) -> None:
    """Count of images shown, and one removable chip per active condition."""
    chips = browse.chips(f, loaded.ds.class_map)
    cols = st.columns([3] + [2] * min(len(chips), 5) + [2] if chips else [1])
    cols[0].markdown(f"**{shown:,} of {total:,} images** match" if f.active else f"**{total:,} images**")
    for k, (key, label) in enumerate(chips[:5]):
        cols[k + 1].button(f"✕ {label}", key=f"dataset_chip_{key}", help="Remove this condition",
                           on_click=lambda key=key: set_filter(browse.remove_chip(st.session_state[FILTER], key)))
    if len(chips) > 5:
        st.caption("Also: " + "; ".join(label for _, label in chips[5:]))
    if chips:
        cols[-1].button("Clear filter", key="dataset_chip_clear", type="primary", icon=":material/filter_alt_off:",
                        on_click=lambda: set_filter(BrowseFilter(sort_by=f.sort_by, descending=f.descending)))


# --- plots ---------------------------------------------------------------------------------
def _on_plot_select(key: str) -> None:
    event = st.session_state.get(key)
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    if points:
        set_filter(browse.apply_selection(st.session_state[FILTER], points))
        st.session_state[PLOT_GEN] = st.session_state.get(PLOT_GEN, 0) + 1


def clickable(fig, name: str) -> None:
    """A plotly chart whose clicked bars narrow the filter."""
    key = f"dataset_plot_{name}_{st.session_state.get(PLOT_GEN, 0)}"
    st.plotly_chart(fig, key=key, on_select=lambda: _on_plot_select(key), selection_mode=("points", "box"),
                    width="stretch", config={"displaylogo": False})


def plots_panel(loaded: Loaded, table: pd.DataFrame, keep) -> None:
    """Class and image-statistics plots of the images the filter keeps; bars and bins are clickable."""
    cmap = loaded.ds.class_map
    sub = table.loc[keep]
    per_class = browse.subset_per_class(table, cmap, keep)
    with st.expander("Distributions: click a bar or bin to filter", expanded=True, icon=":material/bar_chart:"):
        if not len(sub):
            st.info("No image matches the filter.")
            return
        t1, t2, t3, t4 = st.tabs(["Classes", "Share per image", "Co-occurrence", "Image statistics"])
        with t1:
            a, b = st.columns(2)
            with a:
                clickable(plots.class_share_figure(per_class), "share")
            with b:
                clickable(plots.images_per_class_figure(per_class), "images")
        with t2:
            default = [c.id for c in cmap if not c.ignore][:9]
            chosen = st.multiselect("Classes", cmap.ids, default=default, key="dataset_frac_classes",
                                    format_func=cmap.name_of)
            if chosen:
                clickable(plots.fraction_histograms_figure(sub, cmap, chosen), "fractions")
        with t3:
            cooc = browse.subset_cooccurrence(table, cmap, keep)
            a, b = st.columns(2)
            with a:
                clickable(plots.pairs_figure(cooc, cmap), "pairs")
            with b:
                norm = st.toggle("Share of the row class's images", key="dataset_cooc_norm")
                st.plotly_chart(plots.cooccurrence_figure(cooc, norm), width="stretch", key="dataset_cooc")
        with t4:
            columns = browse.stat_columns(table)
            column = st.selectbox("Statistic", columns, index=columns.index("mean") if "mean" in columns else 0,
                                  key="dataset_stat_col", format_func=lambda c: _column_label(c, loaded))
            clickable(plots.stat_histogram_figure(sub, column, label=_column_label(column, loaded)), "stat")
