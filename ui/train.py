"""Train page glue: the job manager kept for the app process, session keys, and the form that
builds a TrainConfig. The live view is in ``ui/train_live.py``, the runs table in
``ui/train_runs.py``. Session keys are prefixed ``train_``; form widgets ``train_w_``."""
from __future__ import annotations

from dataclasses import fields

import streamlit as st

from seglib.augment import list_pipelines
from seglib.losses import CLASS_WEIGHTING, LOSSES, LossError, parse_formula
from seglib.models import ARCHITECTURES, ENCODERS, catalog
from seglib.review import dataset_key
from seglib.train import ConfigError, TrainConfig, checkpoints_dir
from seglib.train.config import MONITORS, OPTIMIZERS, SAMPLERS, SCHEDULERS
from seglib.train.cpu_share import threads_sparing_a_core
from seglib.train.jobs import JobError, JobManager

from .data import Loaded, review_store

WATCH = "train_watch"              # str: job id whose live curves are shown
OPEN_RUN = "train_open"            # str: run opened in the runs section ("" = none); also ?run=
COMPARE = "train_compare"          # list[str]: runs whose curves are overlaid; also ?runs=
CONFIRM_DELETE = "train_confirm"   # str: run waiting for the second click of "Delete"
MESSAGE = "train_message"          # (kind, text): shown once after the rerun an action caused
ACTIVE_SEEN = "train_active_seen"  # tuple of active job ids at the last full run
W = "train_w_"                     # prefix of the form's widget keys

NO_AUG = "(none)"
DEVICES = ["auto", "cpu", "cuda", "mps"]


# --- the job manager ------------------------------------------------------------------------
@st.cache_resource(show_spinner=False)
def _manager(root: str) -> JobManager:
    # A core and the scheduler's favour for the pages: a rerun while a job trains stays quick.
    return JobManager(root, cpu_threads=threads_sparing_a_core(), nice=10)


def manager() -> JobManager:
    """The app process's job manager, shared by every session and tab. Keyed by the checkpoints
    folder, so tests that point ``SEGLIB_CHECKPOINTS`` elsewhere get their own."""
    return _manager(str(checkpoints_dir().expanduser().resolve()))


def init() -> None:
    st.session_state.setdefault(WATCH, "")
    st.session_state.setdefault(CONFIRM_DELETE, "")
    st.session_state.setdefault(MESSAGE, None)
    # The view lives in the URL too: a reload or a second tab opens the same runs.
    if OPEN_RUN not in st.session_state:
        st.session_state[OPEN_RUN] = st.query_params.get("run", "")
    if COMPARE not in st.session_state:
        given = st.query_params.get("runs", "")
        st.session_state[COMPARE] = [r for r in given.split(",") if r]
    if f"{W}arch" not in st.session_state:
        set_form(TrainConfig())


def say(kind: str, text: str) -> None:
    """A message shown at the top of the next run (actions happen in callbacks)."""
    st.session_state[MESSAGE] = (kind, text)


def show_message() -> None:
    msg = st.session_state.get(MESSAGE)
    if msg:
        getattr(st, msg[0])(msg[1])
        st.session_state[MESSAGE] = None


# --- the form <-> TrainConfig ---------------------------------------------------------------
# Fields with one plain widget each; the rest (loss terms, lists, aug, name) are handled apart.
PLAIN = ("arch", "encoder", "focal_gamma", "tversky_alpha", "tversky_beta", "class_weights", "exclude_background",
         "sampler", "sampler_factor", "val_fraction", "leave_out_excluded", "epochs", "batch_size", "lr",
         "weight_decay", "optimizer", "scheduler", "monitor", "patience", "max_steps_per_epoch", "grad_clip",
         "device", "amp", "workers", "seed")


def set_form(cfg: TrainConfig) -> None:
    """Put a config's values into the form's widgets (call from a callback, before they render)."""
    s = st.session_state
    defaults = TrainConfig()
    for name in PLAIN:
        value = getattr(cfg, name)
        kind = type(getattr(defaults, name))
        # number inputs refuse a value whose type differs from their bounds (JSON may hold 3 for 3.0)
        s[W + name] = kind(value) if kind in (int, float) and isinstance(value, (int, float)) else value
    try:
        terms = parse_formula(cfg.loss)
    except LossError:
        terms = parse_formula(TrainConfig.loss)
    s[W + "loss_terms"] = [name for _, name in terms]
    for weight, name in terms:
        s[f"{W}loss_w_{name}"] = float(weight)
    s[W + "manual_weights"] = ", ".join(f"{w:g}" for w in cfg.manual_class_weights)
    s[W + "sampler_classes"] = list(cfg.sampler_classes or [])
    s[W + "aug"] = cfg.aug or NO_AUG
    s[W + "name"] = ""


