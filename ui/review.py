"""Streamlit glue of the Review page: session keys, cached store and tables, the map section
with click-to-flag, and the detector table. The queue and export live in ``ui/review_queue.py``."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from seglib import outliers, review, viz
from seglib.data import SegDataset
from seglib.outliers.duplicates import MIN_NEAR_CORR, NEAR_CORR, SEQUENCE_SCORE, near_duplicate_summary
from seglib.outliers.projection import projection
from seglib.review import tables
from seglib.stats import DatasetStats
from seglib.viz import plots

from . import dataset_grid, label_errors, progress
from .data import Loaded, Memo, background_pass, review_store

# Session keys of this page (all prefixed "review_").
SECTION = "review_section"
X_AXIS, Y_AXIS, COLOR_BY = "review_x", "review_y", "review_color"
CHART_GEN = "review_chart_gen"      # int: bumped after flagging, which empties the chart selection
TABLE_GEN = "review_table_gen"      # int: the same for the detector table
REASON = "review_reason"
DET_FILTER, DET_MIN_SCORE = "review_det_filter", "review_det_min_score"
NEAR_THRESHOLD = "review_near_threshold"  # float: pixel correlation a near-copy pair needs
LAST_ACTION = "review_last_action"  # str: a message shown once after a rerun
LEARNED = "review_learned_map"      # bool: place images by a trained run's encoder, not by thumbnails
LEARNED_RUN = "review_learned_run"  # str: that run's folder
LEARNED_FINISHED_ONLY = "review_learned_finished_only"  # bool: the run picker hides cancelled and failed runs
LEARNED_PASS = "review_learned_pass"  # the learned map's progress bar and Cancel button

SECTIONS = ["Map", "Detectors", "Queue", "Export"]
STATE_LABELS = {"flagged": "Flagged", "keep": "Keep", "exclude": "Exclude", "relabel": "Needs relabel"}
MAX_THUMBS = 24


@dataclass
class Ctx:
    """What every section needs: the dataset, its stats, the store and the dataset's key."""

    loaded: Loaded
    store: review.ReviewStore
    key: str

    @property
    def ds(self) -> SegDataset:
        return self.loaded.ds

    @property
    def stats(self) -> DatasetStats:
        return self.loaded.stats


def init() -> None:
    for k, v in {SECTION: "Map", CHART_GEN: 0, TABLE_GEN: 0, REASON: "", LAST_ACTION: ""}.items():
        st.session_state.setdefault(k, v)


def context(loaded: Loaded) -> Ctx:
    init()
    return Ctx(loaded, review_store(), review.dataset_key(loaded.ds))


@st.cache_resource(show_spinner=False)
def _memos() -> tuple[Memo, Memo]:
    """Detector tables and thumbnail maps by (path, fingerprint), shared by the sessions (read-only)."""
    return Memo(4), Memo(4)


def _detections(path: str, fingerprint: str, ds: SegDataset, stats: DatasetStats) -> pd.DataFrame:
    """The detectors' table: from memory, the on-disk cache, or one pixel pass with a progress bar."""
    return background_pass(_memos()[0], (path, fingerprint), lambda bar: outliers.detect(ds, stats, progress=bar),
                           "Reading the images for the outlier detectors", after="Running the outlier detectors…")


def _projection(path: str, fingerprint: str, ds: SegDataset, stats: DatasetStats) -> pd.DataFrame:
    """The thumbnail map (it shares the detectors' pixel pass: they run first on a cold open)."""
    _detections(path, fingerprint, ds, stats)
    return background_pass(_memos()[1], (path, fingerprint), lambda bar: projection(ds, stats, progress=bar),
                           "Reading the images for the map", after="Projecting the images to 2-D…")


@st.cache_data(max_entries=16, show_spinner=False)
def _near_rows(path: str, fingerprint: str, min_corr: float, _ds: SegDataset, _stats: DatasetStats) -> pd.DataFrame:
    return outliers.detect(_ds, _stats, detectors=["near_duplicate"],
                           options={"near_duplicate": {"min_corr": min_corr}})


