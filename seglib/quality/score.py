"""Every labeled image scored from out-of-fold probabilities: cleanlab's softmin and issue map,
the region and boundary checks of :mod:`seglib.quality.regions`, and one suspicion per image.

Each image is predicted by the fold model that never trained on it (:mod:`seglib.quality.folds`);
the model sees it as its run trained (windows of its crop on big images). Per image this keeps a
few numbers (softmin quality, top surprise, the worst region's severity, the boundary fit) and the findings'
small masks; the dataset-level step compares those numbers across images (a robust z per
measure, as the outlier detectors do), so a model that is a little off everywhere flags
nothing while a label off in one way stands out.

>>> scores = score_labels(ds, "quality/unet")        # after cross_validate(...) trained the folds
>>> scores.table.head()          # image_id, fold, score, quality, issue_pixels, reasons, mask_version
>>> scores.findings["00012"]     # [Finding(kind="swapped", label_class=3, model_class=4, pixels=412, ...)]
>>> scores.to_json()             # what ``seglib quality --json`` prints
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..atomic import atomic_write
from ..outliers.base import robust_z, z_score
from ..predict.members import Layout, dataset_layout, open_member
from ..predict.quality import reduce_for_cleanlab
from ..predict.run import member_plans, probs_batches, resolve_device
from ..train.runs import CheckpointError
from .folds import fold_dir
from .regions import Edge, Finding, find_regions
from .surprise import TOP_SHARE, class_thresholds, top_surprise

SCORES_JSON, SCORES_NPZ = "label_scores.json", "label_scores.npz"
SCORE_VERSION = 2     # 2: the top-surprise measure (older files are scored again)
CHUNK = 64            # images cleanlab's issue map is estimated over at once (its per-class thresholds)
FLAG_Z = 4.0          # robust SDs: a measure this far from the dataset's usual says why in words
REGION_FLAG = 0.3     # a region finding with this severity or more is a reason
MIN_OFFSET_PX = 1.0   # boundary displacements under a pixel are never reasons, whatever their z
SUGGEST_SCORE = 0.35  # the Review page lists images scored this or more (a reason's threshold: z 4 -> 0.33)

Progress = Callable[[int, int], None]


@dataclass
class ImageMeasures:
    """One image's raw measures (what the dataset-level step compares), kept in the scores file."""

    image_id: str
    fold: int
    quality: float                     # cleanlab softmin label quality (0..1, low = suspicious)
    issue_pixels: int                  # pixels cleanlab's confident learning finds mislabeled (full size)
    severity: float                    # the worst region finding's severity (0..1)
    offsets: dict[str, float] = field(default_factory=dict)   # class id (str) -> label edge beyond the model's, px
    coverage: dict[str, float] = field(default_factory=dict)
    edge_px: dict[str, int] = field(default_factory=dict)
    shift: tuple[float, float] = (0.0, 0.0)
    spread: float = 0.0
    surprise: float = 0.0              # mean surprise of its most surprising pixels (seglib.quality.surprise)
    mask_version: int = 0              # the corrected mask version scored (0: the file's mask)
    shape: tuple[int, int] = (0, 0)


