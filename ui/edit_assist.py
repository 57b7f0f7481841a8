"""Model-assisted correction on the Label page: a trained run's (or an ensemble's) prediction of
the image, the regions where it disagrees with the working mask (largest first, with the classes
involved), and one click to accept a region (an undoable step of the editor), reject it (hidden
for this image), or accept the whole prediction as a start for a badly labeled image."""
from __future__ import annotations

import numpy as np
import streamlit as st

from seglib import viz
from seglib.edit.regions import region_key
from seglib.edit.session import regions_picture

from . import editor as ed
from .data import Loaded

P = "label_assist_"
ON = P + "on"                # bool: the panel is open (predicting loads torch and the runs)
RUNS = P + "runs"            # list[str]: run folders
ENSEMBLE = P + "ensemble"    # "mean" | "vote"
TTA = P + "tta"              # bool: test-time flips
REJECTED = P + "rejected"    # dict[image id, set[str]]: regions hidden by "Reject"
SHOWN = 12                   # regions listed at once
ENSEMBLES = {"mean": "mean of probabilities", "vote": "majority vote"}


def _modules():
    """(regions, assist) modules, or None while they are not part of this version."""
    try:
        from seglib.edit import assist, regions
    except ImportError:
        return None
    return regions, assist


def describe(region, class_map) -> str:
    """"412 px: label road → model building"."""
    return (f"{int(region.area):,} px: label {class_map.name_of(int(region.label_class))} → "
            f"model {class_map.name_of(int(region.pred_class))}")


@st.cache_resource(max_entries=64, show_spinner="Predicting the image…")
def _predict(source: str, image_id: str, runs: tuple[str, ...], identities: tuple[str, ...], ensemble: str,
             tta: bool, _ds, _assist) -> np.ndarray:
    return np.asarray(_assist.predict_one(_ds, list(runs), image_id, ensemble=ensemble, tta=tta), np.uint8)


def _rejected(image_id: str) -> set:
    return st.session_state.setdefault(REJECTED, {}).setdefault(image_id, set())


def accept(work: ed.Work, pred: np.ndarray, region, regions_mod) -> int:
    """Accept the prediction inside one region: an undoable step of the working mask."""
    return work.edit(regions_mod.accept_region(work.mask, pred, region), "assist")


def accept_all(work: ed.Work, pred: np.ndarray, class_map, regions_mod) -> int:
    """The whole prediction as one undoable step (pixels of an ignore class stay as they are)."""
    return work.edit(regions_mod.accept_prediction(work.mask, pred, class_map), "assist")


def reject(image_id: str, key: str) -> None:
    _rejected(image_id).add(key)


def current_prediction(loaded: Loaded, work: ed.Work) -> tuple[np.ndarray | None, str]:
    """The prediction of the runs chosen in the panel for Snap to model, or (None, why not)."""
    runs = st.session_state.get(RUNS) or []
    if not st.session_state.get(ON) or not runs:
        return None, "Snap takes a trained run's prediction: turn on Model assist below and choose a run."
    mods = _modules()
    if mods is None:
        return None, "Model assist is not available in this version."
    from . import compare

    ds = loaded.ds
    try:
        pred = _predict(str(ds.source), work.image_id, tuple(runs), tuple(compare._identity(r) for r in runs),
                        st.session_state.get(ENSEMBLE, "mean"), bool(st.session_state.get(TTA)), ds, mods[1])
    except (mods[1].AssistError, ValueError, OSError) as e:
        return None, str(e)
    if pred.shape != work.mask.shape:
        return None, "The prediction's size differs from the mask's."
    return pred, ""


