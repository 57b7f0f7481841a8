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
from seglib.train import ConfigError, TrainConfig, checkpoints_dir, form_memory
from seglib.train.config import MONITORS, OPTIMIZERS, SAMPLERS, SCHEDULERS
from seglib.train.cpu_share import threads_sparing_a_core
from seglib.train.data import background_note, class_layout, training_problem
from seglib.train.inputs import INPUT_MODES, resolve_input
from seglib.train.jobs import JobError, JobManager
from seglib.train.process_jobs import processes_available
from seglib.train.split import SPLIT_BY
from seglib.words import plural

from . import state, train_split
from . import weights as weights_ui
from .augment import input_words, pipeline_words
from .data import Loaded, current_unlabeled, review_store

WATCH = "train_watch"              # str: job id whose live curves are shown
OPEN_RUN = "train_open"            # str: run opened in the runs section ("" = none); also ?run=
COMPARE = "train_compare"          # list[str]: runs whose curves are overlaid; also ?runs=
CONFIRM_DELETE = "train_confirm"   # str: run waiting for the second click of "Delete"
MESSAGE = "train_message"          # (kind, text): shown once after the rerun an action caused
ACTIVE_SEEN = "train_active_seen"  # tuple of active job ids at the last full run
W = "train_w_"                     # prefix of the form's widget keys
SECTION = "train_section_"         # + a name: the key of one of the form's sections (expanders)
FORM_DATASET = "train_form_dataset"  # str: the dataset whose remembered values the form started from
FORM_SAVED = "train_form_saved"      # dict: the form's values as last written to the data folder

NO_AUG = "(none)"
DEVICES = ["auto", "cpu", "cuda", "mps"]
AMP_MODES = ["auto", "off", "bf16", "fp16"]
# (min, max) of each number input; also what a remembered value must lie in to be restored
RANGES = {"focal_gamma": (0.0, 10.0), "tversky_alpha": (0.0, 1.0), "tversky_beta": (0.0, 1.0),
          "sampler_factor": (1.0, 50.0), "val_fraction": (0.02, 0.9), "epochs": (1, 10_000), "batch_size": (1, 4096),
          "lr": (1e-7, 10.0), "weight_decay": (0.0, 1.0), "patience": (0, 1000), "max_steps_per_epoch": (0, 1_000_000),
          "grad_clip": (0.0, 1000.0), "workers": (-1, 64), "seed": (0, 2**31 - 1), "input_size": (32, 8192),
          "rare_crop_share": (0.0, 1.0)}
LOSS_WEIGHT = "loss_w_"  # + a loss term: that term's weight
LOSS_WEIGHT_RANGE = (0.05, 100.0)
# The options of the form's select boxes: a remembered value outside them falls back to the default.
CHOICES = {"arch": ARCHITECTURES, "encoder": ENCODERS, "class_weights": CLASS_WEIGHTING, "sampler": SAMPLERS,
           "optimizer": OPTIMIZERS, "scheduler": SCHEDULERS, "monitor": MONITORS, "amp": AMP_MODES,
           "input_mode": INPUT_MODES, "split_by": SPLIT_BY}
INPUT_LABELS = {"auto": "Automatic, from the image sizes", "crop": "Random square crops",
                "resize": "Resized (longer side)", "full": "Whole images"}
NOT_REMEMBERED = ("name", "processes")  # a run name names one run; processes: this machine's choice


# --- the job manager ------------------------------------------------------------------------
@st.cache_resource(show_spinner=False)
def _manager(root: str) -> JobManager:
    # A core and the scheduler's favour for the pages: a rerun while a job trains stays quick.
    return JobManager(root, cpu_threads=threads_sparing_a_core(), nice=10)


def manager() -> JobManager:
    """The app process's job manager, shared by every session and tab. Keyed by the checkpoints
    folder, so tests that point ``SEGLIB_CHECKPOINTS`` elsewhere get their own."""
    return _manager(str(checkpoints_dir().expanduser().resolve()))


def init(loaded: Loaded) -> None:
    st.session_state.setdefault(WATCH, "")
    st.session_state.setdefault(CONFIRM_DELETE, "")
    st.session_state.setdefault(MESSAGE, None)
    # The view lives in the URL too: a reload or a second tab opens the same runs.
    if OPEN_RUN not in st.session_state:
        st.session_state[OPEN_RUN] = st.query_params.get("run", "")
    if COMPARE not in st.session_state:
        given = st.query_params.get("runs", "")
        st.session_state[COMPARE] = [r for r in given.split(",") if r]
    restore_form(dataset_key(loaded.ds))


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
         "device", "amp", "workers", "seed", "input_mode", "input_size", "rare_crop_share", "split_by")


