"""Label next (a section of the Label page): the unlabeled images ranked by how unsure the trained
runs are of them, near-identical frames pushed back; "Label" opens one in the editor pre-filled
with the runs' prediction (one undoable step), and saving it makes it a labeled image of the
dataset (in the review store: the user's folder is not written) that the next training run uses."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from . import edit_assist, state
from . import editor as ed
from .data import Loaded, Memo, background_pass, current_unlabeled, unlabeled_problem

P = "label_next_"
STRATEGY = P + "strategy"    # a seglib.edit.label_next.STRATEGIES key: how the pool is ordered
ORDER = ed.RANKED            # list[str]: the ranked ids, for Next / Previous in the editor
ERROR = P + "error"          # str: why the last "Label" could not predict
BATCH = P + "batch"          # str: the folder typed into "New images in another folder"
SHOWN = 20                   # rows listed at once


@st.cache_resource(show_spinner=False)
def _rankings() -> Memo:
    """Rankings by (dataset, its corrections, runs and their weights, diverse): shared, read-only."""
    return Memo(8)


def _rank(loaded: Loaded, runs: tuple[str, ...], strategy: str) -> pd.DataFrame:
    from seglib.edit.label_next import NEEDS_RUNS, candidates, label_next

    from . import compare

    ids = candidates(loaded.ds)
    runs = runs if strategy in NEEDS_RUNS else ()
    key = (loaded.fingerprint, runs, tuple(compare._identity(r) for r in runs), strategy)
    return background_pass(_rankings(), key, lambda bar: label_next(loaded.ds, list(runs), ids, strategy=strategy,
                                                                    progress=bar),
                           "Predicting the unlabeled images" if runs else "Ordering the unlabeled images")


def start_from_prediction(loaded: Loaded, image_id: str, runs: list[str], ensemble: str = "mean") -> None:
    """Open ``image_id`` in the editor with the runs' prediction as its first (undoable) step;
    Next then goes through the ranking. A button callback: it runs before the page is drawn."""
    from seglib.edit.assist import AssistError, predict_one

    work = ed.work_for(loaded, image_id)
    if runs and not work.undo:  # not over edits the reviewer already made
        try:
            pred = predict_one(loaded.ds, runs, image_id, ensemble=ensemble)
        except (AssistError, ValueError, OSError) as e:
            st.session_state[ERROR] = str(e)
            return
        work.edit(np.asarray(pred, np.uint8), "label-next")
    ed.go_to(image_id)
    st.session_state[ed.QUEUE] = "label_next"
    st.session_state[ed.SECTION] = "Edit"


def _set_batch(folder: str) -> None:
    st.session_state[state.UNLABELED] = folder
    if folder:
        st.query_params["unlabeled"] = folder
    elif "unlabeled" in st.query_params:
        del st.query_params["unlabeled"]


def new_batch(loaded: Loaded) -> None:
    """A folder of new images received elsewhere joins the dataset as unlabeled images (the
    dataset's own folder is not written): ranked here, opened in the editor, their saved masks
    labels for the next training run."""
    joined = current_unlabeled()
    with st.expander(f"New images in another folder: {joined}" if joined else "New images in another folder",
                     expanded=False, icon=":material/create_new_folder:"):
        if joined:
            name = Path(joined).name   # the ids of its images start with it
            count = sum(i.startswith(name + "/") for i in loaded.ds.all_ids)
            st.caption(f"{count:,} images of `{joined}` joined this dataset as unlabeled (ids `{name}/...`).")
            st.button("Leave them out", key=P + "batch_remove", on_click=_set_batch, args=("",))
            return
        with st.form(P + "batch_form", border=False):
            folder = st.text_input("Folder of unlabeled images", key=BATCH, placeholder="/data/batch-7",
                                   help="Every image below it joins this dataset as unlabeled, with the id "
                                        "FOLDER_NAME/<file name>; a folder dataset only")
            if st.form_submit_button("Add to the ranking") and folder.strip():
                problem = unlabeled_problem(folder.strip())
                if problem is None:
                    _set_batch(folder.strip())
                    st.rerun()
                elif problem != "refused":
                    st.error(f"{problem}.", icon=":material/folder_off:")


def section(loaded: Loaded) -> None:
    from seglib.edit.assist import AssistError
    from seglib.edit.label_next import NEEDS_RUNS, STRATEGIES, candidates
    from seglib.predict import default_runs, run_choices

    from . import compare, roots

    new_batch(loaded)
    todo = candidates(loaded.ds)
    st.caption(f"{len(todo):,} unlabeled images. The runs predict each; the ones they are least sure of (pixel "
               "entropy, and how often they disagree) come first. Saving a mask makes the image a "
               "labeled one for the next training run (kept in the review store, not in your folder).")
    if not todo:
        st.success("Every image is labeled.", icon=":material/task_alt:")
        return
    folder = roots.checkpoints_folder()
    if folder is None:
        return
    usable = [r for r in run_choices(compare.layout(loaded), folder) if r.problem is None]
    if not usable:
        st.info(f"No trained run in `{folder}` can predict this dataset yet: train one on the Train page first "
                "(ordering by kcenter or random needs none).", icon=":material/model_training:")
    labels = {r.path: r.label for r in usable}
    st.session_state.setdefault(edit_assist.RUNS, default_runs(usable, 2))
    st.session_state[edit_assist.RUNS] = [p for p in st.session_state[edit_assist.RUNS] if p in labels]
    c1, c2 = st.columns([4, 2], vertical_alignment="bottom")
    runs = c1.multiselect("Runs", list(labels), format_func=labels.get, key=edit_assist.RUNS,
                          help="Two or more make an ensemble, and their disagreement counts")
    st.session_state.setdefault(STRATEGY, "score")
    strategy = c2.selectbox("Order by", list(STRATEGIES), key=STRATEGY,
                            help="; ".join(f"{k}: {v}" for k, v in STRATEGIES.items()))
    st.caption(f"**{strategy}**: {STRATEGIES[strategy]}. Active learning beats random picking on some data "
               "(redundant frames, tiles of one scene) and not on other: compare them on yours.")
    if not runs and strategy in NEEDS_RUNS:
        st.caption("Choose at least one run (or order by kcenter or random, which need none).")
        return
    try:
        ranked = _rank(loaded, tuple(runs), strategy)
    except (AssistError, ValueError, OSError) as e:
        st.error(str(e))
        return
    st.session_state[ORDER] = list(ranked["image_id"])
    if st.session_state.get(ERROR):
        st.error(st.session_state.pop(ERROR))
    view = ranked.head(SHOWN)
    for row in view.itertuples():
        a, b = st.columns([6, 1.4], vertical_alignment="center")
        a.markdown(f"**{row.image_id}** · score {row.score:.2f} · {row.why}")
        b.button("Label", key=f"{P}open_{row.image_id}", icon=":material/brush:", width="stretch",
                 help="Open it in the editor, starting from the runs' prediction",
                 on_click=start_from_prediction, args=(loaded, row.image_id, list(runs)))
    if len(ranked) > SHOWN:
        st.caption(f"{len(ranked) - SHOWN:,} more below these; label these first (the list follows your saves).")

