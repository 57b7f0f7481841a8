"""The Train page's live view: the jobs of this app process (progress, ETA, cancel) and the
curves and validation strip of one of them, in a fragment that polls the job manager's
snapshots. Nothing here runs in the training thread: it only reads snapshots."""
from __future__ import annotations

import os
import time

import streamlit as st

from seglib.data.classmap import ClassMap
from seglib.train.jobs import JobSnapshot
from seglib.viz import legend_html, training
from seglib.words import plural

from .train import ACTIVE_SEEN, WATCH, manager

POLL_ACTIVE_S = 2.0   # while a job is queued or training
POLL_IDLE_S = 5.0     # otherwise: notice jobs started from another tab
FINISHED_SHOWN = 4    # finished jobs listed under the active ones (all runs are in the table below)
BADGE = {"running": "blue", "queued": "gray", "done": "green", "stopped_early": "green", "cancelled": "orange",
         "failed": "red", "interrupted": "violet"}


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def badge(status: str) -> str:
    return f":{BADGE.get(status, 'gray')}-badge[{status.replace('_', ' ')}]"


def _active_ids(snaps: list[JobSnapshot]) -> tuple:
    return tuple(s.id for s in snaps if s.active)


def progress_text(s: JobSnapshot) -> str:
    """One line on where a job stands."""
    if s.status == "queued":
        return f"waiting: #{s.queue_position} in the queue"
    if s.status == "running" and s.phase == "preparing":
        return "reading the data and building the model…"
    if s.status == "running":
        parts = [f"epoch {max(s.epoch, 1)}/{s.epochs}", f"step {s.step}/{s.steps}"]
        if s.phase == "validating":
            parts.append("validating")
        if s.loss is not None:
            parts.append(f"loss {s.loss:.4f}")
        if s.images_per_s:
            parts.append(f"{s.images_per_s:.0f} img/s")
        parts.append(f"ETA {duration(s.eta_s)}" if s.eta_s is not None else "ETA after the first steps")
        if s.cancel_requested:
            parts.append("cancelling after this step…")
        return " · ".join(parts)
    best_epoch, best = s.best
    score = f" · best {s.monitor} {best:.4f} at epoch {best_epoch}" if best is not None else ""
    if s.status == "cancelled":
        if not s.started:
            return "cancelled before it started"
        if not s.history:
            return "cancelled in its first epoch: no weights saved"
        return f"cancelled during epoch {max(s.epoch, 1)}{score}; last weights kept"
    if s.status == "failed":
        return f"failed after {duration(s.elapsed_s)}"
    return f"{s.status.replace('_', ' ')} in {duration(s.elapsed_s)} · {plural(len(s.history), 'epoch')}{score}"


def live_section() -> None:
    """Jobs and the watched job's curves; refreshed by a fragment every few seconds."""
    snaps = manager().snapshots()
    st.session_state[ACTIVE_SEEN] = _active_ids(snaps)
    every = POLL_ACTIVE_S if any(s.active for s in snaps) else POLL_IDLE_S
    st.fragment(run_every=every)(_live)()
    _settings()


def _live() -> None:
    mgr = manager()
    snaps = mgr.snapshots()
    if _active_ids(snaps) != st.session_state.get(ACTIVE_SEEN):
        st.rerun()  # a job started or ended: the Start button and the runs table change too
    shown = [s for s in snaps if s.active] + [s for s in snaps if not s.active][:FINISHED_SHOWN]
    if not shown:
        st.info("No training in this app yet. Configure a run and start it: it trains in the background while "
                "you use the other pages, and every tab sees it here.", icon=":material/model_training:")
        return
    for snap in shown:
        _job_row(snap)
    ids = [s.id for s in shown]
    if st.session_state.get(WATCH) not in ids:
        st.session_state[WATCH] = next((s.id for s in shown if s.status == "running"), ids[0])
    by_id = {s.id: s for s in shown}
    st.selectbox("Curves of", ids, key=WATCH, format_func=lambda i: f"{by_id[i].name} · {by_id[i].status}")
    job_detail(by_id[st.session_state[WATCH]])


