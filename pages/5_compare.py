"""Compare: predictions of trained runs and their ensembles, image by image and over the dataset:
overlays, disagreement, errors, confidence; per-image and per-class metrics; confusion matrices
down to the pixels; label quality; export."""
import streamlit as st

from ui import compare as cp
from ui import compare_image, compare_panels, compare_tools, data, nav

nav.require_entry()
loaded = data.current()
if loaded is None:
    st.stop()

st.title("Compare")
layout = cp.layout(loaded)
spec = cp.picker(loaded, layout)
if spec is None:
    st.info("Choose runs and ensembles above, then press **Compare**.")
    st.stop()
ctx = cp.comparison(loaded, spec, layout)
if ctx is None:
    st.stop()
cp.summary(ctx)
sections = cp.sections(ctx)
if st.session_state.get(cp.SECTION) not in sections:
    st.session_state[cp.SECTION] = sections[0]
section = st.segmented_control("Section", sections, key=cp.SECTION, label_visibility="collapsed", required=True)

SHOW = {"Images": compare_image.image_section, "Per image": compare_panels.per_image_section,
        "Dataset": compare_panels.dataset_section, "Confusion": compare_panels.confusion_section,
        "Label quality": compare_tools.quality_section, "Export": compare_tools.export_section}
SHOW[section](ctx)
