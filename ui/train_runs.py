"""The Train page's runs section: every run folder of the dataset as a table, the curves of
several runs overlaid, and one run opened (curves, history, config, log; resume, reuse its
settings, delete). Read from the run folders, so it survives app restarts."""
from __future__ import annotations

import json
import time

import pandas as pd
import streamlit as st

from seglib.train import CheckpointError, RunFolder
from seglib.train import summary as run_summary
from seglib.train.jobs import JobError
from seglib.viz import training
from seglib.words import plural

from .data import Loaded
from .roots import PathNotAllowed, check_allowed
from .train import COMPARE, CONFIRM_DELETE, OPEN_RUN, WATCH, manager, say, use_run_config
from .train_live import badge, duration

COMPARE_METRICS = "train_compare_metrics"
ALL_DATASETS = "train_all_datasets"
COMPARE_TOUCHED = "train_compare_touched"  # bool: the user chose the overlaid runs (no default any more)
MISSING = "–"  # a table cell without a value (Streamlit writes "None" there by default)
HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss", "miou", "miou_no_bg", "dice", "pixel_accuracy",
                   "mean_pixel_accuracy", "lr", "images_per_s", "time", "best_epoch"]


@st.cache_data(max_entries=8, show_spinner=False)
def _rows(root: str, signature: tuple) -> list[dict]:
    """Summaries of every run (re-read only when a run's files change: ``signature``)."""
    return run_summary.summaries(root)


@st.cache_data(max_entries=64, show_spinner=False)
def _history(path: str, signature: tuple) -> list[dict]:
    return RunFolder(path).read_history()


def _stamp(path: str) -> tuple:
    run = RunFolder(path)
    return tuple(run.file(n).stat().st_mtime_ns if run.file(n).exists() else 0
                 for n in ("history.jsonl", "status.json"))


def history(name_or_path: str) -> list[dict]:
    path = str(manager().root / name_or_path) if "/" not in name_or_path else name_or_path
    return _history(path, _stamp(path))


def rows_for(loaded: Loaded) -> list[dict]:
    root = manager().root
    rows = _rows(str(root), run_summary.signature(root))
    if st.session_state.get(ALL_DATASETS):
        return rows
    return [r for r in rows if run_summary.belongs_to(r, loaded.fingerprint, loaded.path)]


def runs_table(rows: list[dict]) -> pd.DataFrame:
    def best(r):
        return f"{r['monitor']} {r['best']:.4f} @ {r['best_epoch']}" if r["best"] is not None else ""

    return pd.DataFrame({
        "run": [r["name"] for r in rows],
        "status": [r["status"].replace("_", " ") for r in rows],
        "architecture": [r["arch"] for r in rows],
        "encoder": [r["encoder"] for r in rows],
        "loss": [r["loss"] for r in rows],
        "best": [best(r) for r in rows],
        "epochs": [f"{r['epoch']}/{r['epochs']}" if r["epochs"] else str(r["epoch"]) for r in rows],
        "time": [duration(r["time_s"]) if r["time_s"] else "" for r in rows],
        # float even when no run has a speed yet (first epoch): NaN, an empty cell, not an object "None"
        "img/s": pd.Series([r["images_per_s"] for r in rows], dtype="float64"),
        "started": [time.strftime("%Y-%m-%d %H:%M", time.localtime(r["started"])) if r["started"] else ""
                    for r in rows],
        "error": [r["error"] or "" for r in rows],
    })


def epochs_done(row: dict) -> str:
    """"3/30 epochs", "1/1 epoch"; "2 epochs" when the plan is unknown (a damaged config)."""
    if row["epochs"]:
        return f"{row['epoch']}/{plural(row['epochs'], 'epoch')}"
    return plural(row["epoch"], "epoch")


def _sync_url() -> None:
    """Keep the opened and compared runs in the URL (a reload or a shared link shows them)."""
    opened, compared = st.session_state.get(OPEN_RUN), st.session_state.get(COMPARE) or []
    if opened:
        st.query_params["run"] = opened
    elif "run" in st.query_params:
        del st.query_params["run"]
    if compared:
        st.query_params["runs"] = ",".join(compared)
    elif "runs" in st.query_params:
        del st.query_params["runs"]