def _job_row(s: JobSnapshot) -> None:
    with st.container(border=True, key=f"train_job_{s.id}"):
        left, right = st.columns([4, 1], vertical_alignment="center")
        with left:
            st.markdown(f"{badge(s.status)} **{s.name}** · {s.arch}/{s.encoder} · `{s.loss_formula}`"
                        + (" · resumed" if s.resume else ""))
            if s.status == "running":
                st.progress(min(1.0, s.progress), text=progress_text(s))
            else:
                st.caption(progress_text(s))
            if s.status == "failed":
                st.error(s.error or "failed", icon=":material/error:")
        if s.active:
            right.button("Cancel", key=f"train_cancel_{s.id}", on_click=manager().cancel, args=(s.id,),
                         icon=":material/stop_circle:", width="stretch", disabled=s.cancel_requested,
                         help="Stops after the current step and keeps the last weights" if s.status == "running"
                         else "Removes it from the queue")


def job_detail(s: JobSnapshot) -> None:
    """Curves, speed and the validation strip of one job."""
    history, steps = list(s.history), list(s.steps_log)
    if s.status == "failed" and s.traceback:
        with st.expander("Traceback", icon=":material/bug_report:"):
            st.code(s.traceback, language=None)
    latest = s.latest or {}
    c = st.columns(4)
    c[0].metric("Epoch", f"{s.epoch if s.status != 'queued' else 0}/{s.epochs}")
    best_epoch, best = s.best
    c[1].metric(f"Best {training.metric_label(s.monitor)}", f"{best:.4f}" if best is not None else "–",
                help=f"at epoch {best_epoch}" if best_epoch else None)
    c[2].metric("Validation loss", f"{latest['val_loss']:.4f}" if "val_loss" in latest else "–")
    if s.active:
        c[3].metric("Time left", duration(s.eta_s), help=f"{duration(s.elapsed_s)} so far")
    else:
        c[3].metric("Time", duration(s.elapsed_s))
    if not history and not s.active:  # cancelled or failed in its first epoch: empty charts would only puzzle
        st.caption("No epochs finished: nothing to plot.")
        return
    if not history and not steps:
        return
    a, b = st.columns(2)
    a.plotly_chart(training.loss_figure(history, steps), key="train_live_loss")
    b.plotly_chart(training.metrics_figure(history), key="train_live_metrics")
    a, b = st.columns(2)
    a.plotly_chart(training.per_class_iou_figure(history, s.class_map), key="train_live_classes")
    b.plotly_chart(training.lr_figure(history, steps), key="train_live_lr")
    if s.preview is not None and s.class_map:
        strip(s.preview, ClassMap.from_list(s.class_map, source="the run's config"))


def strip(preview: dict, class_map: ClassMap, per_row: int = 4) -> None:
    st.markdown(f"**Validation images after epoch {preview.get('epoch', '?')}** · top: true mask, "
                "bottom: the model's prediction")
    st.html(legend_html(class_map))
    panels = training.prediction_panels(preview, class_map)
    cols = st.columns(per_row)
    for k, (panel, image_id) in enumerate(zip(panels, preview["ids"], strict=True)):
        cols[k % per_row].image(panel, caption=image_id, width="stretch")


def _set_parallel() -> None:
    manager().max_parallel = st.session_state["train_parallel"]


def _set_threads() -> None:
    value = st.session_state["train_threads"]
    manager().cpu_threads = None if value == "all" else int(value)


def _settings() -> None:
    """Process-wide job settings (every tab shares them)."""
    mgr = manager()
    st.session_state["train_parallel"] = mgr.max_parallel
    cores = os.cpu_count() or 1
    options = ["all", *range(1, cores)]
    st.session_state["train_threads"] = mgr.cpu_threads if mgr.cpu_threads in options else "all"
    with st.expander("Job settings (for the whole app)", icon=":material/settings:"):
        c1, c2 = st.columns(2)
        c1.number_input("Trainings at once", 1, 16, key="train_parallel", on_change=_set_parallel,
                        help="More jobs wait in the queue. Two trainings on one GPU or CPU only halve each other.")
        c2.selectbox("CPU threads of a training", options, key="train_threads", on_change=_set_threads,
                     help=f"This machine has {cores} cores. Fewer threads leave a core to the pages while a job "
                          "trains on the CPU (measured in bench/bench_jobs.py).")
        st.caption(f"Checked at {time.strftime('%H:%M:%S')} · runs are saved in `{mgr.root}`")