def assist_panel(loaded: Loaded, work: ed.Work) -> None:
    from . import label_errors

    fold = label_errors.fold_of(loaded, work.image_id)   # (run folder, label) of the model that never saw it
    if fold is not None and label_errors.reasons_of(loaded, work.image_id):
        st.info("Out-of-fold label scores: " + "; ".join(label_errors.reasons_of(loaded, work.image_id))
                + f" ({fold[1]})", icon=":material/fact_check:")
        st.session_state.setdefault(ON, True)
        st.session_state.setdefault(RUNS, [fold[0]])
    if not st.toggle("Model assist: a trained run's prediction and where it disagrees with this mask", key=ON):
        return
    mods = _modules()
    if mods is None:
        st.info("Model-assisted correction is not available in this version yet.", icon=":material/hourglass_empty:")
        return
    regions_mod, assist = mods
    from seglib.predict import default_runs, run_choices  # loads torch: only when the panel is on

    from . import compare, roots

    folder = roots.checkpoints_folder()
    if folder is None:
        return
    usable = [r for r in run_choices(compare.layout(loaded), folder) if r.problem is None]
    labels = {r.path: r.label for r in usable}
    if fold is not None:   # the fold run lives under checkpoints/quality/, not among the runs
        labels[fold[0]] = fold[1]
    if not labels:
        st.info(f"No trained run in `{folder}` can predict this dataset yet. Train one on the Train page "
                "(a few epochs are enough to point at wrong labels), then come back.", icon=":material/model_training:")
        return
    st.session_state.setdefault(RUNS, default_runs(usable, 1))
    st.session_state[RUNS] = [p for p in st.session_state[RUNS] if p in labels] or ([fold[0]] if fold else [])
    c1, c2, c3 = st.columns([4, 2, 1], vertical_alignment="bottom")
    runs = c1.multiselect("Runs", list(labels), format_func=labels.get, key=RUNS,
                          help="Several runs make an ensemble")
    ensemble = c2.selectbox("Ensemble", list(ENSEMBLES), format_func=ENSEMBLES.get, key=ENSEMBLE,
                            disabled=len(runs) < 2)
    tta = c3.toggle("Flips", key=TTA, help="Average each model over the image and its flips (4x the time)")
    if not runs:
        st.caption("Choose at least one run.")
        return
    ds, cmap = loaded.ds, loaded.ds.class_map
    try:
        pred = _predict(str(ds.source), work.image_id, tuple(runs), tuple(compare._identity(r) for r in runs),
                        ensemble, bool(tta), ds, assist)
    except (assist.AssistError, ValueError, OSError) as e:
        st.error(str(e))
        return
    if pred.shape != work.mask.shape:
        st.error(f"The prediction is {pred.shape[1]}x{pred.shape[0]} but the mask is "
                 f"{work.mask.shape[1]}x{work.mask.shape[0]}.")
        return
    rejected = _rejected(work.image_id)
    found = regions_mod.disagreement_regions(work.mask, pred, cmap)
    shown = [r for r in found if region_key(r) not in rejected]
    image = ds.image(work.image_id)
    left, right = st.columns(2)
    left.image(viz.thumbnail_pair(viz.overlay(image, pred, cmap, 0.5), None, 640)[0], width="stretch",
               caption="the model's prediction")
    right.image(regions_picture(image, work.mask, shown[:SHOWN], cmap), width="stretch",
                caption=f"{len(shown)} regions where it disagrees with the working mask (numbered, largest first)"
                        + (f" · {len(found) - len(shown)} rejected" if len(found) > len(shown) else ""))
    b1, b2 = st.columns([2, 3])
    b1.button("Accept the whole prediction", icon=":material/done_all:", key=P + "all", width="stretch",
              on_click=accept_all, args=(work, pred, cmap, regions_mod),
              help="A start for a badly labeled image (ignore-class pixels are kept); undoable")
    if rejected:
        b2.button(f"Show the {len(rejected)} rejected again", key=P + "unreject", on_click=rejected.clear)
    if not shown:
        st.success("The model agrees with this mask everywhere (or you rejected what was left).")
        return
    for n, r in enumerate(shown[:SHOWN], start=1):
        k = region_key(r)
        a, b, c = st.columns([6, 1.2, 1.2], vertical_alignment="center")
        a.markdown(f"**{n}.** {describe(r, cmap)}")
        b.button("Accept", key=f"{P}accept_{k}", icon=":material/check:", width="stretch",
                 on_click=accept, args=(work, pred, r, regions_mod))
        c.button("Reject", key=f"{P}reject_{k}", icon=":material/close:", width="stretch",
                 on_click=reject, args=(work.image_id, k))
    if len(shown) > SHOWN:
        st.caption(f"{len(shown) - SHOWN} smaller regions not listed: accept or reject these first.")