def near_threshold() -> float:
    return float(st.session_state.get(NEAR_THRESHOLD, NEAR_CORR))


def detections(ctx: Ctx) -> pd.DataFrame:
    """Detector rows (image_id, detector, reason, score, group), most suspicious first; the
    near-duplicate rows at the threshold chosen on the page (only they are recomputed)."""
    det = _detections(ctx.loaded.path, ctx.loaded.fingerprint, ctx.ds, ctx.stats)
    if near_threshold() != NEAR_CORR:
        near = _near_rows(ctx.loaded.path, ctx.loaded.fingerprint, near_threshold(), ctx.ds, ctx.stats)
        det = outliers.replace_detector(det, "near_duplicate", near)
    scored = label_errors.flag_rows(ctx.loaded)   # out-of-fold label scores, once the dataset has them
    return det if scored is None else outliers.replace_detector(det, "label_errors", scored)


def near_threshold_control(ctx: Ctx) -> None:
    """The near-copy threshold with a live count of what it flags."""
    c1, c2 = st.columns([1, 2], vertical_alignment="bottom")
    c1.slider("Near-copy threshold (pixel correlation)", MIN_NEAR_CORR, 0.999, NEAR_CORR, 0.001, format="%.3f",
              key=NEAR_THRESHOLD, help="How alike two pictures must be, after brightness and contrast are evened "
                                       "out, to count as near copies. Lower finds more (and more false ones).")
    det = detections(ctx)
    n = near_duplicate_summary(det[det["detector"] == "near_duplicate"])
    plural = lambda k, word: f"{k:,} {word}{'' if k == 1 else 's'}"  # noqa: E731
    seq = (f" · {plural(n['in_sequences'], 'image')} in {plural(n['sequences'], 'sequence')} of consecutive "
           f"frames (score {SEQUENCE_SCORE}: a video, not copies)" if n["sequences"] else "")
    c2.markdown(f"**{plural(n['copies'], 'image')}** flagged as near copies in "
                f"{plural(n['copy_groups'], 'group')}{seq}")


def say(message: str) -> None:
    """Show ``message`` after the next rerun (buttons change state, then rerun)."""
    st.session_state[LAST_ACTION] = message


def counts_row(ctx: Ctx) -> dict[str, int]:
    counts = ctx.store.counts(ctx.key)
    cols = st.columns(5)
    cols[0].metric("Unreviewed", f"{len(ctx.stats.ids) - sum(counts.values()):,}")
    for col, (state, label) in zip(cols[1:], STATE_LABELS.items(), strict=True):
        col.metric(label, f"{counts[state]:,}")
    if st.session_state.get(LAST_ACTION):
        st.toast(st.session_state[LAST_ACTION])
        st.session_state[LAST_ACTION] = ""
    return counts


def thumbnails(ctx: Ctx, ids: list[str], states: dict[str, str], cols: int = 6) -> None:
    """Overlays of the first MAX_THUMBS images, captioned with id and review state."""
    shown = ids[:MAX_THUMBS]
    grid = st.columns(cols)
    # The Dataset grid's cached thumbnails: a big photo is decoded reduced, once, not on every rerun.
    pictures = dataset_grid.thumbnails(ctx.loaded, shown, viz.View(alpha=0.4), dataset_grid.THUMB_PX)
    for k, (image_id, (data, _)) in enumerate(zip(shown, pictures, strict=True)):
        grid[k % cols].image(data, width="stretch", caption=f"{image_id} · {states.get(image_id, tables.UNREVIEWED)}")
    if len(ids) > len(shown):
        st.caption(f"…and {len(ids) - len(shown)} more.")


