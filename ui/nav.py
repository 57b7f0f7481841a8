"""Pages are discovered from pages/*.py, ordered by their number prefix (0_home.py first).

Every page calls :func:`require_entry` first: see there why."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from . import state

PAGES_DIR = Path(__file__).resolve().parent.parent / "pages"
# Material icons render everywhere (emoji need a font the machine may lack).
ICONS = {"home": ":material/home:", "dataset": ":material/grid_view:", "review": ":material/flag:",
         "outliers": ":material/troubleshoot:", "augment": ":material/tune:", "train": ":material/model_training:",
         "training": ":material/model_training:", "compare": ":material/compare:",
         "predict": ":material/online_prediction:", "label": ":material/brush:"}


def _title(stem: str) -> str:
    name = stem.split("_", 1)[1] if stem.split("_", 1)[0].isdigit() and "_" in stem else stem
    return name.replace("_", " ").capitalize()


def pages() -> list:
    def order(p: Path) -> tuple[int, str]:
        number = p.stem.split("_")[0]
        return (int(number) if number.isdigit() else 99, p.stem)

    files = sorted(PAGES_DIR.glob("*.py"), key=order)
    out = []
    for i, f in enumerate(files):
        key = f.stem.split("_", 1)[-1]
        out.append(st.Page(str(f), title=_title(f.stem), icon=ICONS.get(key, ":material/description:"),
                           default=(i == 0), url_path=key if i else None))
    return out


def require_entry() -> None:
    """Make sure ``app.py`` ran before this page (the first line of every page).

    Streamlit (1.36 to at least 1.67) keeps the old multipage mode for apps with a ``pages/``
    folder beside the entry script until the process's first ``st.navigation`` call. So when
    the first request a fresh server gets is a page's own URL (a bookmark, a reload after a
    restart), Streamlit runs that page's file alone: no page config, no sidebar, no dataset
    picker. No setting turns that mode off. A page that finds the session state ``app.py``
    sets missing calls ``st.navigation``, which switches the old mode off for the process, and
    reruns: the rerun starts at ``app.py`` and lands on the same page.
    """
    if state.DATASET not in st.session_state:  # state.init() in app.py did not run
        st.navigation(pages(), position="hidden")
        st.rerun()


LABEL_PAGE = "pages/6_label.py"


def fix_mask_button(image_id: str, key: str, where=st, **kwargs) -> None:
    """"Fix this mask": opens the Label page's editor on ``image_id`` (``?image=ID``)."""
    if where.button("Fix this mask", key=key, icon=":material/brush:", help="Open it in the mask editor (Label page)",
                    **kwargs):
        st.switch_page(LABEL_PAGE, query_params={"image": image_id})