def form_values(cfg: TrainConfig) -> dict:
    """A config as the form's widget values, by key without the ``train_w_`` prefix."""
    values = {}
    defaults = TrainConfig()
    for name in PLAIN:
        value = getattr(cfg, name)
        kind = type(getattr(defaults, name))
        # number inputs refuse a value whose type differs from their bounds (JSON may hold 3 for 3.0)
        values[name] = kind(value) if kind in (int, float) and isinstance(value, (int, float)) else value
    try:
        terms = parse_formula(cfg.loss)
    except LossError:
        terms = parse_formula(TrainConfig.loss)
    values["loss_terms"] = [name for _, name in terms]
    for weight, name in terms:
        values[LOSS_WEIGHT + name] = float(weight)
    values["manual_weights"] = ", ".join(f"{w:g}" for w in cfg.manual_class_weights)
    values["sampler_classes"] = list(cfg.sampler_classes or [])
    values["aug"] = cfg.aug or NO_AUG
    values["weights"] = cfg.encoder_weights or weights_ui.RANDOM
    values["name"] = ""
    return values


def set_form(cfg: TrainConfig) -> None:
    """Put a config's values into the form's widgets (call from a callback, before they render)."""
    for name, value in form_values(cfg).items():
        st.session_state[W + name] = value


# --- the form remembered across sessions ------------------------------------------------------
def restore_form(dataset: str) -> None:
    """Start the form from the values last used on ``dataset`` (a reload, a new tab, or a return
    from another page, which drops widget values); defaults for what was never set or is no
    longer offered. Switching datasets loads that dataset's values when it has any."""
    s = st.session_state
    fresh = W + "arch" not in s
    if not fresh and s.get(FORM_DATASET) == dataset:
        return
    saved = form_memory.recall(dataset)
    if fresh or saved:
        set_form(TrainConfig())
        for name, value in still_valid(saved).items():
            s[W + name] = value
    # Nothing remembered yet: what the form holds now needs no writing until it changes.
    s[FORM_DATASET], s[FORM_SAVED] = dataset, saved or _form_now()


def still_valid(saved: dict) -> dict:
    """The remembered values the form can still take (the right type, in range, among the
    options: an encoder that is gone falls back to the default)."""
    defaults = form_values(TrainConfig())
    kept = {}
    for name, value in saved.items():
        is_weight = name.startswith(LOSS_WEIGHT) and name[len(LOSS_WEIGHT):] in LOSSES
        default = 1.0 if is_weight else defaults.get(name)
        if name in NOT_REMEMBERED or default is None:
            continue
        if isinstance(default, bool) or isinstance(value, bool):
            ok = type(value) is type(default)
        elif isinstance(default, (int, float)):
            low, high = LOSS_WEIGHT_RANGE if is_weight else RANGES[name]
            ok = isinstance(value, (int, float)) and not (isinstance(default, int) and isinstance(value, float))
            ok = ok and low <= value <= high
            value = type(default)(value) if ok else value
        elif isinstance(default, str):
            ok = isinstance(value, str) and value in CHOICES.get(name, [value])
        elif name == "loss_terms":
            ok = isinstance(value, list) and all(t in LOSSES for t in value)
        else:  # sampler_classes: class ids (the form drops those the dataset lacks)
            ok = isinstance(value, list) and all(isinstance(c, int) and not isinstance(c, bool) for c in value)
        if ok:
            kept[name] = value
    return kept


def remember_form(dataset: str) -> None:
    """Write the form's values for ``dataset`` when they changed since the last write: a reload
    finds them. Best effort: a read-only data folder only means the next session starts afresh."""
    values = _form_now()
    if values == st.session_state.get(FORM_SAVED):
        return
    try:
        form_memory.remember(dataset, values)
    except (OSError, TypeError):
        return
    st.session_state[FORM_SAVED] = values


