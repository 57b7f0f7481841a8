"""Predict a dataset with several models and their ensembles in one pass, cached on disk.

>>> members, problems = open_members(["checkpoints/unet", "checkpoints/segformer"], dataset_layout(ds))
>>> pred = predict(ds, members, [Ensemble("mean", ("unet", "segformer"))], ids=ds.labeled_ids)
>>> pred.columns["mean ensemble"].mask("00012")

Every column (a model or an ensemble) is cached on its own under a key made of the weights'
identities (path, size, mtime of each weights file), the dataset fingerprint, the image ids, TTA
and the ensemble's kind and weights. Reopening is a disk read; retraining a run rewrites its
weights, so its columns and every ensemble it joins are computed again, the others are not.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from .. import cache
from .column import Column, ColumnBuilder
from .ensemble import Ensemble, combine, fit_weights, sample_pixels, summarize, take_pixels
from .infer import Batch, forward_probs, iter_batches, keep_known
from .members import Layout, Member, dataset_layout

PREDICT_VERSION = 1
NAMESPACE = "predictions"
Progress = Callable[[int, int], None]


def digest(*parts) -> str:
    h = hashlib.sha1()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()[:24]


@dataclass
class Predictions:
    """The columns of one comparison, by name (models first, then ensembles)."""

    columns: dict[str, Column]
    ids: list[str]                              # the images asked for
    members: list[Member]
    ensembles: list[Ensemble]                   # with their weights (fitted ones filled in)
    layout: Layout
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (id, why) images not read
    cached: list[str] = field(default_factory=list)                # columns read from the disk cache

    @property
    def names(self) -> list[str]:
        return list(self.columns)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    from ..train.distributed import resolve_device as resolve

    return device if isinstance(device, torch.device) else resolve(device)


def shared_val_ids(members: Sequence[Member], ds) -> list[str]:
    """The labeled images of ``ds`` in every member's validation split (none of them trained on
    these), in dataset order."""
    shared = None
    for m in members:
        shared = set(m.val_ids) if shared is None else shared & set(m.val_ids)
    return [i for i in ds.labeled_ids if i in (shared or set())]


def probs_batches(ds, models: dict[str, torch.nn.Module], ids: Sequence[str], layout: Layout, tta: bool,
                  batch_size: int, device: torch.device, progress: Progress | None = None,
                  skipped: list | None = None, labels: bool = True) -> Iterator[tuple[Batch, dict[str, torch.Tensor]]]:
    """(batch with masks on ``device``, {model name: probabilities (B, K, H, W)}) for ``ids``."""
    total, done = len(ids), 0
    for batch in iter_batches(ds, ids, batch_size, layout.in_channels, labels=labels, skipped=skipped):
        images = batch.images.to(device, non_blocking=True)
        if batch.masks is not None:
            batch.masks = keep_known(batch.masks, layout.num_classes).to(device, non_blocking=True)
        probs = {name: forward_probs(model, images, tta) for name, model in models.items()}
        yield batch, probs
        done += len(batch.ids)
        if progress is not None:
            progress(done + (len(skipped) if skipped else 0), total)


def add_batch(builders: dict[str, ColumnBuilder], ensembles: dict[str, Ensemble], batch: Batch,
              probs: dict[str, torch.Tensor]) -> None:
    """Reduce one batch's probabilities into every column being built (models and ensembles)."""
    for name, builder in builders.items():
        ens = ensembles.get(name)
        if ens is None:
            labels, conf, ent = summarize(probs[name])
        else:
            labels, conf, ent = combine(ens, [probs[m] for m in ens.members])
        builder.add(batch.ids, labels, conf, ent, batch.masks)


def _column_key(base: str, col: Member | Ensemble, by_name: dict[str, Member]) -> str:
    if isinstance(col, Member):
        return digest(base, "model", col.identity)
    return digest(base, "ensemble", col.kind, [round(w, 6) for w in col.member_weights()],
                  [by_name[m].identity for m in col.members])


