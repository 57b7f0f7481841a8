"""Home's fix for a class file whose colours miss the masks': name each colour found in the masks
(the file's names matched by order by default), then download the new class file or save it
beside the data (the original kept). The work is seglib.data.class_fix's."""
from __future__ import annotations

from html import escape
from pathlib import Path

import streamlit as st

from seglib.data.class_fix import (
    class_file_from_mask_colours,
    fix_problem,
    mask_colours,
    names_by_order,
    save_class_file,
)

from .data import Loaded

P = "class_fix_"
SAVED = P + "saved"   # the line to show once after a save (the rerun that reloads the dataset)
NEW = "(new class)"


def needed(loaded: Loaded) -> bool:
    """Whether the masks use colours that the class file lacks."""
    return any(p.code == "class_file_colours_missing" for p in loaded.ds.report.problems)


def saved_note() -> None:
    """The confirmation of a save, once, on the run that shows the reloaded dataset."""
    note = st.session_state.pop(SAVED, None)
    if note:
        st.success(note, icon=":material/task_alt:")


def class_file_fix(loaded: Loaded) -> None:
    """The fix, in an expander, when :func:`needed`."""
    if not needed(loaded):
        return
    ds, stats = loaded.ds, loaded.stats
    with st.expander("Fix the class file: name the colours the masks use", expanded=True, icon=":material/build:"):
        problem = fix_problem(ds, stats)
        if problem:
            st.info(f"No class file can be written from the masks: {problem}")
            return
        colours = mask_colours(stats)
        base = stats.class_map
        defaults = names_by_order(colours, base)
        st.caption(f"One class per colour found in the masks, most pixels first. The names of "
                   f"`{Path(ds.class_map_file or 'classes.json').name}` are matched by order: choose the right "
                   "one for each colour. The file keeps its format and its names keep their ids.")
        options = [*base.names, NEW]
        names: dict[str, str | None] = {}
        for c in colours:
            swatch, count, choice = st.columns([2, 3, 4], vertical_alignment="center")
            swatch.markdown(f'<span style="display:inline-block;width:1.4em;height:1.4em;background:{c.color};'
                            f'border:1px solid #888;vertical-align:middle;margin-right:6px"></span>`{c.color}`',
                            unsafe_allow_html=True)
            where = (f" · the file's *{escape(base.name_of(c.class_id))}*" if c.class_id is not None
                     else " · not in the file")
            count.markdown(f"{c.pixels:,} px in {c.masks:,} mask{'s' * (c.masks != 1)}{where}")
            default = defaults[c.color] or NEW
            picked = choice.selectbox(f"Class of {c.color}", options, index=options.index(default),
                                      key=f"{P}{loaded.fingerprint}_{c.color}", label_visibility="collapsed")
            names[c.color] = None if picked == NEW else picked
        try:
            fix = class_file_from_mask_colours(ds, stats, names)
        except ValueError as e:
            st.error(str(e), icon=":material/error:")
            return
        st.caption("New classes: " + ", ".join(f"{c.id} {c.name} {c.color}" for c in fix.class_map))
        left, right = st.columns(2)
        left.download_button("Download the class file", fix.text(), fix.path.name, "application/json",
                             icon=":material/download:", key=P + "download")
        if right.button(f"Save as {fix.path.name} beside the data", icon=":material/save:", key=P + "save",
                        help="The original is kept beside it (classes.orig.json); the dataset is read again "
                             "with the new classes"):
            try:
                backup = save_class_file(fix)
            except OSError as e:
                st.error(f"{fix.path}: cannot write the class file ({e.strerror or e})", icon=":material/error:")
                return
            st.session_state[SAVED] = (f"Saved `{fix.path}`" + (f"; the original is kept as `{backup.name}`"
                                                                  if backup else "") + ".")
            st.rerun()  # the class file's new state reloads the dataset (ui.data keys on it)