def use_preset(preset: str) -> None:
    set_form(TrainConfig.quick() if preset == "quick" else TrainConfig())
    say("info", "Quick preset: MobileNetV2 U-Net, 4 short epochs (about a minute on a CPU)." if preset == "quick"
        else "Default settings restored.")


def use_run_config(config: dict, name: str) -> None:
    """Copy a run's settings into the form (not its split: a new run draws its own from the seed)."""
    known = {f.name for f in fields(TrainConfig)}
    kept = {k: v for k, v in config.items() if k in known and k not in ("resolved", "train_ids", "val_ids")}
    set_form(TrainConfig(**kept))
    say("info", f"The form now holds the settings of {name}.")


def _formula() -> str:
    terms = st.session_state.get(W + "loss_terms") or []
    weights = {t: st.session_state.get(f"{W}loss_w_{t}", 1.0) for t in terms}
    return "+".join(t if weights[t] == 1 else f"{weights[t]:g}*{t}" for t in terms)


def build_config(loaded: Loaded) -> TrainConfig:
    """The TrainConfig the form describes, for the current dataset; ConfigError/LossError when
    it cannot train."""
    s = st.session_state
    values = {name: s[W + name] for name in PLAIN}
    formula = _formula()
    if not formula:
        raise ConfigError("loss: choose at least one term")
    parse_formula(formula)
    manual = []
    if s[W + "class_weights"] == "manual":
        try:
            manual = [float(v) for v in s[W + "manual_weights"].replace(",", " ").split()]
        except ValueError:
            raise ConfigError("manual class weights: write numbers, one per class id, e.g. 1, 1, 2, 4") from None
        if len(manual) != loaded.ds.class_map.num_classes:
            raise ConfigError(f"manual class weights: {len(manual)} given, the dataset has "
                              f"{loaded.ds.class_map.num_classes} class ids")
    cfg = TrainConfig(data=loaded.path, loss=formula, manual_class_weights=manual,
                      sampler_classes=list(s[W + "sampler_classes"]) or None,
                      aug=None if s[W + "aug"] == NO_AUG else s[W + "aug"], **values)
    cfg.validate()
    return cfg


# --- the form's widgets -----------------------------------------------------------------------
def _valid_encoders(arch: str) -> tuple[list[str], dict[str, str]]:
    """(encoders that work with ``arch``, {encoder: why not} for the rest)."""
    rows = [row for row in catalog() if row["arch"] == arch]
    return [r["encoder"] for r in rows if r["ok"]], {r["encoder"]: r["reason"] for r in rows if not r["ok"]}


def _model_widgets() -> None:
    st.selectbox("Architecture", list(ARCHITECTURES), key=W + "arch",
                 format_func=lambda a: f"{a} — {ARCHITECTURES[a].summary.split(':')[0]}",
                 help="; ".join(f"{a}: {i.summary}" for a, i in ARCHITECTURES.items()))
    arch = st.session_state[W + "arch"]
    ok, why = _valid_encoders(arch)
    if st.session_state.get(W + "encoder") not in ok:
        st.session_state[W + "encoder"] = TrainConfig.encoder if TrainConfig.encoder in ok else ok[0]
    st.selectbox("Encoder", ok, key=W + "encoder", format_func=lambda e: f"{e} — {ENCODERS.get(e, '')}",
                 help="Random initial weights (no download). Only encoders that work with this architecture are "
                      "offered.")
    if why:
        with st.expander(f"{len(why)} encoder{'s' if len(why) > 1 else ''} not offered with {arch}",
                         icon=":material/block:"):
            for enc, reason in why.items():
                st.markdown(f"- `{enc}`: {reason}")


