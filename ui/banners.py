"""The problems of a dataset as a whole, as banners at the top of Home: one of them (a class file
whose colours miss the masks') explains a thousand per-file warnings, so it is read first and whole."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from seglib.data.report import Problem

from .data import Loaded

# What a banner adds to the report's sentence, by problem code: what the user sees because of it.
CONSEQUENCE = {
    "class_file_colours_missing": "These pixels show **magenta** in the samples and count as *Unknown colours* in the "
                                  "chart and table: no metric or loss sees them. *Fix the class file* below writes "
                                  "one from the masks' colours.",
    "bad_class_map": "The classes below are made up from the masks.",
}


def dataset_banners(loaded: Loaded) -> None:
    """Each dataset-level problem as an error or warning banner, whole; then, when no banner
    accounts for them, how many labeled pixels the class map does not know (a note)."""
    problems = loaded.ds.report.dataset_problems()
    for p in problems:
        _banner(p)
    stats = loaded.stats
    # Information, not a warning: a VOC-style void border (255) is unknown by design.
    if stats.unknown_pixels and not any(p.code == "class_file_colours_missing" for p in problems):
        labeled = int(stats.counts[stats.labeled].sum())
        kind = "colours" if loaded.ds.encoding == "rgb" else "values"
        st.info(f"{stats.unknown_pixels / max(labeled, 1):.1%} of the labeled pixels ({stats.unknown_pixels:,}) "
                   f"have mask {kind} that the class map lacks: they show magenta in the samples, count as "
                   f"*Unknown {kind}* below and are left out of metrics and losses. The validation report names "
                   "the masks.", icon=":material/palette:")


def _banner(p: Problem) -> None:
    show = st.error if p.severity == "error" else st.warning
    text = f"**{Path(p.file).name}**: {p.problem}"
    if p.code in CONSEQUENCE:
        text += "\n\n" + CONSEQUENCE[p.code]
    show(text, icon=":material/error:" if p.severity == "error" else ":material/warning:")