def flag_buttons(ctx: Ctx, ids: list[str], where: str, gen_key: str) -> None:
    """Flag / clear buttons for a selection; a reason recorded with the flags."""
    reason = st.text_input("Reason", key=f"{REASON}_{where}", placeholder="why these images look wrong")
    left, right, _ = st.columns([1, 1, 2])
    if left.button(f"Flag {len(ids)} selected", type="primary", disabled=not ids, key=f"review_flag_{where}",
                   icon=":material/flag:"):
        ctx.store.flag(ctx.key, ids, reason=reason.strip() or f"picked on the {where}")
        say(f"Flagged {len(ids)} images")
        st.session_state[gen_key] += 1
        st.rerun()
    if right.button(f"Clear {len(ids)} selected", disabled=not ids, key=f"review_clear_{where}",
                    icon=":material/flag_circle:", help="Forget their flags and decisions"):
        ctx.store.set_state(ctx.key, ids, "cleared")
        say(f"Cleared {len(ids)} images")
        st.session_state[gen_key] += 1
        st.rerun()


# --- the map ------------------------------------------------------------------------------
THUMBNAIL_MAP = ("pc1/pc2: a PCA map of small thumbnails and class fractions (look-alike images sit together). ")


@st.cache_resource(show_spinner=False)
def _learned_projections():
    """Learned maps in memory, shared by the sessions (beneath: embedding_projection's disk cache)."""
    from seglib.cache import LRU

    return LRU(4)


def _learned_projection(ctx: Ctx, run: str, identity: str) -> pd.DataFrame:
    """The learned map of ``run``: from memory, else from the disk cache, else embedded with a
    progress bar and a Cancel button (see ui.progress)."""
    from seglib.predict import embedding_projection, open_member  # loads torch: only when asked for

    def compute() -> pd.DataFrame:
        with progress.PassProgress(LEARNED_PASS) as bar:
            return embedding_projection(ctx.ds, open_member(run),
                                        progress=bar.stage(f"Embedding the images with {Path(run).name}'s encoder"))

    return _learned_projections().get_or_compute((ctx.loaded.path, ctx.loaded.fingerprint, run, identity), compute)


def _learned_runs(ctx: Ctx, where) -> tuple[dict[str, str], str | None]:
    """({run folder: label} of the runs in the checkpoints folder that can read this dataset, as the
    "Only finished runs" switch filters them, the best finished run)."""
    from seglib.predict import default_runs, run_choices  # loads torch: only when the learned map is switched on

    from . import compare, roots

    folder = roots.checkpoints_folder()
    if folder is None:
        return {}, None
    usable = [r for r in run_choices(compare.layout(ctx.loaded), folder) if r.problem is None]
    best = default_runs(usable, 1)
    shown = compare.finished_filter(usable, LEARNED_FINISHED_ONLY, where)
    return {r.path: r.label for r in shown}, (best[0] if best else None)


def projection_for(ctx: Ctx, switch) -> tuple[pd.DataFrame, str]:
    """The map's 2-D coordinates and a sentence saying what placed the images: the thumbnail
    PCA, or (switched on in ``switch``, a column) a trained run's encoder, which sees what an
    image holds, not only how it looks; images the thumbnails mix up (the demo's aliens) stand
    apart there."""
    if progress.cancelled(LEARNED_PASS):
        st.session_state[LEARNED] = False
        st.info("Learned map cancelled: showing the thumbnail map.")
    if switch.toggle("Learned map", key=LEARNED, help="Place the images by the features of a trained run's "
                                                       "encoder (computed once per run and dataset, then cached)"):
        runs, best = _learned_runs(ctx, st)
        if not runs:
            st.caption("No trained run can read this dataset yet: train one on the Train page.")
        else:
            if st.session_state.get(LEARNED_RUN) not in runs:
                st.session_state[LEARNED_RUN] = best if best in runs else next(iter(runs))
            run = st.selectbox("Encoder of", list(runs), format_func=runs.get, key=LEARNED_RUN)
            from seglib.predict.members import weights_identity
            from seglib.train import CheckpointError, RunFolder

            try:
                proj = _learned_projection(ctx, run, weights_identity(RunFolder(run).weights_path()))
                return proj, (f"pc1/pc2: a PCA of the encoder features of **{Path(run).name}** (images the model "
                              "sees as alike sit together; odd content lies apart). ")
            except (CheckpointError, OSError) as e:
                st.warning(f"The learned map is not available: {e}. Showing the thumbnail map.")
    return _projection(ctx.loaded.path, ctx.loaded.fingerprint, ctx.ds, ctx.stats), THUMBNAIL_MAP


