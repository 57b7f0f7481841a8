"""Streamlit glue of out-of-fold label quality (seglib.quality): the Review page's *Label errors*
panel (start, follow and cancel the scoring job; what the scores say), the ``label_errors``
rows of the detector table, and the findings drawn on the Dataset detail view."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from seglib.quality import DEFAULT_FOLDS, LabelScores, default_out, load_scores
from seglib.quality.crossval import fold_statuses
from seglib.quality.score import SCORES_JSON
from seglib.train import TrainConfig
from seglib.train.config import ConfigError
from seglib.train.jobs import JobError
from seglib.viz.maps import highlight

from . import state
from .data import Loaded

K = "label_errors_"                 # prefix of this panel's widget keys
ENCODERS = {"mobilenet_v2": ("Unet", "U-Net / MobileNetV2 (fast)"), "resnet18": ("Unet", "U-Net / ResNet-18"),
            "mit_b0": ("Segformer", "SegFormer / MiT-B0")}
POLL_S = 2.0


def out_dir(loaded: Loaded) -> Path:
    """This dataset's folds and scores (one folder per dataset under checkpoints/quality/)."""
    return default_out(loaded.ds.source)


@st.cache_resource(max_entries=8, show_spinner=False)
def _scores(out: str, mtime_ns: int) -> LabelScores | None:
    return load_scores(out)


def scores(loaded: Loaded) -> LabelScores | None:
    """The dataset's latest scores (read again when the scores file changes), or None."""
    out = out_dir(loaded)
    try:
        mtime = (out / SCORES_JSON).stat().st_mtime_ns
    except OSError:
        return None
    return _scores(str(out), mtime)


def versions(loaded: Loaded) -> dict[str, int]:
    overlay = loaded.ds.corrections
    return dict(overlay.versions) if overlay is not None else {}


def flag_rows(loaded: Loaded) -> pd.DataFrame | None:
    """The ``label_errors`` detector rows, or None when the dataset was never scored."""
    s = scores(loaded)
    return None if s is None else s.flags(versions(loaded))


def fold_of(loaded: Loaded, image_id: str) -> tuple[str, str] | None:
    """(run folder, label) of the fold model that never trained on ``image_id``, when scored."""
    s = scores(loaded)
    if s is None or image_id not in s.measures:
        return None
    fold = s.measures[image_id].fold
    if fold >= len(s.runs) or not Path(s.runs[fold]).is_dir():
        return None
    return s.runs[fold], f"fold {fold + 1} of {s.folds}: the model that never saw this image (out-of-fold)"


def reasons_of(loaded: Loaded, image_id: str) -> list[str]:
    s = scores(loaded)
    if s is None or image_id not in s.measures:
        return []
    rows = s.table[s.table.image_id == image_id]
    return list(rows.iloc[0].reasons) if len(rows) else []


# --- the panel ------------------------------------------------------------------------------
def panel(loaded: Loaded) -> None:
    """What the scores say, and the job that makes them."""
    from .train import manager

    out = out_dir(loaded)
    s = scores(loaded)
    job = manager().job_for_run(out)
    statuses = fold_statuses(out)
    st.markdown("**Label errors** · every labeled image scored by a model that never trained on it "
                "(K-fold cross-validation, cleanlab's softmin and region checks: objects left unlabeled, "
                "regions given the wrong class, outlines dilated, eroded, shifted or coarse).")
    if s is not None:
        stale = s.stale(versions(loaded))
        flagged = int((s.table.score >= 0.35).sum())
        st.caption(f"{len(s.table):,} images scored by {s.folds} fold models · **{flagged:,} suspicious** (score ≥ "
                   f"0.35, in the table below as *label_errors*)"
                   + (f" · {len(stale):,} masks corrected since: their scores are stale until you score again"
                      if stale else "") + (f" · {len(s.unscored):,} labeled since, not scored" if s.unscored else ""))
    elif statuses:
        done = statuses.count("done")
        st.caption(f"{done} of {len(statuses)} fold models trained ({', '.join(statuses)}): start again to go on "
                   f"(finished folds are reused).")
    if job is not None and job.active:
        _follow(str(out))
        return
    if job is not None and job.status == "failed":
        st.error(f"Label scoring failed: {job.error}")
    _start_form(loaded, out, bool(s is not None or statuses))