def _form_now() -> dict:
    """The form's values to remember, by key without the prefix."""
    s = st.session_state
    values = {key[len(W):]: s[key] for key in list(s.keys()) if isinstance(key, str) and key.startswith(W)}
    for name in NOT_REMEMBERED:
        values.pop(name, None)
    if "sampler_classes" in values:  # numpy ints would not go into JSON
        values["sampler_classes"] = [int(c) for c in values["sampler_classes"]]
    return values


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
    weights = {t: st.session_state.get(W + LOSS_WEIGHT + t, 1.0) for t in terms}
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
    # The masks the pages show are the masks it trains on: corrected, unless the sidebar says otherwise.
    batch = current_unlabeled()   # a new batch's images labeled on the Label page train too
    cfg = TrainConfig(data=loaded.path, unlabeled=[batch] if batch else None, loss=formula, manual_class_weights=manual,
                      original_masks=bool(s.get(state.ORIGINAL_MASKS)),
                      sampler_classes=list(s[W + "sampler_classes"]) or None,
                      aug=None if s[W + "aug"] == NO_AUG else s[W + "aug"],
                      encoder_weights=weights_ui.chosen(W + "weights", s[W + "encoder"]), **values)
    cfg.validate()
    problem = training_problem(loaded.ds, loaded.stats)  # nothing to train on: Start stays disabled, saying why
    if problem:
        raise ConfigError(problem)
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
                 help="Only encoders that work with this architecture are offered.")
    weights_ui.weights_widget(W + "weights", st.session_state[W + "encoder"])
    if why:
        with st.expander(f"{plural(len(why), 'encoder')} not offered with {arch}",
                         icon=":material/block:"):
            for enc, reason in why.items():
                st.markdown(f"- `{enc}`: {reason}")


def _loss_widgets(class_map) -> None:
    st.multiselect("Loss terms", list(LOSSES), key=W + "loss_terms", format_func=lambda t: t,
                   help="The loss is the weighted sum of these. " + "; ".join(f"{k}: {v}" for k, v in LOSSES.items()))
    terms = st.session_state[W + "loss_terms"]
    if terms:
        cols = st.columns(len(terms))
        for col, term in zip(cols, terms, strict=True):
            st.session_state.setdefault(W + LOSS_WEIGHT + term, 1.0)
            col.number_input(f"weight of {term}", *LOSS_WEIGHT_RANGE, step=0.25, key=W + LOSS_WEIGHT + term)
        st.caption(f"Loss = `{_formula()}`")
    c1, c2, c3 = st.columns(3)
    c1.number_input("focal gamma", *RANGES["focal_gamma"], step=0.5, key=W + "focal_gamma",
                    disabled="focal" not in terms, help="0 = cross-entropy; 2 focuses on hard pixels (won on Mars)")
    c2.number_input("Tversky alpha", *RANGES["tversky_alpha"], step=0.05, key=W + "tversky_alpha",
                    disabled="tversky" not in terms, help="weight of false positives")
    c3.number_input("Tversky beta", *RANGES["tversky_beta"], step=0.05, key=W + "tversky_beta",
                    disabled="tversky" not in terms,
                    help="weight of false negatives; above alpha favours recall of small classes")
    st.selectbox("Class weighting", CLASS_WEIGHTING, key=W + "class_weights",
                 help="inverse: 1/frequency; median: median frequency / frequency; manual: one value per class id")
    if st.session_state[W + "class_weights"] == "manual":
        st.text_input("Weights, one per class id", key=W + "manual_weights", placeholder="1, 1, 2, 2, 8")
    none = class_layout(class_map)[2] is None  # then "without background" is everything: say so
    st.checkbox("Leave the background class out of losses and the monitored mIoU"
                + (" (this class map has none: no effect)" if none else ""), key=W + "exclude_background",
                help=background_note(class_map))


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
    c1.number_input("Oversampling factor", *RANGES["sampler_factor"], step=0.5, key=W + "sampler_factor",
                    disabled=st.session_state[W + "sampler"] != "oversample")
    c2.number_input("Validation fraction", *RANGES["val_fraction"], step=0.05, key=W + "val_fraction",
                    help="a split stratified by the rarest class each image holds, drawn from the seed")
    train_split.split_setting(loaded, W)  # by image, folder or group, and whether it leaks
    mode = st.session_state[W + "input_mode"]
    c1, c2, c3 = st.columns([2, 1, 1])
    c1.selectbox("Training input", INPUT_MODES, format_func=INPUT_LABELS.get, key=W + "input_mode",
                 help="What a training step sees of each image. Crops: random squares of the size (a share centred "
                      "on the rarest class), validation on whole images by tiles; resized: the longer side to the "
                      "size; whole: as they are (small images). Automatic crops images much larger than the size.")
    c2.number_input("Size (px)", *RANGES["input_size"], step=32, key=W + "input_size", disabled=mode == "full",
                    help="The crop's side (a multiple of 32), or the longer side after resizing")
    c3.number_input("Rare-class crops", *RANGES["rare_crop_share"], step=0.05, key=W + "rare_crop_share",
                    disabled=mode not in ("auto", "crop"),
                    help="Share of the crops centred on a pixel of the rarest class (nnU-Net uses a third)")
    excluded = review_store().counts(dataset_key(loaded.ds)).get("exclude", 0)
    st.checkbox(f"Leave out the {plural(excluded, 'image')} marked “exclude” on the Review page",
                key=W + "leave_out_excluded")
    fixed = len(loaded.ds.corrected_ids)
    if fixed:
        st.caption(f":material/brush: Trains on the {plural(fixed, 'mask')} corrected on the Label page (the sidebar's "
                   "“Original masks” trains on the files' masks instead).")
    elif st.session_state.get(state.ORIGINAL_MASKS):
        st.caption(":material/brush: Trains on the files' masks (“Original masks” is on in the sidebar).")


