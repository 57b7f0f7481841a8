"""K folds for out-of-fold label quality: which images each fold model trains on, and whether a
fold already trained (same configuration) can be reused.

Every usable labeled image (labeled, readable, not excluded in the review store, as training
decides) is in exactly one fold. Fold k's run trains on the other folds and validates on fold k,
so fold k's images are predicted by a model that never saw them. Folds are stratified by the
rarest class each image holds, seeded, like the training split.
"""
from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..train.config import ConfigError, TrainConfig
from ..train.runs import RunFolder
from ..train.split import rarest_class_strata


def assign_folds(ids: Sequence[str], presence: np.ndarray, k: int, seed: int = 0,
                 groups: Sequence[str] | None = None) -> dict[str, int]:
    """{image id: fold 0..k-1}. Within each stratum (the rarest class an image holds) images are
    shuffled and dealt round-robin, the deal starting where the previous stratum's stopped, so
    fold sizes differ by at most one and a class in at least k images is in every fold.

    With ``groups`` (one name per image: the training split's ``--split-by folder|overlap``)
    whole groups are dealt instead, each to the fold with the fewest images so far: images that
    share pixels are never scored by a model that trained on their copies."""
    ids = list(ids)
    if k < 2:
        raise ConfigError(f"folds = {k}: need at least 2")
    if len(ids) < k:
        raise ConfigError(f"{len(ids)} usable labeled image{'' if len(ids) == 1 else 's'} for {k} folds: "
                          f"each fold needs at least one image (use --folds {max(2, len(ids))} or fewer)"
                          if len(ids) >= 2 else f"{len(ids)} usable labeled image: cross-validation needs at least 2")
    if groups is not None:
        return _assign_groups(ids, np.asarray(presence, bool), k, seed, [str(g) for g in groups])
    stratum = rarest_class_strata(presence)
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(ids), np.int64)
    start = 0
    for s in np.unique(stratum):
        members = np.flatnonzero(stratum == s)
        rng.shuffle(members)
        fold[members] = (start + np.arange(len(members))) % k
        start = (start + len(members)) % k
    return {i: int(f) for i, f in zip(ids, fold, strict=True)}


def _assign_groups(ids: list[str], presence: np.ndarray, k: int, seed: int, groups: list[str]) -> dict[str, int]:
    names, group_of = np.unique(np.array(groups, dtype=object), return_inverse=True)
    if len(names) < k:
        raise ConfigError(f"{len(names)} group{'' if len(names) == 1 else 's'} of images for {k} folds: a fold "
                          f"takes whole groups (use --folds {max(2, len(names))} or fewer, or --split-by image)"
                          if len(names) >= 2 else f"all {len(ids)} images are in one group ({names[0]!r}): "
                          "folds by group need at least 2")
    g_presence = np.zeros((len(names), presence.shape[1]), bool)
    np.logical_or.at(g_presence, group_of, presence)
    size = np.bincount(group_of, minlength=len(names))
    stratum = rarest_class_strata(g_presence)
    rng = np.random.default_rng(seed)
    load = np.zeros(k, np.int64)
    fold_of_group = np.zeros(len(names), np.int64)
    turn = 0
    for s in np.unique(stratum):
        members = np.flatnonzero(stratum == s)
        rng.shuffle(members)
        for g in members[np.argsort(-size[members], kind="stable")]:   # big groups first: sizes even out
            order = (turn + np.arange(k)) % k       # ties go round-robin, so each stratum spreads
            f = int(order[np.argmin(load[order])])
            fold_of_group[g], turn = f, f + 1
            load[f] += size[g]
    empty = np.flatnonzero(load == 0)
    if len(empty):
        raise ConfigError(f"the groups of images leave fold {int(empty[0]) + 1} of {k} empty: use fewer folds")
    return {i: int(fold_of_group[g]) for i, g in zip(ids, group_of, strict=True)}


def fold_dir(out: str | Path, fold: int, k: int) -> Path:
    return Path(out) / f"fold-{fold + 1}-of-{k}"


def fold_config(base: TrainConfig, folds: dict[str, int], fold: int) -> TrainConfig:
    """``base`` training on every fold but ``fold`` and validating on ``fold``."""
    train_ids = [i for i, f in folds.items() if f != fold]
    val_ids = [i for i, f in folds.items() if f == fold]
    return replace(base, train_ids=train_ids, val_ids=val_ids, resolved={})


# What makes two fold runs the same training: every field a user sets, and the split.
def _same_training(a: TrainConfig, b: TrainConfig) -> bool:
    da, db = a.to_dict(), b.to_dict()
    for d in (da, db):
        d.pop("resolved", None)
        d.pop("device", None)     # the same fold trained on a GPU or a CPU is the same model
        d.pop("workers", None)
        d["data"] = str(Path(d["data"]).expanduser().resolve()) if d["data"] else ""
    return da == db


@dataclass(frozen=True)
class FoldPlan:
    fold: int
    run_dir: Path
    config: TrainConfig
    action: str          # "reuse" (finished, same config) | "resume" (unfinished, same) | "train" (new or replaced)
    why: str


def plan_fold(run_dir: Path, cfg: TrainConfig, fold: int) -> FoldPlan:
    """What to do with fold ``fold``'s folder: reuse a finished run of the same configuration,
    resume an unfinished one, or train (nothing there, or another configuration: that one is
    moved aside by :func:`make_room`, never deleted)."""
    run = RunFolder(run_dir)
    if not (run.path / "config.json").is_file():
        return FoldPlan(fold, run.path, cfg, "train", "not trained yet")
    try:
        old = TrainConfig.from_dict({k: v for k, v in run.read_config().items()})
    except (ConfigError, ValueError, TypeError, OSError) as e:
        return FoldPlan(fold, run.path, cfg, "train", f"its config.json cannot be read ({e})")
    if not _same_training(old, cfg):
        return FoldPlan(fold, run.path, cfg, "train", "trained with other options or images")
    status = (run.read_status() or {}).get("status", "interrupted")
    has_weights = run.weights_path("last").is_file()
    if status == "done" and run.weights_path("best").is_file():
        return FoldPlan(fold, run.path, cfg, "reuse", "finished with the same options")
    if has_weights:
        return FoldPlan(fold, run.path, cfg, "resume", f"{status} with the same options")
    return FoldPlan(fold, run.path, cfg, "train", f"{status} before its first epoch")


def make_room(plan: FoldPlan) -> Path | None:
    """Move an existing folder that ``plan`` is to replace to ``NAME.replaced-TIMESTAMP``;
    returns where it went (None when there was nothing)."""
    if plan.action != "train" or not plan.run_dir.exists():
        return None
    aside = plan.run_dir.with_name(f"{plan.run_dir.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
    shutil.move(str(plan.run_dir), str(aside))
    return aside