def _loss_widgets() -> None:
    st.multiselect("Loss terms", list(LOSSES), key=W + "loss_terms", format_func=lambda t: t,
                   help="The loss is the weighted sum of these. " + "; ".join(f"{k}: {v}" for k, v in LOSSES.items()))
    terms = st.session_state[W + "loss_terms"]
    if terms:
        cols = st.columns(len(terms))
        for col, term in zip(cols, terms, strict=True):
            st.session_state.setdefault(f"{W}loss_w_{term}", 1.0)
            col.number_input(f"weight of {term}", 0.05, 100.0, step=0.25, key=f"{W}loss_w_{term}")
        st.caption(f"Loss = `{_formula()}`")
    c1, c2, c3 = st.columns(3)
    c1.number_input("focal gamma", 0.0, 10.0, step=0.5, key=W + "focal_gamma", disabled="focal" not in terms,
                    help="0 = cross-entropy; 2 focuses on hard pixels (won on Mars)")
    c2.number_input("Tversky alpha", 0.0, 1.0, step=0.05, key=W + "tversky_alpha", disabled="tversky" not in terms,
                    help="weight of false positives")
    c3.number_input("Tversky beta", 0.0, 1.0, step=0.05, key=W + "tversky_beta", disabled="tversky" not in terms,
                    help="weight of false negatives; above alpha favours recall of small classes")
    st.selectbox("Class weighting", CLASS_WEIGHTING, key=W + "class_weights",
                 help="inverse: 1/frequency; median: median frequency / frequency; manual: one value per class id")
    if st.session_state[W + "class_weights"] == "manual":
        st.text_input("Weights, one per class id", key=W + "manual_weights", placeholder="1, 1, 2, 2, 8")
    st.checkbox("Leave the background class out of losses and the monitored mIoU", key=W + "exclude_background")


def _data_widgets(loaded: Loaded) -> None:
    cmap = loaded.ds.class_map
    pipelines = list_pipelines()
    options = [NO_AUG, *pipelines]
    if st.session_state.get(W + "aug") not in options:
        st.session_state[W + "aug"] = NO_AUG
    st.selectbox("Augmentation pipeline", options, key=W + "aug",
                 help="Pipelines saved on the Augment page" if pipelines else "Save one on the Augment page first")
    st.session_state[W + "sampler_classes"] = [c for c in st.session_state[W + "sampler_classes"] if c in cmap.ids]
    c1, c2 = st.columns([1, 2])
    c1.selectbox("Sampler", SAMPLERS, key=W + "sampler",
                 help="oversample: images holding the chosen classes drawn `factor` times as often; "
                      "presence: weight by the rarest class each image holds")
    c2.multiselect("Classes to oversample", cmap.ids, key=W + "sampler_classes", format_func=cmap.name_of,
                   placeholder="the rarest class", disabled=st.session_state[W + "sampler"] != "oversample")
    c1, c2 = st.columns(2)
    c1.number_input("Oversampling factor", 1.0, 50.0, step=0.5, key=W + "sampler_factor",
                    disabled=st.session_state[W + "sampler"] != "oversample")
    c2.number_input("Validation fraction", 0.02, 0.9, step=0.05, key=W + "val_fraction",
                    help="a split stratified by the rarest class each image holds, drawn from the seed")
    excluded = review_store().counts(dataset_key(loaded.ds)).get("exclude", 0)
    st.checkbox(f"Leave out the {excluded:,} images marked “exclude” on the Review page", key=W + "leave_out_excluded")


def _optim_widgets() -> None:
    c1, c2, c3 = st.columns(3)
    c1.number_input("Epochs", 1, 10_000, key=W + "epochs")
    c2.number_input("Batch size", 1, 4096, key=W + "batch_size")
    c3.number_input("Learning rate", 1e-7, 10.0, key=W + "lr", format="%.1e", step=1e-4)
    c1, c2, c3 = st.columns(3)
    c1.selectbox("Optimizer", OPTIMIZERS, key=W + "optimizer")
    c2.selectbox("Schedule", SCHEDULERS, key=W + "scheduler",
                 help="plateau: halve the rate when the monitored score stalls; cosine/onecycle: per step")
    c3.number_input("Weight decay", 0.0, 1.0, key=W + "weight_decay", format="%.1e", step=1e-5)
    c1, c2, c3 = st.columns(3)
    c1.selectbox("Best epoch by", MONITORS, key=W + "monitor")
    c2.number_input("Early-stop patience", 0, 1000, key=W + "patience", help="epochs without progress; 0 = never")
    c3.number_input("Steps per epoch (0 = all)", 0, 1_000_000, key=W + "max_steps_per_epoch",
                    help="cap the batches of an epoch: short epochs for quick checks")
    st.number_input("Gradient clipping (max norm; 0 = off)", 0.0, 1000.0, step=0.5, key=W + "grad_clip")