def _optim_widgets() -> None:
    c1, c2, c3 = st.columns(3)
    c1.number_input("Epochs", *RANGES["epochs"], key=W + "epochs")
    c2.number_input("Batch size", *RANGES["batch_size"], key=W + "batch_size")
    c3.number_input("Learning rate", *RANGES["lr"], key=W + "lr", format="%.1e", step=1e-4)
    c1, c2, c3 = st.columns(3)
    c1.selectbox("Optimizer", OPTIMIZERS, key=W + "optimizer")
    c2.selectbox("Schedule", SCHEDULERS, key=W + "scheduler",
                 help="plateau: halve the rate when the monitored score stalls; cosine/onecycle: per step")
    c3.number_input("Weight decay", *RANGES["weight_decay"], key=W + "weight_decay", format="%.1e", step=1e-5)
    c1, c2, c3 = st.columns(3)
    c1.selectbox("Best epoch by", MONITORS, key=W + "monitor")
    c2.number_input("Early-stop patience", *RANGES["patience"], key=W + "patience",
                    help="epochs without progress; 0 = never")
    c3.number_input("Steps per epoch (0 = all)", *RANGES["max_steps_per_epoch"], key=W + "max_steps_per_epoch",
                    help="cap the batches of an epoch: short epochs for quick checks")
    st.number_input("Gradient clipping (max norm; 0 = off)", *RANGES["grad_clip"], step=0.5, key=W + "grad_clip")


def _machine_widgets() -> None:
    c1, c2, c3, c4 = st.columns(4)
    devices = DEVICES if st.session_state.get(W + "device") in DEVICES else [*DEVICES, st.session_state[W + "device"]]
    c1.selectbox("Device", devices, key=W + "device", help="auto: the GPU when there is one, else the CPU")
    c2.selectbox("Mixed precision", AMP_MODES, key=W + "amp", help="auto: on for CUDA")
    c3.number_input("Loader workers", *RANGES["workers"], key=W + "workers", help="-1 = auto (0 on a CPU)")
    c4.number_input("Seed", *RANGES["seed"], key=W + "seed")
    most, kind = processes_available()
    if not isinstance(st.session_state.get(W + "processes"), int) or not 1 <= st.session_state[W + "processes"] <= most:
        st.session_state[W + "processes"] = 1
    st.number_input(f"Processes (up to {plural(most, kind)})", 1, most, key=W + "processes",
                    help="More than 1 trains under torchrun --standalone --nproc_per_node=N as a child process "
                         "(DDP: gloo on CPU, NCCL on CUDA, one GPU per process); the batch size is per process.")


