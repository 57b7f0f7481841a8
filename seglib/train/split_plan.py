"""The split a training would draw, drawn without training: what the Train page checks for leaks
before Start. It takes the same images (labeled, less those the review store excludes when the
config says so), the same strata and the same seed as :func:`seglib.train.data.prepare_data`, so
the split it shows is the split that trains (a test holds the two equal).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from .config import TrainConfig
from .data import class_layout
from .split import SplitLeak, split_groups, split_ids, split_leaks


def planned_split(cfg: TrainConfig, ds, stats, shared: Mapping[str, str],
                  excluded: Iterable[str] = ()) -> tuple[list[str], list[str]]:
    """(train_ids, val_ids) that ``cfg`` would draw on ``ds`` (its statistics ``stats``), given
    the groups of images that share pixels (``shared``, for a split by overlap) and the ids the
    review store excludes. Raises ValueError when the split cannot be drawn (one group only)."""
    labeled = ds.labeled_ids
    left_out = set(excluded) if cfg.leave_out_excluded else set()
    usable = [i for i in labeled if i not in left_out]
    if len(usable) < 2:
        raise ValueError(f"{len(usable)} usable labeled images; a split needs at least 2")
    num_classes, scored, _ = class_layout(stats.class_map)
    row = {i: k for k, i in enumerate(stats.ids)}
    counts = stats.counts[[row[i] for i in usable]][:, :num_classes]
    groups = split_groups(cfg.split_by, usable, lambda: shared)
    return split_ids(usable, counts[:, scored] > 0, cfg.val_fraction, cfg.seed, groups)


def planned_leak(cfg: TrainConfig, ds, stats, shared: Mapping[str, str], excluded: Iterable[str] = ()) -> SplitLeak:
    """How the split ``cfg`` would draw cuts the groups of images that share pixels."""
    return split_leaks(shared, *planned_split(cfg, ds, stats, shared, excluded))
