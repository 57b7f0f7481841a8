"""Dataset: browse images with mask overlays, filter and sort them, see and click class distributions."""
from __future__ import annotations

import streamlit as st

from seglib import browse
from ui import browse as ui_browse
from ui import data, nav
from ui import dataset_grid as grid

nav.require_entry()
loaded = data.with_images()
table = ui_browse.per_image(loaded)
states = ui_browse.review_states(loaded)

st.title(f"Dataset · {loaded.ds.name}")
f = ui_browse.filter_panel(loaded, table)
keep = browse.filter_mask(table, f, states)
ids = browse.sort_ids(table, keep, f.sort_by, f.descending)

top, actions = st.columns([5, 1], vertical_alignment="center")
with top:
    ui_browse.chip_bar(f, loaded, len(ids), len(table))
with actions:
    grid.review_actions(loaded, ids, states, f.active)
reviewed = grid.counts_caption(states, ids)
if reviewed:
    st.caption(f"Review state of these images: {reviewed}")

ui_browse.plots_panel(loaded, table, keep)

st.subheader("Images")
view, per_page, n_cols = grid.view_controls(loaded)
grid.grid(loaded, ids, states, view, per_page, n_cols, f)
