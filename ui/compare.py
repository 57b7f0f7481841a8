"""Streamlit glue of the Compare page: session keys, the run picker, the cached comparison, the
summary strip and the section switch. The image view lives in ``ui/compare_image.py``, the
tables and charts in ``ui/compare_panels.py``, label quality and export in ``ui/compare_tools.py``.

A comparison is computed when the user presses "Compare" (inference can take a while on a CPU)
and kept in a small in-process LRU shared by sessions; beneath it, seglib.predict's disk cache
makes a second opening a file read, and a retrained run (new weights) a new key.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from seglib.cache import LRU
from seglib.predict import (
    Comparison,
    Ensemble,
    Layout,
    Member,
    RunChoice,
    dataset_layout,
    default_runs,
    open_members,
    predict,
    run_choices,
    shared_val_ids,
)
from seglib.predict.members import weights_identity
from seglib.predict.run import digest
from seglib.pretrained import describe as describe_weights
from seglib.train import CheckpointError, RunFolder
from seglib.viz.compare_plots import column_colors

from . import progress, roots
from .data import Loaded

P = "compare_"
RUNS, ENSEMBLES, WEIGHT_MODE, WEIGHT = P + "runs", P + "ensembles", P + "weight_mode", P + "w_"
TTA, SPLIT, TILE = P + "tta", P + "split", P + "tile"
TILES = [None, 0, 256, 512, 768, 1024]
APPLIED = P + "applied"          # Spec: what the page shows (set by the Compare button)
SECTION = P + "section"
IMAGE = P + "image"              # str: the image shown in the Images section
COL_A, COL_B = P + "a", P + "b"  # the two columns compared (disagreement, "where A beats B")
ORDER = P + "order"              # str: a key of ORDERS; also the order of previous / next
CELL = P + "cell"                # (column, true id, predicted id) picked in a confusion matrix
PASS = P + "pass"                # the progress bar and Cancel button of a prediction pass
FINISHED_ONLY = P + "finished_only"  # bool: the run picker hides cancelled, failed and interrupted runs
EXPORT_PASS = P + "export_pass_" # + column name: the comparison key whose fitted-on-all export was asked for
ENSEMBLES_KEPT = P + "ensembles_kept"  # list[str]: the ensemble choice while fewer than two runs are chosen

SPLITS = {"val": "Validation images of the runs", "labeled": "All labeled images", "test": "Unlabeled (test) images",
          "all": "All images"}
ENSEMBLE_LABELS = {"mean": "Mean", "weighted": "Weighted mean", "vote": "Majority vote"}
SECTIONS = ["Images", "Per image", "Dataset", "Confusion", "Label quality", "Export"]


@dataclass(frozen=True)
class Spec:
    """What to compare: run folders, ensemble kinds, manual weights (None = fit), TTA, split."""

    runs: tuple[str, ...]
    ensembles: tuple[str, ...]
    weights: tuple[float, ...] | None
    tta: bool
    split: str
    tile: int | None = None       # windows of this many px for every run; 0 whole images; None each run's own

@dataclass
class Ctx:
    loaded: Loaded
    spec: Spec
    cmp: Comparison
    layout: Layout
    members: list[Member]
    colors: dict[str, str]
    key: str                      # identifies this comparison (weights, dataset, options)

    @property
    def ds(self):
        return self.loaded.ds

    @property
    def names(self) -> list[str]:
        return self.cmp.names


# --- cached resources ----------------------------------------------------------------------
@st.cache_resource(show_spinner=False)
def _comparisons() -> LRU:
    """Comparisons in memory, shared by every session of the process (read-only objects)."""
    return LRU(4)


@st.cache_resource(max_entries=4, show_spinner=False)
def _layout(path: str, fingerprint: str, _ds) -> Layout:
    return dataset_layout(_ds)


def layout(loaded: Loaded) -> Layout:
    return _layout(loaded.path, loaded.fingerprint, loaded.ds)


@st.cache_resource(max_entries=8, show_spinner="Checking the runs…")
def _members(runs: tuple[str, ...], identities: tuple[str, ...], fingerprint: str, _layout: Layout):
    return open_members(list(runs), _layout, source="this dataset")


def _identity(run: str) -> str:
    try:
        return weights_identity(RunFolder(run).weights_path())
    except OSError:
        return "missing"


# --- the run picker ------------------------------------------------------------------------
def _default_split(loaded: Loaded, runs: list[str]) -> list[str]:
    """The splits this dataset offers for these runs, best default first."""
    ds = loaded.ds
    options = []
    if ds.labeled_ids and runs and _shares_val(loaded, tuple(runs)):
        options.append("val")
    if ds.labeled_ids:
        options.append("labeled")
    if ds.unlabeled_ids:
        options.append("test")
    return options + ["all"]


@st.cache_data(max_entries=32, show_spinner=False)
def _shares_val_cached(fingerprint: str, runs: tuple[str, ...], identities: tuple[str, ...], _ds) -> bool:
    val = None
    for run in runs:
        try:
            ids = set(RunFolder(run).read_config().get("val_ids") or [])
        except CheckpointError:
            return False
        val = ids if val is None else val & ids
    return bool(val and val & set(_ds.labeled_ids))


def _shares_val(loaded: Loaded, runs: tuple[str, ...]) -> bool:
    return _shares_val_cached(loaded.fingerprint, runs, tuple(_identity(r) for r in runs), loaded.ds)


def picker(loaded: Loaded, lay: Layout) -> Spec | None:
    """The run / ensemble / split chooser; returns the applied Spec (None before the first
    "Compare")."""
    where = roots.checkpoints_folder()  # runs are opened only from a folder under a dataset root
    if where is None:
        return None
    rows = run_choices(lay, where)
    usable = [r for r in rows if r.problem is None]
    if not usable:
        st.info(f"No run in `{where}` can predict this dataset yet. Train one on the Train page or with "
                "`python -m seglib train DATASET --out checkpoints/NAME`, then come back."
                + (f" ({len(rows)} runs there do not fit: see below.)" if rows else ""))
        _unusable(rows)
        return None
    st.session_state.setdefault(RUNS, default_runs(usable))
    st.session_state.setdefault(ENSEMBLES, ["mean"])
    applied: Spec | None = st.session_state.get(APPLIED)
    with st.expander("Runs and ensembles", expanded=applied is None, icon=":material/tune:"):
        shown = finished_filter(usable, FINISHED_ONLY)
        labels = {r.path: r.label for r in shown}
        st.session_state[RUNS] = [p for p in st.session_state[RUNS] if p in labels]
        c1, c2 = st.columns([3, 2])
        runs = c1.multiselect("Runs (each is a column)", list(labels), format_func=labels.get, key=RUNS,
                              help="Training runs from the checkpoints folder that fit this dataset's classes and "
                                   "channels; the two best finished ones are picked to start with")
        kinds = _ensemble_pills(c2, len(runs))
        splits = _default_split(loaded, runs)
        if st.session_state.get(SPLIT) not in splits:
            st.session_state[SPLIT] = splits[0]
        c3, c4 = st.columns([3, 2])
        split = c3.selectbox("Images", splits, format_func=SPLITS.get, key=SPLIT,
                             help="The runs' own validation images are the honest ones: no run trained on them")
        tta = c4.toggle("Test-time flips", key=TTA, help="Average each model over the image and its three flips "
                                                         "(4x the inference time)")
        tile = c4.selectbox("Windows", TILES, key=TILE, format_func=_tile_label,
                            help="How a run sees a big image: as it trained (windows of its training crop, its "
                                 "resize, or whole), or windows of one size for every run, blended without seams")
        weights = _weights_editor(runs, labels) if "weighted" in kinds else None
        pending = Spec(tuple(runs), tuple(kinds), weights, bool(tta), split, tile)
        b1, b2 = st.columns([1, 4], vertical_alignment="center")
        if b1.button("Compare", type="primary", disabled=not runs, icon=":material/compare:", key=P + "go"):
            st.session_state[APPLIED] = applied = pending
        elif applied is not None and applied != pending:
            b2.caption("Changed: press **Compare** to apply.")
        _unusable(rows)
    return applied


def _ensemble_pills(where, n_runs: int) -> list[str]:
    """The ensemble kinds to compute. With fewer than two runs there is nothing to combine: the
    pills show none chosen and cannot be clicked (a chosen-looking "Mean" would promise a column
    that never comes), and the choice waits in ENSEMBLES_KEPT for a second run."""
    label, options = "Ensembles of the chosen runs", list(ENSEMBLE_LABELS)
    s = st.session_state
    if n_runs < 2:
        s.setdefault(ENSEMBLES_KEPT, list(s.get(ENSEMBLES) or []))
        where.pills(label, options, selection_mode="multi", format_func=ENSEMBLE_LABELS.get, default=None,
                    disabled=True, key=P + "ensembles_off")
        where.caption("Ensembles combine two or more runs: choose another run to add them.")
        return []
    if ENSEMBLES_KEPT in s:  # the choice made before the runs went below two
        s[ENSEMBLES] = s.pop(ENSEMBLES_KEPT)
    return where.pills(label, options, selection_mode="multi", format_func=ENSEMBLE_LABELS.get, key=ENSEMBLES,
                       help="Mean of the class probabilities; weighted mean (weights fitted on the runs' "
                            "validation images, or yours); majority vote of the masks")


def finished_filter(usable: list[RunChoice], key: str, where=st) -> list[RunChoice]:
    """The runs a picker lists: with the "Only finished runs" switch on (the default), runs that
    were cancelled, failed, interrupted or are still training are left out; when no run has
    finished, all of them, and the switch says so."""
    unfinished = [r for r in usable if not r.finished]
    if not unfinished:
        return usable
    if len(unfinished) == len(usable):
        where.caption(f"No run has finished yet: the {len(usable)} listed were cancelled, failed, interrupted or are "
                      "still training (their weights are from their best epoch so far).")
        return usable
    st.session_state.setdefault(key, True)
    only = where.toggle(f"Only finished runs ({len(unfinished)} others: cancelled, failed, interrupted or "
                        "training)", key=key)
    return [r for r in usable if r.finished] if only else usable


def _tile_label(tile: int | None) -> str:
    return {None: "as each run trained", 0: "whole images"}.get(tile, f"{tile} px windows")


def _weights_editor(runs: list[str], labels: dict[str, str]) -> tuple[float, ...] | None:
    mode = st.radio("Weights of the weighted mean", ["fit", "manual"], horizontal=True, key=WEIGHT_MODE,
                    format_func={"fit": "Fit on the runs' validation images (best mIoU)", "manual": "Set by hand"}.get)
    if mode == "fit":
        return None
    cols = st.columns(len(runs))
    return tuple(float(col.slider(labels[r].split(" · ")[0], 0.0, 1.0, round(1 / len(runs), 2), 0.05,
                                  key=WEIGHT + r)) for col, r in zip(cols, runs, strict=True))


def _unusable(rows: list[RunChoice]) -> None:
    bad = [r for r in rows if r.problem]
    if bad:
        st.caption("Not usable here: " + "; ".join(f"**{r.name}**: {r.problem.split(': ', 1)[-1]}" for r in bad[:6])
                   + (f"; and {len(bad) - 6} more" if len(bad) > 6 else ""))


# --- the comparison ---------------------------------------------------------------------------
def ids_for(split: str, members: list[Member], ds) -> list[str]:
    if split == "val":
        return shared_val_ids(members, ds)
    return {"labeled": ds.labeled_ids, "test": ds.unlabeled_ids}.get(split, ds.ids)


def ensembles_for(spec: Spec, members: list[Member]) -> list[Ensemble]:
    names = tuple(m.name for m in members)
    if len(names) < 2:
        return []
    out = []
    for kind in spec.ensembles:
        weights = None
        if kind == "weighted" and spec.weights is not None:
            by_run = dict(zip(spec.runs, spec.weights, strict=True))
            weights = tuple(by_run[str(m.run_dir)] for m in members)
            if sum(weights) <= 0:
                weights = None
        out.append(Ensemble(kind, names, weights, name=f"{kind} ensemble"))
    return out


def comparison(loaded: Loaded, spec: Spec, lay: Layout) -> Ctx | None:
    """The comparison of ``spec`` on the current dataset: from memory, else from the disk cache,
    else predicted with a progress bar. None after showing why it cannot be made."""
    identities = tuple(_identity(r) for r in spec.runs)
    members, problems = _members(spec.runs, identities, loaded.fingerprint, lay)
    for p in problems:
        st.warning(f"Left out: {p}", icon=":material/warning:")
    if not members:
        return None
    ds = loaded.ds
    ids = ids_for(spec.split, members, ds)
    if not ids:
        st.warning(f"No images in “{SPLITS[spec.split]}” for these runs: pick other images above.")
        return None
    ensembles = ensembles_for(spec, members)
    key = digest(loaded.fingerprint, [m.identity for m in members], spec)
    if progress.cancelled(PASS):
        for k in [k for k in st.session_state if str(k).startswith(EXPORT_PASS)]:
            del st.session_state[k]          # an export's pass was cancelled: do not start it again
        if key not in _comparisons():
            st.session_state[APPLIED] = None
            st.info("Comparison cancelled. Press **Compare** to start it again; what was finished is cached.")
            return None

    def compute() -> Comparison:
        with progress.PassProgress(PASS) as bar:
            return Comparison(predict(ds, members, ensembles, ids, tta=spec.tta, layout=lay,
                                      fingerprint=loaded.fingerprint, tile=spec.tile,
                                      progress=bar.stage(f"Predicting with {len(members)} models"),
                                      fit_progress=bar.stage("Fitting the weighted ensemble's weights")))

    try:
        cmp = _comparisons().get_or_compute(key, compute)
    except (ValueError, CheckpointError) as e:
        st.error(str(e))
        return None
    colors = column_colors(cmp.model_names, cmp.ensemble_names)
    return Ctx(loaded, spec, cmp, lay, members, colors, key)


def export_column(ctx: Ctx, name: str):
    """The column to export as ``name``. A cross-fitted ensemble is scored with per-half weights,
    but exported with the weights fitted on all the images (what a user applies to new images):
    that takes one more prediction pass, run once when asked for (:func:`ask_export_pass`).
    None until then."""
    col = ctx.cmp.columns[name]
    if not col.info.get("crossfit"):
        return col
    key = (ctx.key, "fitted on all", name)
    if key not in _comparisons() and st.session_state.get(EXPORT_PASS + name) != ctx.key:
        return None
    return _comparisons().get_or_compute(key, lambda: _refit_column(ctx, name))


def ask_export_pass(ctx: Ctx, name: str) -> None:
    st.session_state[EXPORT_PASS + name] = ctx.key


def _refit_column(ctx: Ctx, name: str):
    ens = next(e for e in ctx.cmp.pred.ensembles if e.name == name)
    with progress.PassProgress(PASS) as bar:
        pred = predict(ctx.ds, ctx.members, [ens], ctx.cmp.ids, tta=ctx.spec.tta, layout=ctx.layout,
                       fingerprint=ctx.loaded.fingerprint, crossfit=False, tile=ctx.spec.tile,
                       progress=bar.stage(f"Predicting {name} with the weights fitted on all"))
    return pred.columns[name]


# --- header and sections ----------------------------------------------------------------------
def summary(ctx: Ctx) -> None:
    """One metric per column: dataset mIoU (ensembles: the gain over the best run), or, without
    labels, the mean confidence."""
    cmp = ctx.cmp
    cols = st.columns(max(len(cmp.names), 1))
    best_model = max((cmp.scores(n)["miou"] for n in cmp.model_names), default=float("nan")) if cmp.has_labels else None
    for col, name in zip(cols, cmp.names, strict=False):
        member = next((m for m in ctx.members if m.name == name), None)
        start = describe_weights(member.config.resolved.get("encoder_weights")) if member else ""
        helptext = f"{member.spec.label} · started from {start}" if member else _ensemble_help(ctx, name)
        if cmp.has_labels:
            miou = cmp.scores(name)["miou"]
            delta = None if member else f"{miou - best_model:+.3f} vs best run"
            crossfit = " · cross-fitted" if cmp.columns[name].info.get("crossfit") else ""
            col.metric(f"mIoU · {name}{crossfit}", f"{miou:.3f}", delta, help=helptext)
        else:
            col.metric(f"confidence · {name}", f"{cmp.mean_confidence(name).mean():.2f}", help=helptext)
    n_lab = len(cmp.labeled_ids)
    skipped = f" · {len(cmp.pred.skipped)} unreadable left out" if cmp.pred.skipped else ""
    tta = (" · flip TTA" if ctx.spec.tta else "") + (f" · {_tile_label(ctx.spec.tile)}" if ctx.spec.tile is not None
                                                      else "")
    st.caption(f"{len(cmp.ids):,} images ({n_lab:,} labeled) · {SPLITS[ctx.spec.split].lower()}{tta}{skipped}"
               + (" · from the cache" if len(cmp.pred.cached) == len(cmp.names) else ""))


def _ensemble_help(ctx: Ctx, name: str) -> str:
    ens = next(e for e in ctx.cmp.pred.ensembles if e.name == name)
    return ensemble_description(ens)


def _weights_text(members, weights) -> str:
    return ", ".join(f"{m} {w:.2f}" for m, w in zip(members, weights, strict=True))


def ensemble_description(ens: Ensemble) -> str:
    """What an ensemble column is, and for fitted weights how its scores stay honest."""
    text = f"{ENSEMBLE_LABELS[ens.kind]} of {_weights_text(ens.members, ens.member_weights())}"
    if ens.fit_info:
        text += (f", fitted for mIoU on {ens.fit_info['n_images']} validation images (the weights used to export "
                 "and predict)")
    if ens.crossfit is not None:
        folds = "; ".join(_weights_text(ens.members, w) for w in ens.crossfit.weights)
        text += (f". Scored cross-fitted: each of {len(ens.crossfit.folds)} halves of those images is predicted "
                 f"with the weights fitted on the other ({folds}), so no image scores weights it helped choose")
    return text + "."


def sections(ctx: Ctx) -> list[str]:
    out = ["Images", "Per image", "Dataset"]
    if ctx.cmp.has_labels:
        out.append("Confusion")
    if ctx.ds.labeled_ids and any(m.val_ids for m in ctx.members):
        out.append("Label quality")
    return out + ["Export"]


def _keep(store: str, widget: str) -> None:
    st.session_state[store] = st.session_state[widget]


def kept(store: str, default, options: list | None = None) -> dict:
    """Widget arguments that keep its value under ``store`` while the widget is not drawn
    (Streamlit forgets the state of widgets a run does not draw: another section's)."""
    value = st.session_state.get(store, default)
    if options is not None and value not in options:
        value = default
    st.session_state[store] = st.session_state[store + "_w"] = value
    return {"key": store + "_w", "on_change": _keep, "args": (store, store + "_w")}


def pair(ctx: Ctx) -> tuple[str, str]:
    """The two columns compared (A, B): by default the first two."""
    names = ctx.names
    for key, default in ((COL_A, names[0]), (COL_B, names[1] if len(names) > 1 else names[0])):
        if st.session_state.get(key) not in names:
            st.session_state[key] = default
    return st.session_state[COL_A], st.session_state[COL_B]


def pair_pickers(ctx: Ctx) -> tuple[str, str]:
    """A and B select boxes (the same pair in every section)."""
    a, b = pair(ctx)
    c1, c2 = st.columns(2)
    c1.selectbox("A", ctx.names, **kept(COL_A, a, ctx.names),
                 help="The column to look at; “A beats B” sorts by A's mIoU minus B's")
    c2.selectbox("B", ctx.names, **kept(COL_B, b, ctx.names), help="The column A is compared with")
    return st.session_state[COL_A], st.session_state[COL_B]


def open_image(image_id: str) -> None:
    """Show ``image_id`` in the Images section (from a table row or a thumbnail's button)."""
    st.session_state[IMAGE] = image_id
    st.session_state[SECTION] = "Images"


def short(path: str) -> str:
    return Path(path).name