def runs_section(loaded: Loaded) -> None:
    mgr = manager()
    if mgr.interrupted:
        one = len(mgr.interrupted) == 1
        st.warning(f"{plural(len(mgr.interrupted), 'run')} {'was' if one else 'were'} training when the app stopped "
                   f"and {'is' if one else 'are'} marked interrupted: {', '.join(mgr.interrupted)}. "
                   f"Open {'it' if one else 'one'} and resume it.", icon=":material/history:")
    head, toggle = st.columns([4, 1], vertical_alignment="bottom")
    rows = rows_for(loaded)
    head.subheader(f"Runs · {len(rows)}")
    toggle.toggle("All datasets", key=ALL_DATASETS, help="Also list runs trained on other datasets")
    if not rows:
        st.caption(f"No run in `{mgr.root}` for this dataset yet.")
        return
    st.dataframe(runs_table(rows), hide_index=True, key="train_runs_table", placeholder=MISSING,
                 column_config={"img/s": st.column_config.NumberColumn(format="%.0f"),
                                "error": st.column_config.TextColumn(width="medium")})
    names = [r["name"] for r in rows]
    _compare(rows, names)
    _open(rows, names)


def _compare(rows: list[dict], names: list[str]) -> None:
    chosen = [n for n in st.session_state.get(COMPARE) or [] if n in names]  # deleted runs drop out
    if not chosen and not st.session_state.get(COMPARE_TOUCHED):
        chosen = [r["name"] for r in rows if r["epoch"]][:1]  # until the user picks: the newest run with curves
    st.session_state[COMPARE] = chosen
    st.multiselect("Overlay the curves of", names, key=COMPARE, on_change=_picked,
                   placeholder="choose runs to compare")
    compared = st.session_state[COMPARE]
    if not compared:
        return
    histories = {n: history(n) for n in compared}
    classes = sorted({c for h in histories.values() for r in h[-1:] for c in r.get("per_class_iou", {})})
    metrics = ["miou", "val_loss", "train_loss", "miou_no_bg", "dice", "pixel_accuracy", "mean_pixel_accuracy",
               "lr", "images_per_s"] + [training.PER_CLASS + c for c in classes]
    st.session_state.setdefault(COMPARE_METRICS, ["miou", "val_loss"])
    st.session_state[COMPARE_METRICS] = [m for m in st.session_state[COMPARE_METRICS] if m in metrics]
    st.multiselect("Metrics", metrics, key=COMPARE_METRICS, format_func=training.metric_label)
    cols = st.columns(2)
    for k, metric in enumerate(st.session_state[COMPARE_METRICS]):
        cols[k % 2].plotly_chart(training.compare_figure(histories, metric), key=f"train_compare_{metric}")


def _picked() -> None:
    st.session_state[COMPARE_TOUCHED] = True
    _sync_url()


def _open(rows: list[dict], names: list[str]) -> None:
    if st.session_state.get(OPEN_RUN) not in ["", *names]:
        st.session_state[OPEN_RUN] = ""
    st.selectbox("Open a run", ["", *names], key=OPEN_RUN, on_change=_sync_url,
                 format_func=lambda n: n or "—", help="Its curves, history, settings and log; resume or delete it")
    name = st.session_state[OPEN_RUN]
    if name:
        run_detail(next(r for r in rows if r["name"] == name))


