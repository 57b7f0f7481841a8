"""The Train form's split setting and its leak warning: whether the split would put images that
share pixels (overlapping crops, copies, frames of a video) on both sides of training and
validation, with the counts, and a button that switches to the split by group.

The groups come from the outlier detectors' table: at hand once the Review page (or a training,
or ``seglib outliers``) has read the dataset; otherwise a button reads it here, with a bar.
Widget keys come with the form's prefix; this module's own keys start with ``train_split_``."""
from __future__ import annotations

import streamlit as st

from seglib import outliers
from seglib.review import dataset_key
from seglib.train import TrainConfig
from seglib.train.split import SPLIT_BY
from seglib.train.split_plan import planned_leak

from .data import Loaded, Memo, background_pass, review_store

SPLIT_LABELS = {"image": "Images (random, stratified)", "folder": "Folders (an image's first folder)",
                "overlap": "Groups of images that share pixels"}
SPLIT_HELP = ("Images: a random split stratified by the rarest class. Folders: every image of a first folder "
              "(e.g. 'Tile 3') on one side. Groups: images that share pixels with one another (crops of one "
              "photo, copies, video frames, as the Review page's detectors find them) on one side; stratified "
              "as far as the groups allow.")
CHECK = "train_split_check"  # the button that reads the dataset for the detectors


@st.cache_resource(show_spinner=False)
def _groups() -> Memo:
    """Groups of images sharing pixels by (path, fingerprint), shared by the sessions (read-only)."""
    return Memo(4)


def shared_groups(loaded: Loaded) -> dict[str, str] | None:
    """Image id -> group for the images that share pixels, or None when the detectors have not
    read this dataset yet (nothing is read here)."""
    key = (loaded.path, loaded.fingerprint)
    found, groups = _groups().get(key)
    if found:
        return groups
    flags = outliers.cached_detections(loaded.ds)
    if flags is None:
        return None
    groups = outliers.shared_pixel_groups(flags)
    _groups().put(key, groups)
    return groups


def _find_groups(loaded: Loaded) -> dict[str, str]:
    """Run the detectors (a background pass with a bar; their table is cached for the Review page too)."""
    return background_pass(_groups(), (loaded.path, loaded.fingerprint),
                           lambda bar: outliers.shared_pixel_groups(outliers.detect(loaded.ds, loaded.stats,
                                                                                    progress=bar)),
                           "Reading the images to find those that share pixels", after="Matching the images…")


def form_leak(loaded: Loaded, prefix: str, groups: dict[str, str]):
    """The SplitLeak of the split the form's values would draw, or a string saying why none can be drawn."""
    s = st.session_state
    cfg = TrainConfig(data=loaded.path, val_fraction=float(s[prefix + "val_fraction"]), seed=int(s[prefix + "seed"]),
                      split_by=s[prefix + "split_by"], leave_out_excluded=bool(s[prefix + "leave_out_excluded"]))
    excluded = [i for i, state in review_store().states(dataset_key(loaded.ds)).items() if state == "exclude"]
    try:
        return planned_leak(cfg, loaded.ds, loaded.stats, groups, excluded)
    except ValueError as e:
        return str(e)


def _split_by_groups(key: str) -> None:
    st.session_state[key] = "overlap"


def split_setting(loaded: Loaded, prefix: str) -> None:
    """The "Split by" select box, then what the split does to images that share pixels."""
    key = prefix + "split_by"
    st.selectbox("Split by", SPLIT_BY, format_func=SPLIT_LABELS.get, key=key, help=SPLIT_HELP)
    groups = shared_groups(loaded)
    if groups is None:
        c1, c2 = st.columns([3, 1], vertical_alignment="center")
        c1.caption("Not looked for yet: images that share pixels (overlapping crops, copies) on both sides of the "
                   "split. Training looks before it starts; the Review page's detectors find them too.")
        if c2.button("Look now", key=CHECK, icon=":material/search:"):
            groups = _find_groups(loaded)
        else:
            return
    leak = form_leak(loaded, prefix, groups)
    if isinstance(leak, str):
        st.error(f"This split cannot be drawn: {leak}.", icon=":material/error:")
    elif leak:
        st.warning(f"**This split leaks**: it puts {leak.words()} on both sides of training and validation, so "
                   "validation scores pictures training has seen and reads too high.", icon=":material/warning:")
        if st.session_state[key] != "overlap":
            st.button("Split by groups of images that share pixels", key="train_split_by_groups",
                      icon=":material/call_split:", on_click=_split_by_groups, args=(key,))
    else:
        n = len(set(groups.values()))
        st.caption(f":material/check: No images share pixels across this split ({n:,} group{'' if n == 1 else 's'} "
                   "of images that share pixels, each on one side)." if n else
                   ":material/check: No images in this dataset share pixels with another.")


def leak_note(loaded: Loaded, prefix: str) -> None:
    """One line above Start when the split leaks (the section saying more may be folded)."""
    groups = shared_groups(loaded)
    leak = form_leak(loaded, prefix, groups) if groups else None
    if leak and not isinstance(leak, str):
        st.warning(f"The split puts {leak.groups:,} group{'' if leak.groups == 1 else 's'} of images that share "
                   "pixels on both sides: see *Split by* under Data and sampling.", icon=":material/warning:")