def _start_form(loaded: Loaded, out: Path, started: bool) -> None:
    from .train import manager

    with st.expander(f"Score every label: trains {st.session_state.get(K + 'folds', DEFAULT_FOLDS)} models",
                     expanded=not started):
        c1, c2, c3, c4 = st.columns(4)
        folds = c1.number_input("Folds (models)", 2, 10, DEFAULT_FOLDS, key=K + "folds",
                                help="Each model trains on the other folds and scores its own: more folds, "
                                     "models closer to one trained on everything, and longer")
        encoder = c2.selectbox("Model", list(ENCODERS), format_func=lambda e: ENCODERS[e][1], key=K + "encoder")
        epochs = c3.number_input("Epochs per model", 1, 200, 8, key=K + "epochs")
        steps = c4.number_input("Steps per epoch (0 = all)", 0, 100_000, 0, key=K + "steps")
        st.caption("A job of the Train page's queue: it waits for the trainings before it, its folds are "
                   f"ordinary run folders under `{out}`, a cancel keeps every finished epoch, and starting again "
                   "reuses what finished. Scoring the same data again trains nothing.")
        if st.button(f"Score every label: train {folds} models", type="primary", icon=":material/fact_check:",
                     key=K + "start"):
            cfg = TrainConfig(data=loaded.path or loaded.ds.source, arch=ENCODERS[encoder][0], encoder=encoder,
                              epochs=int(epochs), max_steps_per_epoch=int(steps), patience=0,
                              original_masks=bool(st.session_state.get(state.ORIGINAL_MASKS)))
            try:
                manager().submit_quality(cfg, out, int(folds))
            except (ConfigError, JobError, ValueError) as e:
                st.error(str(e))
            else:
                st.rerun()


@st.fragment(run_every=POLL_S)
def _follow(out: str) -> None:
    """The running job, every POLL_S seconds; the page reruns once when it ends (new scores)."""
    from .train import manager

    job = manager().job_for_run(out)
    if job is None or not job.active:
        st.rerun()
        return
    if job.status == "queued":
        text = f"Queued (position {job.queue_position}): it starts when the trainings before it finish."
    elif job.phase == "scoring":
        text = f"Scoring: {job.step:,} of {job.steps:,} images predicted by their fold's model"
    else:
        epoch = f" · epoch {job.epoch}/{job.epochs}" if job.epochs else ""
        left = f" · about {_duration(job.eta_s)} left" if job.eta_s else ""
        text = f"Fold {min(job.fold + 1, job.folds)} of {job.folds}{epoch}{left}"
    c1, c2 = st.columns([5, 1], vertical_alignment="bottom")
    c1.progress(job.progress, text=text)
    if c2.button("Cancel", key=K + "cancel", disabled=job.cancel_requested, width="stretch"):
        manager().cancel(job.id)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


# --- the Dataset detail view ------------------------------------------------------------------------
def findings_view(loaded: Loaded, image_id: str, draw) -> None:
    """The image's out-of-fold findings in words, and their pixels in magenta over ``draw()``
    (the detail view's drawing at the image's own size, made only when there is something)."""
    s = scores(loaded)
    if s is None or image_id not in s.measures:
        return
    row = s.table[s.table.image_id == image_id].iloc[0]
    found = s.findings.get(image_id, [])
    stale = image_id in set(s.stale(versions(loaded)))
    head = (f"Label errors (fold {row.fold + 1} model, which never saw this image): score **{row.score:.2f}**"
            + (" · *stale: the mask was corrected since*" if stale else ""))
    with st.expander(head, expanded=bool(row.reasons)):
        for words in row.reasons or ["nothing stands out"]:
            st.markdown(f"- {words}")
        picture = draw() if found else None
        if picture is not None and picture.shape[:2] == s.measures[image_id].shape:
            st.image(highlight(picture, s.regions_mask(image_id), alpha=0.55), width="stretch",
                     caption=f"{len(found)} suspicious region{'' if len(found) == 1 else 's'} in magenta")