def config_form(loaded: Loaded) -> None:
    """The whole form and the Start button (the button queues when a job is already training)."""
    c1, c2 = st.columns(2)
    c1.button("Quick preset", key="train_preset_quick", on_click=use_preset, args=("quick",),
              icon=":material/bolt:", width="stretch", help="MobileNetV2 U-Net, 4 epochs of 40 steps: ~1 min on a CPU")
    c2.button("Defaults", key="train_preset_default", on_click=use_preset, args=("default",),
              icon=":material/restart_alt:", width="stretch",
              help="U-Net/ResNet-18, focal + dice, rarest class oversampled x3, 30 epochs")
    # Keyed sections: the browser keeps each one open or closed by its key. Unkeyed, a section is
    # known by its position on the page, and a message shown above the form for one rerun (after
    # "Quick preset", "Defaults", "Use these settings") moved them all: the next change of any
    # widget (the training input, say) rebuilt them in their initial state, closing an open one.
    with st.expander("Model", expanded=True, icon=":material/hub:", key=SECTION + "model"):
        _model_widgets()
    with st.expander("Loss", expanded=True, icon=":material/functions:", key=SECTION + "loss"):
        _loss_widgets(loaded.ds.class_map)
    with st.expander("Data and sampling", icon=":material/dataset:", key=SECTION + "data"):
        _data_widgets(loaded)
    with st.expander("Optimisation", expanded=True, icon=":material/speed:", key=SECTION + "optim"):
        _optim_widgets()
    with st.expander("Machine and seed", icon=":material/memory:", key=SECTION + "machine"):
        _machine_widgets()
    st.text_input("Run name (optional)", key=W + "name", placeholder="date-architecture-encoder")
    remember_form(dataset_key(loaded.ds))  # every change, and so what Start trains: a reload keeps it
    try:
        cfg = build_config(loaded)
        problem = None
    except (ConfigError, LossError) as e:
        cfg, problem = None, str(e)
    if problem:
        st.error(problem, icon=":material/error:")
    else:
        st.caption(describe(cfg, loaded))
        train_split.leak_note(loaded, W)
    busy = any(s.active for s in manager().snapshots())
    st.button("Queue training" if busy else "Start training", key="train_start", type="primary", width="stretch",
              icon=":material/queue:" if busy else ":material/play_arrow:", disabled=cfg is None,
              on_click=_start, args=(loaded,),
              help="Another job is training: this one waits for it" if busy else "Trains in the background")


def describe(cfg: TrainConfig, loaded: Loaded) -> str:
    """One line saying what will train."""
    cmap = loaded.ds.class_map
    steps = plural(cfg.max_steps_per_epoch, "step") if cfg.max_steps_per_epoch else "full passes"
    sampler = cfg.sampler
    if cfg.sampler == "oversample":
        which = ", ".join(cmap.name_of(c) for c in cfg.sampler_classes) if cfg.sampler_classes else "the rarest class"
        sampler = f"{which} ×{cfg.sampler_factor:g}"
    plan = input_plan(cfg, loaded)
    # The input and the pipeline in the Augment preview's words: both pages say the same.
    return (f"**{cfg.arch}/{cfg.encoder}** · loss `{cfg.loss}` · {plural(cfg.epochs, 'epoch')} ({steps}) × batch "
            f"{cfg.batch_size} · lr {cfg.lr:.0e} {cfg.optimizer}/{cfg.scheduler} · sampler {sampler} · "
            f"{pipeline_words(cfg.aug)} · {plural(len(loaded.ds.labeled_ids), 'labeled image')}, "
            f"{input_words(plan)} ({plan['why']})")


def input_plan(cfg: TrainConfig, loaded: Loaded) -> dict:
    """What training will choose for this config's input policy on this dataset's labeled images."""
    stats = loaded.stats
    labeled = stats.labeled.astype(bool)
    return resolve_input(cfg.input_mode, cfg.input_size, stats.shape[labeled] if labeled.any() else stats.shape)


def _start(loaded: Loaded) -> None:
    try:
        cfg = build_config(loaded)
        mgr = manager()
        job_id = mgr.submit(cfg, name=st.session_state[W + "name"].strip() or None,
                            processes=int(st.session_state.get(W + "processes") or 1))
    except (ConfigError, LossError, JobError, OSError) as e:
        say("error", f"Not started: {e}")
        return
    snap = mgr.snapshot(job_id)
    if snap.status == "queued":  # keep watching the job that trains now
        say("info", f"Queued {snap.name} (position {snap.queue_position}): it starts when the job before it ends.")
    else:
        st.session_state[WATCH] = job_id
        say("success", f"Started {snap.name}.")
