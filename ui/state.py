"""Every session_state key the app uses, in one place, with its default."""
from __future__ import annotations

import streamlit as st

DATASET = "dataset_path"          # str: the dataset the app shows ("" = the demo)
RELOAD = "dataset_reload"         # int: bumped by "Rescan" to drop the cached dataset
ORIGINAL_MASKS = "original_masks"  # bool: show the files' masks, not the corrected ones
UNLABELED = "dataset_unlabeled"    # str: a folder of new images joining the dataset as unlabeled ("" = none)

DEFAULTS = {DATASET: "", RELOAD: 0, ORIGINAL_MASKS: False, UNLABELED: ""}


def init() -> None:
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, value)
    # A reload of the browser tab keeps the dataset: it lives in the URL too.
    qp = st.query_params.get("dataset")
    if qp and not st.session_state[DATASET]:
        st.session_state[DATASET] = qp
    qp = st.query_params.get("unlabeled")
    if qp and not st.session_state[UNLABELED]:
        st.session_state[UNLABELED] = qp
    # A switch of page through the navigation clears the URL's query: put the dataset back, or a
    # reload after visiting another page would open the demo.
    for key, name in ((DATASET, "dataset"), (UNLABELED, "unlabeled")):
        current = st.session_state[key]
        if current and st.query_params.get(name) != current:
            st.query_params[name] = current
