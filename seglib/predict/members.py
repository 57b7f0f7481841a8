"""The models a comparison runs: run folders opened, checked against the dataset, named.

A :class:`Member` is a run folder's weights plus what they need to predict: its config, its model
spec and the identity of its weights file (path, size, mtime), which every cache key carries, so
that retraining a run (new weights, new mtime) invalidates what was cached for it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..cache import LRU
from ..models import ModelSpec
from ..train.config import TrainConfig
from ..train.data import class_layout
from ..train.load import check_fits, load_model, run_spec
from ..train.runs import CheckpointError, RunFolder, list_runs

# Building a model costs seconds (a SegFormer about 1 s on a CPU): checking a run, fitting an
# ensemble and predicting reuse one copy. Only ever used for inference (eval mode, no_grad).
_LOADED: LRU = LRU(6)


@dataclass(frozen=True)
class Layout:
    """What a model must agree with to predict a dataset: classes and channels."""

    num_classes: int
    scored: list[int]            # class ids that metrics count (ignored classes left out)
    background: int | None       # the id miou_no_bg leaves out
    class_names: list[str]       # the name of every id 0..num_classes-1
    map_names: list[str]         # the class map's names, in its order (what a run records)
    in_channels: int


def dataset_layout(ds, sample: int = 16) -> Layout:
    """The layout of ``ds``; channels from up to ``sample`` images spread over it (any RGB image
    makes the dataset RGB, as training decides)."""
    num_classes, scored, background = class_layout(ds.class_map)
    ids = ds.ids
    picks = [ids[i] for i in np.unique(np.linspace(0, len(ids) - 1, min(sample, len(ids))).astype(int))] if ids else []
    channels = 1
    for image_id in picks:
        img, _, _ = ds.load_pair(image_id)
        if img is not None and img.ndim == 3:
            channels = 3
            break
    names = [ds.class_map.name_of(c) for c in range(num_classes)]
    return Layout(num_classes, scored, background, names, [c.name for c in ds.class_map], channels)


def weights_identity(path: Path) -> str:
    """``path|size|mtime_ns`` of a weights file: rewritten weights get a new identity."""
    info = Path(path).stat()
    return f"{Path(path).resolve()}|{info.st_size}|{info.st_mtime_ns}"


@dataclass(frozen=True)
class Member:
    name: str                    # the column name: the run folder's name, made unique
    run_dir: Path
    weights: Path
    identity: str                # weights_identity(weights)
    config: TrainConfig
    spec: ModelSpec

    @property
    def val_ids(self) -> list[str]:
        """The run's own validation split (images it never trained on)."""
        return list(self.config.val_ids or [])

    @property
    def label(self) -> str:
        return f"{self.name} ({self.spec.label})"

    def load(self, device="cpu"):
        """The model in eval mode on ``device`` (CheckpointError with one line if it cannot load).
        Shared: the last few loaded models stay in memory, keyed by weights identity and device."""
        return _LOADED.get_or_compute((self.identity, str(device)),
                                      lambda: load_model(self.run_dir, self.weights.stem, device)[0])


def open_member(run_dir: str | Path, which: str = "best", name: str | None = None) -> Member:
    """A run folder as a Member; CheckpointError with one line when its config or weights are missing."""
    run = RunFolder(run_dir)
    if not run.path.is_dir():
        raise CheckpointError(f"{run.path}: no such run folder")
    spec, cfg = run_spec(run)
    weights = run.weights_path(which)
    if not weights.is_file():
        raise CheckpointError(f"{weights}: no such weights file (the run has not finished an epoch)")
    return Member(name or run.name, run.path, weights, weights_identity(weights), cfg, spec)


def open_members(run_dirs: Sequence[str | Path], layout: Layout, which: str = "best",
                 source: str = "the dataset", load: bool = True) -> tuple[list[Member], list[str]]:
    """(usable members, one line per unusable run). A run is unusable when its folder or weights
    are missing or damaged, or when it predicts other classes or takes other channels than the
    dataset. With ``load``, the weights are read once too, so a truncated file or weights that
    do not fit the architecture are caught here rather than halfway through a comparison."""
    members, problems, taken = [], [], set()
    for run_dir in run_dirs:
        try:
            m = open_member(run_dir, which, _unique(Path(run_dir), taken))
            check_fits(m.config, layout.in_channels, layout.num_classes, layout.map_names, source)
            if load:
                m.load("cpu")
        except CheckpointError as e:
            problems.append(f"{run_dir}: {e}" if str(run_dir) not in str(e) else str(e))
            continue
        taken.add(m.name)
        members.append(m)
    return members, problems


def _unique(path: Path, taken: set[str]) -> str:
    """The folder name; its parent's name joined on when two runs share a folder name."""
    name = path.name or str(path)
    if name in taken:
        name = f"{path.parent.name}/{name}"
    k = 2
    base = name
    while name in taken:
        name, k = f"{base}~{k}", k + 1
    return name


@dataclass(frozen=True)
class RunChoice:
    """A run folder as a picker offers it: its label, and why it cannot predict a dataset (None: it can)."""

    path: str
    name: str
    label: str                   # "NAME · ARCH/ENCODER · mIoU 0.912 · cancelled"
    problem: str | None
    status: str = "done"         # done, running, cancelled, failed, interrupted (as the runs table says)
    miou: float | None = None    # validation mIoU of its best epoch, when it recorded one

    @property
    def finished(self) -> bool:
        """Trained to its end (or stopped early by patience): not cancelled, failed, interrupted or still going."""
        return self.status == "done"


def run_choices(layout: Layout, folder) -> list[RunChoice]:
    """Run folders under the checkpoints ``folder``, newest first, with why each cannot predict
    the dataset of ``layout`` (other classes or channels, no weights yet); reads config, status
    and history files only, no weights."""
    from ..train.summary import summarize

    rows = []
    for run in list_runs(folder):
        try:
            spec, cfg = run_spec(run)
            check_fits(cfg, layout.in_channels, layout.num_classes, layout.map_names, "this dataset")
            if not run.weights_path().is_file():
                raise CheckpointError("no weights yet (no finished epoch)")
            problem = None
        except (CheckpointError, ValueError) as e:
            spec, problem = None, str(e)
        summary = summarize(run)
        history = run.read_history()
        best = next((r.get("miou") for r in history if r.get("epoch") == summary["best_epoch"]), None)
        miou = float(best) if isinstance(best, (int, float)) and np.isfinite(best) else None
        score = f" · mIoU {miou:.3f}" if miou is not None else ""
        state = "" if summary["status"] == "done" else f" · {summary['status']}"
        label = f"{run.name} · {spec.label}{score}{state}" if spec else run.name
        rows.append(RunChoice(str(run.path), run.name, label, problem, summary["status"], miou))
    return rows


def default_runs(choices: Sequence[RunChoice], n: int = 2) -> list[str]:
    """The paths a picker starts with: the ``n`` best finished runs that can predict (best
    validation mIoU first); only when no run finished, the newest usable ones. A cancelled or
    failed run is never picked for the user: its weights are a half-trained snapshot."""
    usable = [c for c in choices if c.problem is None]
    finished = sorted((c for c in usable if c.finished), key=lambda c: -(c.miou if c.miou is not None else -1.0))
    return [c.path for c in (finished or usable)[:n]]
