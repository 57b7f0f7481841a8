"""Pages are discovered from app_pages/*.py, ordered by their number prefix (0_home.py first).

Not pages/: that folder name switches on streamlit's older auto-discovery, which runs a page
without app.py when its URL is opened directly (no sidebar picker, no wide layout)."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES_DIR = Path(__file__).resolve().parent.parent / "app_pages"
# Material icons render everywhere (emoji need a font the machine may lack).
ICONS = {"home": ":material/home:", "dataset": ":material/grid_view:", "review": ":material/flag:",
         "outliers": ":material/troubleshoot:", "augment": ":material/tune:", "train": ":material/model_training:",
         "training": ":material/model_training:", "compare": ":material/compare:", "predict": ":material/online_prediction:"}


def _title(stem: str) -> str:
    name = stem.split("_", 1)[1] if stem.split("_", 1)[0].isdigit() and "_" in stem else stem
    return name.replace("_", " ").capitalize()


def pages() -> list:
    files = sorted(PAGES_DIR.glob("*.py"), key=lambda p: (int(p.stem.split("_")[0]) if p.stem.split("_")[0].isdigit() else 99, p.stem))
    out = []
    for i, f in enumerate(files):
        key = f.stem.split("_", 1)[-1]
        out.append(st.Page(str(f), title=_title(f.stem), icon=ICONS.get(key, ":material/description:"), default=(i == 0),
                           url_path=key if i else None))
    return out
