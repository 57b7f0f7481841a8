"""Train (or reuse) the K fold runs of out-of-fold label quality, one after the other or one per device.

    OUT/
      quality.json          what was asked: K, the base TrainConfig, the fold of every image
      fold-1-of-K/ ...      ordinary run folders (checkpoints/README.md), each validating on its fold
      label_scores.json     every labeled image's score (seglib.quality.score), with label_scores.npz

A fold already trained with the same options and images is reused, an unfinished one resumed,
one trained otherwise moved aside (``fold-2-of-5.replaced-TIME``) and trained again: calling
this twice trains nothing the second time, and a cancel loses no finished epoch.
"""
from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from ..atomic import atomic_write
from ..train.config import ConfigError, TrainConfig
from ..train.data import class_layout, usable_images
from ..train.split import SharedPixels, split_groups
from .folds import FoldPlan, assign_folds, fold_config, fold_dir, make_room, plan_fold

MANIFEST = "quality.json"
DEFAULT_FOLDS = 5


def default_out(source: str | Path, root: str | Path | None = None) -> Path:
    """Where the app keeps a dataset's folds and scores: ``checkpoints/quality/NAME-HASH`` (the
    dataset's name and a hash of its resolved path: two datasets named alike stay apart)."""
    import hashlib

    from ..train.runs import checkpoints_dir

    resolved = str(Path(source).expanduser().resolve())
    name = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in Path(resolved).stem)[:60] or "dataset"
    return Path(root or checkpoints_dir()) / "quality" / f"{name}-{hashlib.sha1(resolved.encode()).hexdigest()[:8]}"


def plan_folds(base: TrainConfig, out: str | Path, k: int = DEFAULT_FOLDS, log=print) -> list[FoldPlan]:
    """What each fold will do (reuse / resume / train, and why), without training anything.
    Folds follow ``base.split_by``: by folder or by overlap, whole groups go to one fold.
    ConfigError (one line) when the dataset cannot be cross-validated: fewer usable labeled
    images (or groups) than folds, or nothing to learn."""
    ds, stats, _, usable, counts = usable_images(base, log)
    _, scored, _ = class_layout(stats.class_map)
    presence = counts[:, scored] > 0
    try:
        groups = split_groups(base.split_by, usable, SharedPixels(ds, stats, log).groups)
    except ValueError as e:
        raise ConfigError(f"{base.data}: folds by {base.split_by}: {e}") from None
    folds = assign_folds(usable, presence, k, base.seed, groups)
    for j, c in enumerate(scored):
        holders = [usable[i] for i in (presence[:, j]).nonzero()[0]]
        if len(holders) == 1:
            log(f"warning: {stats.class_map.name_of(c)} is in one image only ({holders[0]}): the model that scores "
                f"it never saw that class, so its {stats.class_map.name_of(c)} pixels will look mislabeled")
    return [plan_fold(fold_dir(out, f, k), fold_config(base, folds, f), f) for f in range(k)]


def write_manifest(out: str | Path, base: TrainConfig, plans: Sequence[FoldPlan]) -> None:
    doc = {"folds": len(plans), "config": {**base.to_dict(), "resolved": {}},
           "fold_of": {i: p.fold for p in plans for i in p.config.val_ids or []}}

    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1)

    Path(out).mkdir(parents=True, exist_ok=True)
    atomic_write(Path(out) / MANIFEST, write)


def read_manifest(out: str | Path) -> dict | None:
    try:
        return json.loads((Path(out) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def cross_validate(base: TrainConfig, out: str | Path, k: int = DEFAULT_FOLDS, *, callbacks=(),
                   log: Callable[[str], None] = print, should_stop: Callable[[], bool] | None = None,
                   on_fold: Callable[[FoldPlan], None] | None = None,
                   devices: Sequence[str] | None = None) -> list[dict]:
    """Train what :func:`plan_folds` says. Returns one dict per fold: fold, run, action, why,
    status ("done", or "cancelled"/"failed" for a fold that stopped: no later fold is started;
    one after the other, the list ends there). ``callbacks`` go to each fold's ``train``;
    ``on_fold`` is told when a fold starts (the job manager's progress across folds). With
    several ``devices`` (``["cuda:0", "cuda:1"]``) folds train side by side, one per device,
    each taking the next free one; otherwise one after the other on ``base.device``."""
    plans = plan_folds(base, out, k, log)
    write_manifest(out, base, plans)
    devices = list(devices or [])
    stopped = threading.Event()

    def stop() -> bool:
        return stopped.is_set() or (should_stop is not None and should_stop())

    def run_fold(plan: FoldPlan, device: str | None) -> dict:
        if stop():
            return _row(plan, "cancelled")
        if on_fold is not None:
            on_fold(plan)
        if plan.action == "reuse":
            log(f"fold {plan.fold + 1}/{k}: reused ({plan.why})")
            return _row(plan, "done")
        aside = make_room(plan)
        if aside is not None:
            log(f"fold {plan.fold + 1}/{k}: the run there was {plan.why}; moved to {aside.name}")
        cfg = plan.config if device is None else replace(plan.config, device=device)
        log(f"fold {plan.fold + 1}/{k}: {'resuming' if plan.action == 'resume' else 'training'} "
            f"on {len(cfg.train_ids or [])} images, holding out {len(cfg.val_ids or [])}"
            + (f" ({device})" if device else ""))
        from ..train.engine import train

        status = train(cfg, plan.run_dir, callbacks, resume=plan.action == "resume")["status"]
        if status != "done":
            stopped.set()
        return _row(plan, status)

    if len(devices) <= 1:
        results = []
        for plan in plans:
            results.append(run_fold(plan, devices[0] if devices else None))
            if results[-1]["status"] != "done":
                break
        return results
    free: queue.Queue[str] = queue.Queue()
    for d in devices:
        free.put(d)

    def on_a_free_device(plan: FoldPlan) -> dict:
        device = free.get()
        try:
            return run_fold(plan, device)
        finally:
            free.put(device)

    with ThreadPoolExecutor(max_workers=len(devices), thread_name_prefix="fold") as pool:
        return list(pool.map(on_a_free_device, plans))   # every fold: those not started say "cancelled"


def _row(plan: FoldPlan, status: str) -> dict:
    return {"fold": plan.fold, "run": str(plan.run_dir), "action": plan.action, "why": plan.why, "status": status}


def fold_statuses(out: str | Path) -> list[str]:
    """The status of each fold run under ``out`` as its manifest lists them ("done", "running",
    "cancelled", "interrupted", ... or "not started"); [] when nothing was asked there. Reads
    small files only (the page shows it on every rerun)."""
    from ..train.runs import RunFolder

    manifest = read_manifest(out)
    if not manifest:
        return []
    k = int(manifest.get("folds") or 0)
    out_statuses = []
    for f in range(k):
        run = RunFolder(fold_dir(out, f, k))
        out_statuses.append((run.read_status() or {}).get("status", "not started") if run.exists() else "not started")
    return out_statuses