def map_table(ctx: Ctx, proj: pd.DataFrame) -> pd.DataFrame:
    """Per-image statistics joined with the 2-D projection, the review state and the top detector."""
    return tables.map_table(ctx.loaded.per_image, proj, ctx.store.states(ctx.key), detections(ctx))


def map_section(ctx: Ctx) -> None:
    c1, c2, c3, c4 = st.columns([3, 3, 3, 2], vertical_alignment="bottom")
    proj, placed_by = projection_for(ctx, c4)
    table = map_table(ctx, proj)
    unplaced = int(table["pc1"].isna().sum())
    if unplaced:
        st.warning(f"{unplaced} images could not be read and are not on the map; the validation report names them.")
    axes = tables.map_axes(table)
    x = c1.selectbox("X axis", axes, index=0, key=X_AXIS)
    y = c2.selectbox("Y axis", axes, index=1, key=Y_AXIS)
    color = c3.selectbox("Colour by", ["review state", "detector"], key=COLOR_BY)
    st.caption(placed_by + "Click a point (shift-click adds more), or pick the box or lasso tool at the chart's "
                           "top right and drag, then flag the selection.")
    event = st.plotly_chart(plots.map_figure(table, x, y, color), on_select="rerun", width="stretch",
                            selection_mode=("points", "box", "lasso"),
                            key=f"review_scatter_{st.session_state[CHART_GEN]}")
    ids = review.ids_from_selection(event.selection if event else None, valid=table.index)
    if not ids:
        st.info("Nothing selected yet.")
        return
    st.markdown(f"**{len(ids)} selected**")
    flag_buttons(ctx, ids, "map", CHART_GEN)
    thumbnails(ctx, ids, dict(zip(table.index, table["review state"], strict=True)))


# --- detectors ----------------------------------------------------------------------------
def detector_section(ctx: Ctx) -> None:
    label_errors.panel(ctx.loaded)
    near_threshold_control(ctx)
    det = detections(ctx)
    if det.empty:
        st.success("The detectors found nothing suspicious in this dataset.")
        return
    states = ctx.store.states(ctx.key)
    names = sorted(det["detector"].unique())
    c1, c2 = st.columns([3, 1])
    chosen = c1.multiselect("Detectors", names, default=names, key=DET_FILTER)
    min_score = c2.slider("Minimum score", 0.0, 1.0, 0.0, 0.05, key=DET_MIN_SCORE)
    shown = tables.detector_rows(det, states, chosen, min_score)
    st.caption(" · ".join(f"**{d}** {n:,} images" for d, n in tables.images_per_detector(shown).items()))
    event = st.dataframe(shown, hide_index=True, width="stretch", on_select="rerun",
                         selection_mode="multi-row", key=f"review_det_table_{st.session_state[TABLE_GEN]}",
                         column_config={"score": st.column_config.ProgressColumn("score", min_value=0.0, max_value=1.0,
                                                                                 format="%.2f")})
    rows = shown.iloc[event.selection.rows] if event and event.selection.rows else shown.iloc[0:0]
    groups = review.rows_in_groups(shown, rows)
    b1, b2, b3 = st.columns(3)
    clicked = None
    if b1.button(f"Flag {rows['image_id'].nunique()} selected", type="primary", disabled=rows.empty,
                 icon=":material/flag:", key="review_det_flag_rows"):
        clicked = rows
    if b2.button(f"Flag their whole groups ({groups['image_id'].nunique()})", disabled=rows.empty,
                 key="review_det_flag_groups", help="Every row sharing a detector and group with a selected row"):
        clicked = groups
    if b3.button(f"Flag all {shown['image_id'].nunique()} shown", disabled=shown.empty, key="review_det_flag_all"):
        clicked = shown
    if clicked is not None:
        n = review.flag_detections(ctx.store, ctx.key, clicked)
        say(f"Flagged {n} images with their detector reasons")
        st.session_state[TABLE_GEN] += 1
        st.rerun()
    if not rows.empty:
        thumbnails(ctx, list(dict.fromkeys(rows["image_id"])), states)
