"""Segmentation review studio: entry point (page config, navigation, dataset picker)."""
import os
from pathlib import Path

# No network at run time; the app keeps its files next to itself unless told otherwise.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("SEGLIB_DATA_DIR", str(Path(__file__).parent / "data"))
os.environ.setdefault("SEGLIB_CHECKPOINTS", str(Path(__file__).parent / "checkpoints"))

import streamlit as st  # noqa: E402

from ui import errors, nav, sidebar, state  # noqa: E402

st.set_page_config(page_title="Segmentation review studio", page_icon="🛰️", layout="wide")
state.init()
page = st.navigation(nav.pages())
sidebar.dataset_picker()
errors.run_page(page)   # a failure shows a short message and a reference, not a traceback