def run_detail(row: dict) -> None:
    run = RunFolder(row["path"])
    mgr = manager()
    job = mgr.job_for_run(run.path)
    training_here = job is not None and job.active
    with st.container(border=True):
        st.markdown(f"### {row['name']}\n{badge(row['status'])} {row['arch']}/{row['encoder']} · loss "
                    f"`{row['loss']}` · {epochs_done(row)} · {duration(row['time_s'])}"
                    + (f" · {row['n_train']:,} train / {row['n_val']:,} val images" if row.get("n_train") else ""))
        if row["error"]:
            (st.warning if row["status"] == "interrupted" else st.error)(row["error"])
        _actions(row, run, training_here)
        hist = history(row["path"])
        tabs = st.tabs(["Curves", "History", "Confusion", "Config", "Log"])
        with tabs[0]:
            if hist:
                try:
                    class_map = run.read_config().get("resolved", {}).get("class_map", [])
                except Exception:  # a damaged config.json: curves without class colours
                    class_map = []
                a, b = st.columns(2)
                a.plotly_chart(training.loss_figure(hist), key="train_run_loss")
                b.plotly_chart(training.metrics_figure(hist), key="train_run_metrics")
                a, b = st.columns(2)
                a.plotly_chart(training.per_class_iou_figure(hist, class_map), key="train_run_classes")
                b.plotly_chart(training.lr_figure(hist), key="train_run_lr")
            else:
                st.caption("No finished epoch yet.")
        with tabs[1]:
            if hist:
                table = pd.DataFrame([{k: r.get(k) for k in HISTORY_COLUMNS} for r in hist])
                per_class = pd.DataFrame([r.get("per_class_iou", {}) for r in hist]).add_prefix("IoU ")
                st.dataframe(pd.concat([table, per_class], axis=1), hide_index=True, placeholder=MISSING)
        with tabs[2]:
            best = next((r for r in hist if r["epoch"] == row["best_epoch"]), hist[-1] if hist else None)
            if best and best.get("confusion"):
                names = list(best.get("per_class_iou", {}))
                st.plotly_chart(training.confusion_figure(best["confusion"], names), key="train_run_confusion")
                st.caption(f"Validation confusion at epoch {best['epoch']}.")
        with tabs[3]:
            try:
                st.code(json.dumps(run.read_config(), indent=1), language="json")
            except Exception as e:  # CheckpointError or unreadable: say so, keep the page
                st.error(str(e))
        with tabs[4]:
            log = run.read_log()
            st.code("\n".join(log.splitlines()[-300:]) or "(empty)", language=None)


def _actions(row: dict, run: RunFolder, training_here: bool) -> None:
    name = row["name"]
    c1, c2, c3, c4 = st.columns(4, vertical_alignment="bottom")
    planned = int(row["epochs"] or 1)
    finished = row["status"] in ("done", "stopped_early")  # resuming those means training longer
    epochs_key = f"train_resume_epochs_{name}"
    c1.number_input("Epochs in all", 1, 100_000, value=2 * planned if finished else planned, key=epochs_key,
                    help="Resuming continues from the last finished epoch up to this many")
    c2.button("Resume", key=f"train_resume_{name}", on_click=_resume, args=(run.path, epochs_key), width="stretch",
              icon=":material/play_circle:", disabled=training_here or row["status"] == "running",
              help="Continue this run in the background (same split, model and optimiser state)")
    try:
        config = run.read_config()
    except Exception:  # damaged: nothing to copy
        config = None
    c3.button("Use these settings", key=f"train_reuse_{name}", on_click=use_run_config, args=(config or {}, name),
              width="stretch", icon=":material/content_copy:", disabled=config is None,
              help="Fill the form with this run's settings for a new run")
    if st.session_state.get(CONFIRM_DELETE) == name:
        c4.button("Really delete?", key=f"train_delete_yes_{name}", on_click=_delete, args=(run.path,),
                  type="primary", width="stretch", icon=":material/delete_forever:")
        st.warning(f"Delete {name} and its weights for good? Click “Really delete?” to confirm.",
                   icon=":material/warning:")
        st.button("Keep it", key=f"train_delete_no_{name}", on_click=_set_confirm, args=("",))
    else:
        c4.button("Delete…", key=f"train_delete_{name}", on_click=_set_confirm, args=(name,), width="stretch",
                  icon=":material/delete:", disabled=training_here or row["status"] == "running")


def _set_confirm(name: str) -> None:
    st.session_state[CONFIRM_DELETE] = name


def _resume(path, epochs_key: str) -> None:
    epochs = int(st.session_state[epochs_key])
    try:
        config = RunFolder(path).read_config()
        check_allowed(config.get("data") or "")  # resuming reopens the run's dataset
        job_id = manager().resume(path, epochs=epochs)
    except (JobError, PathNotAllowed, CheckpointError, ValueError, OSError) as e:  # ValueError: ConfigError
        say("error", f"Not resumed: {e}")
        return
    snap = manager().snapshot(job_id)
    st.session_state[WATCH] = job_id
    say("success" if snap.status == "running" else "info",
        f"Resuming {snap.name} up to epoch {epochs}" + (" (queued)." if snap.status == "queued" else "."))


def _delete(path) -> None:
    st.session_state[CONFIRM_DELETE] = ""
    try:
        manager().delete_run(path)
    except (JobError, OSError) as e:
        say("error", f"Not deleted: {e}")
        return
    name = RunFolder(path).name
    st.session_state[OPEN_RUN] = ""
    st.session_state[COMPARE] = [n for n in st.session_state.get(COMPARE) or [] if n != name]
    _sync_url()
    say("success", f"Deleted {name}.")
