"""Review: find suspicious images on a map or in the detectors' table, flag them, decide on
each in a queue, and export the flags or a cleaned copy. Decisions are saved at once."""
import streamlit as st

from ui import data, nav
from ui import review as rv
from ui import review_queue as rq

nav.require_entry()
loaded = data.with_images()
ctx = rv.context(loaded)

st.title("Review")
st.caption(f"`{loaded.ds.source}` · decisions are stored in `{ctx.store.url}` and saved as you click.")
rv.counts_row(ctx)
section = st.segmented_control("Section", rv.SECTIONS, key=rv.SECTION, label_visibility="collapsed") or "Map"

if section == "Map":
    rv.map_section(ctx)
elif section == "Detectors":
    rv.detector_section(ctx)
elif section == "Queue":
    rq.queue_section(ctx)
else:
    rq.export_section(ctx)