def predict(ds, members: Sequence[Member], ensembles: Sequence[Ensemble] = (), ids: Sequence[str] | None = None, *,
            tta: bool = False, device: str | torch.device = "auto", batch_size: int = 16,
            progress: Progress | None = None, use_cache: bool = True, layout: Layout | None = None,
            fingerprint: str | None = None, fit_ids: Sequence[str] | None = None) -> Predictions:
    """Columns for every member and ensemble on ``ids`` (default: every usable image of ``ds``).

    Weighted ensembles without weights are fitted first on ``fit_ids`` (default: the members'
    shared validation images, see :func:`fit_ensemble`). Models are loaded and run only when a
    column is missing from the cache, and then only the models those columns need."""
    layout = layout or dataset_layout(ds)
    fingerprint = fingerprint or ds.fingerprint()
    ids = list(ds.ids if ids is None else ids)
    device = resolve_device(device)
    by_name = {m.name: m for m in members}
    for ens in ensembles:
        unknown = [m for m in ens.members if m not in by_name]
        if unknown:
            raise ValueError(f"{ens.name}: no model named {unknown[0]!r} among {list(by_name)}")
    ensembles = [fit_ensemble(ds, [by_name[m] for m in e.members], e, fit_ids, tta=tta, device=device,
                              batch_size=batch_size, layout=layout, fingerprint=fingerprint, use_cache=use_cache)
                 if e.needs_fit else e for e in ensembles]
    base = digest(PREDICT_VERSION, fingerprint, ids, bool(tta), layout.num_classes)
    wanted: list[Member | Ensemble] = [*members, *ensembles]
    keys = {c.name: _column_key(base, c, by_name) for c in wanted}
    columns: dict[str, Column] = {}
    cached = []
    for c in wanted:
        hit = cache.load(NAMESPACE, keys[c.name]) if use_cache else None
        if hit is not None:
            meta = hit.pop("meta")
            columns[c.name] = Column.from_arrays(hit, meta)
            cached.append(c.name)
    missing = [c for c in wanted if c.name not in columns]
    skipped: list[tuple[str, str]] = []
    if missing:
        ens_map = {e.name: e for e in missing if isinstance(e, Ensemble)}
        need = {c.name for c in missing if isinstance(c, Member)}
        need |= {m for e in ens_map.values() for m in e.members}
        models = {m.name: m.load(device) for m in members if m.name in need}
        builders = {c.name: ColumnBuilder(c.name, layout.num_classes, _info(c, tta)) for c in missing}
        for batch, probs in probs_batches(ds, models, ids, layout, tta, batch_size, device, progress, skipped):
            add_batch(builders, ens_map, batch, probs)
        for name, builder in builders.items():
            columns[name] = builder.build()
            columns[name].info["skipped"] = skipped
            if use_cache:
                arrays, meta = columns[name].to_arrays()
                cache.save(NAMESPACE, keys[name], arrays, meta)
    else:
        skipped = next(iter(columns.values())).info.get("skipped", []) if columns else []
    ordered = {c.name: columns[c.name] for c in wanted}
    return Predictions(ordered, ids, list(members), list(ensembles), layout, [tuple(s) for s in skipped], cached)


def _info(c: Member | Ensemble, tta: bool) -> dict:
    if isinstance(c, Member):
        return {"kind": "model", "run": str(c.run_dir), "weights": str(c.weights), "model": c.spec.label, "tta": tta}
    return {"kind": c.kind, "members": list(c.members), "weights": list(c.member_weights()), "tta": tta}


def fit_ensemble(ds, members: Sequence[Member], ens: Ensemble, ids: Sequence[str] | None = None, *,
                 tta: bool = False, device: str | torch.device = "auto", batch_size: int = 16,
                 layout: Layout | None = None, fingerprint: str | None = None, per_image: int = 2048,
                 max_pixels: int = 500_000, use_cache: bool = True, seed: int = 0) -> Ensemble:
    """``ens`` with weights fitted on ``ids`` (default: the members' shared validation images):
    the grid point of the weight simplex with the best mIoU on up to ``per_image`` random
    labelled pixels of each image (``max_pixels`` in all). Cached like predictions.

    Raises ValueError when there is nothing to fit on (no shared validation images)."""
    layout = layout or dataset_layout(ds)
    ids = list(shared_val_ids(members, ds) if ids is None else ids)
    if not ids:
        raise ValueError(f"{ens.name}: the runs share no labeled validation images in {ds.source} to fit "
                         "weights on; give the weights instead")
    per_image = max(16, min(per_image, max_pixels // len(ids)))
    key = digest(PREDICT_VERSION, "fit", fingerprint or ds.fingerprint(), ids, bool(tta), per_image, seed,
                 [m.identity for m in members])
    hit = cache.load("ensemble_weights", key) if use_cache else None
    if hit is None:
        device = resolve_device(device)
        models = {m.name: m.load(device) for m in members}
        gen = torch.Generator().manual_seed(seed)
        parts: dict[str, list] = {m.name: [] for m in members}
        labels = []
        for batch, probs in probs_batches(ds, models, ids, layout, tta, batch_size, device):
            if batch.masks is None:
                continue
            picks = sample_pixels(batch.masks.cpu(), per_image, gen, layout.num_classes)
            labels.append(take_pixels(batch.masks.cpu(), picks))
            for name, p in probs.items():
                parts[name].append(take_pixels(p.cpu(), picks))
        if not labels:
            raise ValueError(f"{ens.name}: none of the {len(ids)} images to fit weights on has a mask")
        y = np.concatenate(labels)
        weights, score = fit_weights([np.concatenate(parts[m.name]) for m in members], y, layout.scored)
        hit = {"weights": np.asarray(weights), "meta": {"miou": score, "n_images": len(ids), "n_pixels": int(len(y))}}
        if use_cache:
            cache.save("ensemble_weights", key, {"weights": hit["weights"]}, hit["meta"])
    return replace(ens, weights=tuple(float(w) for w in hit["weights"]), fit_info=hit["meta"])
