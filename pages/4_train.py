"""Train: configure a segmentation model, train it in the background while watching live curves
and validation predictions, and look back over every run of this dataset."""
import streamlit as st

from seglib.words import plural
from ui import data, nav, roots, train_live, train_runs
from ui import train as ui_train

nav.require_entry()
loaded = data.current()
if loaded is None:
    st.stop()

st.title(f"Train · {loaded.ds.name}")
if roots.checkpoints_folder() is None:  # runs are written and read only under a dataset root
    st.stop()
ui_train.init(loaded)
st.caption(f"{plural(len(loaded.ds.labeled_ids), 'labeled image')} · runs are saved in `{ui_train.manager().root}` and "
           "train in the background: other pages and tabs stay usable.")
ui_train.show_message()
if len(loaded.ds.labeled_ids) < 2:
    st.warning("This dataset has fewer than two labeled images: a run on it would fail at once.")

form, live = st.columns([2, 3], gap="large")
with form:
    st.subheader("New run")
    ui_train.config_form(loaded)
with live:
    st.subheader("Jobs")
    train_live.live_section()
st.divider()
train_runs.runs_section(loaded)