@dataclass
class LabelScores:
    folds: int
    runs: list[str]                           # the fold run folders
    table: pd.DataFrame                       # one row per scored image, most suspicious first
    findings: dict[str, list[Finding]]
    measures: dict[str, ImageMeasures]
    issues: dict[str, tuple[tuple[int, int], np.ndarray]]   # id -> (grid cleanlab saw, packed issue map)
    unscored: dict[str, str] = field(default_factory=dict)  # labeled images not scored -> why
    identities: list[str] = field(default_factory=list)     # the fold weights scored with (path, size, mtime)

    def issue_mask(self, image_id: str) -> np.ndarray:
        """bool (H, W): the pixels cleanlab's confident learning finds mislabeled, at full size."""
        (gh, gw), packed = self.issues[image_id]
        small = np.unpackbits(packed, count=gh * gw).astype(bool).reshape(gh, gw)
        h, w = self.measures[image_id].shape
        if (gh, gw) == (h, w):
            return small
        f = -(-max(h, w) // max(gh, gw))
        return np.repeat(np.repeat(small, f, 0), f, 1)[:h, :w]

    def regions_mask(self, image_id: str) -> np.ndarray:
        """bool (H, W): the pixels of the image's region findings."""
        shape = self.measures[image_id].shape
        where = np.zeros(shape, bool)
        for f in self.findings.get(image_id, []):
            where |= f.mask(shape)
        return where

    def stale(self, versions: dict[str, int]) -> list[str]:
        """Scored images whose mask changed since (``versions``: id -> current corrected version)."""
        return [i for i, m in self.measures.items() if versions.get(i, 0) != m.mask_version]

    def flags(self, versions: dict[str, int] | None = None, min_score: float = SUGGEST_SCORE) -> pd.DataFrame:
        """The detector table rows of the Review page (detector "label_errors"): images scored
        ``min_score`` or more, each with its reasons; a mask corrected since says it is stale."""
        from ..outliers.base import flags_frame

        stale = set(self.stale(versions or {}))
        rows = []
        for r in self.table.itertuples():
            if r.score < min_score:
                continue
            why = "; ".join(r.reasons) or f"label quality {r.quality:.2g} (cleanlab softmin, out-of-fold)"
            if r.image_id in stale:
                why = f"stale (the mask was corrected since it was scored): {why}"
            rows.append({"image_id": r.image_id, "detector": "label_errors", "score": float(r.score),
                         "reason": f"fold {r.fold + 1} model: {why}", "group": None})
        return flags_frame(rows)

    def to_json(self) -> dict:
        """The ``seglib quality --json`` document: every labeled image, most suspicious first."""
        images = [{"image_id": r.image_id, "score": float(r.score), "quality": float(r.quality),
                   "surprise": float(self.measures[r.image_id].surprise) if r.image_id in self.measures else None,
                   "issue_pixels": int(r.issue_pixels), "reasons": list(r.reasons), "fold": int(r.fold),
                   "mask_version": int(r.mask_version),
                   "regions": [_finding_meta(f) for f in self.findings.get(r.image_id, [])]}
                  for r in self.table.itertuples()]
        images += [{"image_id": i, "score": None, "quality": None, "surprise": None, "issue_pixels": None,
                    "reasons": [why],
                    "fold": None} for i, why in self.unscored.items()]
        return {"folds": self.folds, "runs": self.runs, "images": images}


def _finding_meta(f: Finding) -> dict:
    return {"kind": f.kind, "label_class": f.label_class, "model_class": f.model_class, "pixels": f.pixels,
            "confidence": round(f.confidence, 4), "box": list(f.box), "severity": round(f.severity, 4),
            "words": f.words, "floor": f.floor}


# --- the out-of-fold pass ----------------------------------------------------------------------

def fold_members(out: str | Path, k: int):
    """The fold runs under ``out`` as predict Members (best weights); CheckpointError naming the
    first fold that has no weights."""
    return [open_member(fold_dir(out, f, k), "best", name=f"fold-{f + 1}") for f in range(k)]


def count_folds(out: str | Path) -> int:
    """K from the fold folders under ``out`` (fold-1-of-K ...); 0 when there are none."""
    names = [p.name for p in Path(out).glob("fold-*-of-*") if p.is_dir() and "." not in p.name]
    ks = {int(n.rsplit("-", 1)[1]) for n in names if n.rsplit("-", 1)[1].isdigit()}
    if len(ks) > 1:
        raise CheckpointError(f"{out}: fold folders of several K ({', '.join(map(str, sorted(ks)))}): "
                              "keep one set of folds per folder")
    return ks.pop() if ks else 0


def score_labels(ds, out: str | Path, *, folds: int | None = None, device: str | torch.device = "auto",
                 batch_size: int = 8, progress: Progress | None = None,
                 should_stop: Callable[[], bool] | None = None) -> LabelScores:
    """Score every labeled image with the fold runs under ``out``.

    Images already scored by the same fold weights on the same mask version are taken from
    ``out``'s scores file; only the others are predicted (after a correction: that image alone,
    by its own fold's model, which never saw it either way). Writes the scores file.
    Raises CheckpointError (one line) when a fold run is missing or unusable."""
    k = folds or count_folds(out)
    if not k:
        raise CheckpointError(f"{out}: no fold runs (fold-1-of-K ...): train them first "
                              f"(seglib quality DATA --out {out})")
    members = fold_members(out, k)
    layout = dataset_layout(ds)
    versions = dict(ds.corrections.versions) if getattr(ds, "corrections", None) is not None else {}
    fold_of: dict[str, int] = {}
    for f, m in enumerate(members):
        for i in m.val_ids:
            fold_of[i] = f
    labeled = list(ds.labeled_ids)
    unscored = {i: "in no fold's held-out images (labeled after the folds were made): run quality again"
                for i in labeled if i not in fold_of}
    identities = [m.identity for m in members]
    old = load_scores(out)
    kept: dict[str, ImageMeasures] = {}
    kept_findings: dict[str, list[Finding]] = {}
    kept_issues: dict = {}
    if old is not None and old.identities == identities:
        for i, m in old.measures.items():
            if i in fold_of and versions.get(i, 0) == m.mask_version:
                kept[i], kept_findings[i], kept_issues[i] = m, old.findings.get(i, []), old.issues[i]
    todo = [i for i in labeled if i in fold_of and i not in kept]
    dev = resolve_device(device)
    measures, findings, issues = dict(kept), dict(kept_findings), dict(kept_issues)
    done, total = 0, len(todo)
    for f, member in enumerate(members):
        ids = [i for i in todo if fold_of[i] == f]
        if not ids:
            continue
        model = member.load(dev)
        chunker = _IssueChunks()
        for batch, probs in probs_batches(ds, {member.name: model}, ids, layout, False, batch_size, dev,
                                          plans=member_plans([member])):
            if batch.masks is None:
                continue
            p = probs[member.name].float().cpu()
            y = batch.masks.cpu()
            for b, image_id in enumerate(batch.ids):
                found = find_regions(y[b].numpy(), p[b].numpy(), layout.scored, layout.background)
                findings[image_id] = found.findings
                measures[image_id] = _measures(image_id, f, found.edge, found.findings, versions.get(image_id, 0),
                                               found.shape)
            chunker.add(batch.ids, y, p, layout)
            for image_id, q, u, grid, packed, n_issue in chunker.flush(force=False):
                measures[image_id].quality, measures[image_id].surprise = q, u
                measures[image_id].issue_pixels = n_issue
                issues[image_id] = (grid, packed)
            done += len(batch.ids)
            if progress is not None:
                progress(done, total)
            if should_stop is not None and should_stop():
                raise InterruptedError("scoring cancelled")
        for image_id, q, u, grid, packed, n_issue in chunker.flush(force=True):
            measures[image_id].quality, measures[image_id].surprise = q, u
            measures[image_id].issue_pixels = n_issue
            issues[image_id] = (grid, packed)
    table = rank(measures, findings, layout)
    scores = LabelScores(k, [str(m.run_dir) for m in members], table, findings, measures, issues, unscored,
                         identities)
    save_scores(out, scores)
    return scores


def _measures(image_id: str, fold: int, edge: Edge | None, found: list[Finding], version: int,
              shape: tuple[int, int]) -> ImageMeasures:
    m = ImageMeasures(image_id, fold, 1.0, 0, max((x.severity for x in found), default=0.0), mask_version=version,
                      shape=tuple(int(v) for v in shape))
    if edge is not None:
        m.offsets = {str(c): v for c, v in edge.offsets.items()}
        m.coverage = {str(c): v for c, v in edge.coverage.items()}
        m.edge_px = {str(c): v for c, v in edge.edge_px.items()}
        m.shift, m.spread = edge.shift, edge.spread
    return m


class _IssueChunks:
    """Images of one size held reduced until CHUNK of them are there, then cleanlab's softmin
    quality and confident-learning issue map for them at once (bounded memory: the per-class
    thresholds of confident learning are estimated over a chunk, not the whole dataset)."""

    def __init__(self):
        self.groups: dict[tuple[int, int], dict[str, list]] = {}

    def add(self, ids: list[str], y: torch.Tensor, p: torch.Tensor, layout: Layout) -> None:
        scored = torch.tensor(layout.scored)
        y = torch.where(torch.isin(y, scored), y, p.argmax(1))   # unscored pixels: never an issue
        shape = tuple(y.shape[1:])
        small_p, small_y = reduce_for_cleanlab(p, y)
        g = self.groups.setdefault(shape, {"ids": [], "y": [], "p": []})
        g["ids"] += ids
        g["y"].append(small_y.numpy())
        g["p"].append(small_p.float().numpy())

    def flush(self, force: bool):
        from cleanlab.segmentation.filter import find_label_issues
        from cleanlab.segmentation.rank import get_label_quality_scores

        for shape, g in list(self.groups.items()):
            if not g["ids"] or (len(g["ids"]) < CHUNK and not force):
                continue
            labels, probs = np.concatenate(g["y"]).astype(np.int64), np.concatenate(g["p"])
            quality, _ = get_label_quality_scores(labels, probs, method="softmin", verbose=False)
            issue = find_label_issues(labels, probs, n_jobs=1, verbose=False)
            surprise = top_surprise(labels, probs, class_thresholds(labels, probs))
            scale = (shape[0] * shape[1]) / (labels.shape[1] * labels.shape[2])
            for i, q, m, u in zip(g["ids"], quality, issue, surprise, strict=True):
                yield i, float(q), float(u), tuple(m.shape), np.packbits(m.reshape(-1)), int(round(m.sum() * scale))
            del self.groups[shape]


# --- one suspicion per image --------------------------------------------------------------------

def _one_sided(x: np.ndarray) -> np.ndarray:
    z = robust_z(x) if len(x) >= 10 else np.zeros(len(x))
    return np.clip(z, 0, None)


def rank(measures: dict[str, ImageMeasures], findings: dict[str, list[Finding]], layout: Layout) -> pd.DataFrame:
    """The table: each image's suspicion and the reasons in words.

    The suspicion is how far two measures sit above the dataset's usual, in robust SDs, summed:
    cleanlab's softmin quality (on a log scale) and the top surprise
    (:mod:`seglib.quality.surprise`). The boundary offsets, shift, spread and region findings
    only explain (as reasons, and the regions on the Label page): measured on realistic
    injected errors, adding them to the suspicion ranked worse, because clean images have long
    tails in each (``bench/bench_label_errors.py``; README, Measured)."""
    ids = list(measures)
    names = layout.class_names
    n = len(ids)
    if not n:
        return pd.DataFrame(columns=["image_id", "fold", "score", "quality", "issue_pixels", "reasons",
                                     "mask_version", "n_regions"])
    ms = [measures[i] for i in ids]
    z_quality = _one_sided(-np.log(np.clip([m.quality for m in ms], 1e-12, None)))
    z_surprise = _one_sided(np.array([m.surprise for m in ms]))
    shift = np.array([np.hypot(*m.shift) for m in ms])
    z_shift = _one_sided(shift)
    z_spread = _one_sided(np.array([m.spread for m in ms]))
    z_offset = np.zeros(n)
    worst_class = [None] * n
    classes = sorted({c for m in ms for c in m.offsets})
    for c in classes:
        rows = [k for k, m in enumerate(ms) if c in m.offsets]
        values = np.array([ms[k].offsets[c] for k in rows])
        z = np.abs(robust_z(values)) if len(rows) >= 10 else np.zeros(len(rows))
        big = np.abs(values - np.median(values)) >= MIN_OFFSET_PX
        for k, zk, ok in zip(rows, z, big, strict=True):
            if ok and zk > z_offset[k]:
                z_offset[k], worst_class[k] = zk, c
    score = np.array([z_score(z) for z in z_quality + z_surprise])
    reasons = []
    for k, m in enumerate(ms):
        words = []
        for f in sorted(findings.get(ids[k], []), key=lambda f: -f.severity):
            f.words = describe(f, names)
            if f.severity >= REGION_FLAG:
                words.append(f.words)
        c = worst_class[k]
        if c is not None and z_offset[k] >= FLAG_Z:
            o = m.offsets[c]
            words.append(f"{names[int(c)]}'s label edge lies {abs(o):.1f} px {'outside' if o > 0 else 'inside'} the "
                         f"model's along {m.coverage.get(c, 0):.0%} of its {m.edge_px.get(c, 0):,} px boundary "
                         f"({'dilated' if o > 0 else 'eroded'}; {z_offset[k]:.0f} robust SDs from this class's usual)")
        if z_shift[k] >= FLAG_Z and shift[k] >= MIN_OFFSET_PX:
            dy, dx = m.shift
            words.append(f"the mask is shifted {shift[k]:.1f} px ({_direction(dy, dx)}) against the model's edges")
        if z_spread[k] >= FLAG_Z:
            words.append(f"outlines {m.spread:.1f} px off the model's on average (coarse or sloppy edges; "
                         f"{z_spread[k]:.0f} robust SDs above the usual)")
        if z_surprise[k] >= FLAG_Z:
            words.append(f"the model is confidently against the label on its worst {TOP_SHARE:.1%} of pixels "
                         f"(top surprise {m.surprise:.2g}; {z_surprise[k]:.0f} robust SDs above the usual)")
        if z_quality[k] >= FLAG_Z:
            words.append(f"label quality {m.quality:.2g} (cleanlab softmin; {z_quality[k]:.0f} robust SDs under "
                         f"the usual): the model disagrees confidently with {m.issue_pixels:,} px")
        reasons.append(words)
    table = pd.DataFrame({"image_id": ids, "fold": [m.fold for m in ms], "score": score,
                          "quality": [m.quality for m in ms], "issue_pixels": [m.issue_pixels for m in ms],
                          "reasons": reasons, "mask_version": [m.mask_version for m in ms],
                          "n_regions": [len(findings.get(i, [])) for i in ids]})
    return table.sort_values("score", ascending=False, kind="mergesort").reset_index(drop=True)


def describe(f: Finding, names: Sequence[str]) -> str:
    label, model = names[f.label_class], names[f.model_class]
    if f.kind == "dropped":
        return (f"{_a(model)} {model} of {f.pixels:,} px that the label calls {label} "
                f"(the model is {f.confidence:.0%} sure; no {model} labeled around it)")
    return (f"a region of {f.pixels:,} px labeled {label} that the model calls {model} "
            f"({f.confidence:.0%} sure)")


def _a(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _direction(dy: float, dx: float) -> str:
    parts = []
    if abs(dx) >= 0.5:
        parts.append(f"{abs(dx):.1f} right" if dx > 0 else f"{abs(dx):.1f} left")
    if abs(dy) >= 0.5:
        parts.append(f"{abs(dy):.1f} down" if dy > 0 else f"{abs(dy):.1f} up")
    return ", ".join(parts) or "less than a pixel"


# --- the scores file ------------------------------------------------------------------------------

def save_scores(out: str | Path, scores: LabelScores) -> None:
    out = Path(out)
    ids = list(scores.measures)
    doc = scores.to_json()
    doc["score_version"] = SCORE_VERSION
    doc["identities"] = scores.identities
    doc["measures"] = [asdict(scores.measures[i]) for i in ids]
    doc["findings"] = {i: [_finding_meta(f) for f in scores.findings.get(i, [])] for i in ids}
    doc["grids"] = {i: list(scores.issues[i][0]) for i in ids if i in scores.issues}
    packed = {f"issue/{i}": scores.issues[i][1] for i in ids if i in scores.issues}
    packed.update({f"region/{i}/{k}": f.packed for i in ids for k, f in enumerate(scores.findings.get(i, []))})

    def write_npz(tmp):
        with open(tmp, "wb") as fh:
            np.savez(fh, **packed)

    atomic_write(out / SCORES_NPZ, write_npz)

    def write_json(tmp):
        with open(tmp, "w") as fh:
            json.dump(doc, fh)

    atomic_write(out / SCORES_JSON, write_json)


def load_scores(out: str | Path) -> LabelScores | None:
    """The scores written by :func:`score_labels` under ``out``; None when there are none (or
    they are of an older format, or damaged: then they are computed again)."""
    out = Path(out)
    try:
        doc = json.loads((out / SCORES_JSON).read_text())
        if doc.get("score_version") != SCORE_VERSION:
            return None
        arrays = np.load(out / SCORES_NPZ)
        measures = {}
        for d in doc["measures"]:
            d["shift"], d["shape"] = tuple(d["shift"]), tuple(d["shape"])
            measures[d["image_id"]] = ImageMeasures(**d)
        findings = {i: [Finding(f["kind"], f["label_class"], f["model_class"], f["pixels"], f["confidence"],
                                tuple(f["box"]), arrays[f"region/{i}/{k}"], f["words"], f.get("floor", 16))
                        for k, f in enumerate(fs)] for i, fs in doc["findings"].items()}
        issues = {i: (tuple(g), arrays[f"issue/{i}"]) for i, g in doc["grids"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    by_id = {d["image_id"]: d for d in doc["images"] if d.get("score") is not None}
    table = pd.DataFrame([{"image_id": i, "fold": d["fold"], "score": d["score"], "quality": d["quality"],
                           "issue_pixels": d["issue_pixels"], "reasons": d["reasons"],
                           "mask_version": d.get("mask_version", 0), "n_regions": len(d.get("regions", []))}
                          for i, d in by_id.items()])
    unscored = {d["image_id"]: (d["reasons"] or [""])[0] for d in doc["images"] if d.get("score") is None}
    return LabelScores(doc["folds"], doc["runs"], table, findings, measures, issues, unscored,
                       doc.get("identities", []))