def _machine_widgets() -> None:
    c1, c2, c3, c4 = st.columns(4)
    devices = DEVICES if st.session_state.get(W + "device") in DEVICES else [*DEVICES, st.session_state[W + "device"]]
    c1.selectbox("Device", devices, key=W + "device", help="auto: the GPU when there is one, else the CPU")
    c2.selectbox("Mixed precision", ["auto", "off", "bf16", "fp16"], key=W + "amp", help="auto: on for CUDA")
    c3.number_input("Loader workers", -1, 64, key=W + "workers", help="-1 = auto (0 on a CPU)")
    c4.number_input("Seed", 0, 2**31 - 1, key=W + "seed")


def config_form(loaded: Loaded) -> None:
    """The whole form and the Start button (the button queues when a job is already training)."""
    c1, c2 = st.columns(2)
    c1.button("Quick preset", key="train_preset_quick", on_click=use_preset, args=("quick",),
              icon=":material/bolt:", width="stretch", help="MobileNetV2 U-Net, 4 epochs of 40 steps: ~1 min on a CPU")
    c2.button("Defaults", key="train_preset_default", on_click=use_preset, args=("default",),
              icon=":material/restart_alt:", width="stretch",
              help="U-Net/ResNet-18, focal + dice, rarest class oversampled x3, 30 epochs")
    with st.expander("Model", expanded=True, icon=":material/hub:"):
        _model_widgets()
    with st.expander("Loss", expanded=True, icon=":material/functions:"):
        _loss_widgets()
    with st.expander("Data and sampling", icon=":material/dataset:"):
        _data_widgets(loaded)
    with st.expander("Optimisation", expanded=True, icon=":material/speed:"):
        _optim_widgets()
    with st.expander("Machine and seed", icon=":material/memory:"):
        _machine_widgets()
    st.text_input("Run name (optional)", key=W + "name", placeholder="date-architecture-encoder")
    try:
        cfg = build_config(loaded)
        problem = None
    except (ConfigError, LossError) as e:
        cfg, problem = None, str(e)
    if problem:
        st.error(problem, icon=":material/error:")
    else:
        st.caption(describe(cfg, loaded))
    busy = any(s.active for s in manager().snapshots())
    st.button("Queue training" if busy else "Start training", key="train_start", type="primary", width="stretch",
              icon=":material/queue:" if busy else ":material/play_arrow:", disabled=cfg is None,
              on_click=_start, args=(loaded,),
              help="Another job is training: this one waits for it" if busy else "Trains in the background")


def describe(cfg: TrainConfig, loaded: Loaded) -> str:
    """One line saying what will train."""
    cmap = loaded.ds.class_map
    steps = f"{cfg.max_steps_per_epoch} steps" if cfg.max_steps_per_epoch else "full passes"
    sampler = cfg.sampler
    if cfg.sampler == "oversample":
        which = ", ".join(cmap.name_of(c) for c in cfg.sampler_classes) if cfg.sampler_classes else "the rarest class"
        sampler = f"{which} ×{cfg.sampler_factor:g}"
    return (f"**{cfg.arch}/{cfg.encoder}** · loss `{cfg.loss}` · {cfg.epochs} epochs ({steps}) × batch "
            f"{cfg.batch_size} · lr {cfg.lr:.0e} {cfg.optimizer}/{cfg.scheduler} · sampler {sampler} · "
            f"aug {cfg.aug or 'none'} · {len(loaded.ds.labeled_ids):,} labeled images")


def _start(loaded: Loaded) -> None:
    try:
        cfg = build_config(loaded)
        mgr = manager()
        job_id = mgr.submit(cfg, name=st.session_state[W + "name"].strip() or None)
    except (ConfigError, LossError, JobError, OSError) as e:
        say("error", f"Not started: {e}")
        return
    snap = mgr.snapshot(job_id)
    if snap.status == "queued":  # keep watching the job that trains now
        say("info", f"Queued {snap.name} (position {snap.queue_position}): it starts when the job before it ends.")
    else:
        st.session_state[WATCH] = job_id
        say("success", f"Started {snap.name}.")
