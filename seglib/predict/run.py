"""Predict a dataset with several models and their ensembles in one pass, cached on disk.

>>> members, problems = open_members(["checkpoints/unet", "checkpoints/segformer"], dataset_layout(ds))
>>> pred = predict(ds, members, [Ensemble("mean", ("unet", "segformer"))], ids=ds.labeled_ids)
>>> pred.columns["mean ensemble"].mask("00012")

Every column (a model or an ensemble) is cached on its own under a key made of the weights'
identities (path, size, mtime of each weights file), the dataset files' fingerprint, the image
ids, TTA and the ensemble's kind and weights. Reopening is a disk read; retraining a run rewrites
its weights, so its columns and every ensemble it joins are computed again, the others are not.
A corrected mask (seglib.review.corrections) changes one image's scores: the entry records the
mask version of each corrected image it scored, and only images whose version changed since are
predicted and scored again.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .. import cache
from ..paths import cache_dir
from ..tiling import InferencePlan, inference_plan, release_freed_memory, reuse_freed_memory
from .column import Column, ColumnBuilder, PixelFile, map_shape, map_stride, save_pixels
from .ensemble import CrossFit, Ensemble, combine, fit_weights, sample_pixels, summarize, take_pixels
from .infer import Batch, batch_pixels, forward_probs, iter_batches, keep_known, per_call
from .members import Layout, Member, dataset_layout
from .prob_cache import PROBS

PREDICT_VERSION = 3   # 2: column keys leave the image set out (rows reused across splits); 3: files' fingerprint
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
                  skipped: list | None = None, labels: bool = True, identities: dict[str, str] | None = None,
                  plans: dict[str, InferencePlan] | None = None, half: bool = False,
                  ) -> Iterator[tuple[Batch, dict[str, torch.Tensor]]]:
    """(batch with masks on ``device``, {model name: probabilities (B, K, H, W)}) for ``ids``.

    Each model sees the images as its plan in ``plans`` says (:func:`member_plans`: windows of
    its training crop, a resize, or whole images; default whole), ``batch_size`` windows at a
    time (on a CPU at most :data:`~seglib.predict.infer.CPU_FORWARD_PIXELS` pixels a call:
    :func:`~seglib.predict.infer.per_call`); probabilities always come at each image's own
    size. Big images come one at a time, as uint8 (made float32 window by window). Masks come
    as uint8, IGNORE_INDEX where unknown. Probabilities are rounded to float16 and, for models
    named in ``identities`` (see :func:`held_identities`), kept in :data:`PROBS` and taken from
    it when a recent pass computed them (no forward pass then). They come as float32, or with
    ``half`` as the float16 they are held in (half the memory of a big image: reduce them a
    band at a time, as :func:`add_batch` does). The pass runs inside
    :func:`seglib.tiling.reuse_freed_memory`."""
    total, done = len(ids), 0
    this_pass = object()     # PROBS keeps what this pass put or read from being pushed out by it
    with reuse_freed_memory():
        for batch in iter_batches(ds, ids, batch_size, layout.in_channels, labels=labels, skipped=skipped,
                                  max_pixels=batch_pixels(device, batch_size), raw=True):
            images = batch.images.to(device, non_blocking=True)
            if batch.masks is not None:
                batch.masks = keep_known(batch.masks, layout.num_classes).to(device, non_blocking=True)
            probs = {}
            for name, model in models.items():
                identity = (identities or {}).get(name)
                held = PROBS.get(identity, tta, batch.ids, this_pass) if identity else None
                if held is None:
                    plan = (plans or {}).get(name) or InferencePlan()
                    window = plan.window(*images.shape[-2:])    # None: whole (or resized) images
                    windows = per_call(device, batch_size, window[0] * window[1]) if window else batch_size
                    held = forward_probs(model, images, tta, plan, windows, out_dtype=torch.float16)
                    if identity:
                        PROBS.put(identity, tta, batch.ids, held, this_pass)
                probs[name] = held.to(device) if half else held.to(device).float()
            del images
            yield batch, probs
            probs = held = None     # not alive while the next batch is predicted
            release_freed_memory()
            done += len(batch.ids)
            if progress is not None:
                progress(done + (len(skipped) if skipped else 0), total)


def member_plans(members: Sequence[Member], tile: int | None = None) -> dict[str, InferencePlan]:
    """How each member sees an image (seglib.tiling.inference_plan of its run's config);
    ``tile`` S > 0 forces windows of S for all, 0 whole images, None each run's own way."""
    return {m.name: inference_plan(m.config, tile) for m in members}


def held_identities(members: Sequence[Member], fingerprint: str, tile: int | None = None) -> dict[str, str]:
    """Keys of the members' held probabilities: their weights, how they see an image (tiled
    or not) and the dataset's content (image ids such as img0 or 00012 repeat across datasets)."""
    plans = member_plans(members, tile)
    return {m.name: f"{m.identity}|{plans[m.name].key()}|{fingerprint}" for m in members}


REDUCE_PIXELS = 1 << 20   # pixels of an image reduced at once: float32 work of a few MB per class


def add_batch(builders: dict[str, ColumnBuilder], ensembles: dict[str, Ensemble], batch: Batch,
              probs: dict[str, torch.Tensor]) -> None:
    """Reduce one batch's probabilities (float32, or float16 from ``probs_batches(half=True)``)
    into every column being built (models and ensembles). Each image is reduced in bands of
    rows (about REDUCE_PIXELS at a time) taken to float32: the labels, confidence and entropy
    are the same as on the whole map at once (they are per pixel), without a float32 copy of
    the map or its full-size temporaries. Confidence and entropy are computed on the columns'
    map grid only (every ``map_stride``-th pixel; bands start on it)."""
    first = next(iter(probs.values()))
    b, _, h, w = first.shape
    s = map_stride(h, w)
    mh, mw = map_shape(h, w)
    # whole images, as many as fit in REDUCE_PIXELS (small ones: the batch at once), else bands of rows
    per = max(1, REDUCE_PIXELS // max(1, h * w))
    rows = h if per > 1 or h * w <= REDUCE_PIXELS else max(s, REDUCE_PIXELS // max(1, w) // s * s)
    bands = [(i, r) for i in range(0, b, per) for r in range(0, h, rows)]
    for name, builder in builders.items():
        ens = ensembles.get(name)
        if len(bands) == 1:
            labels, conf, ent = _reduce(ens, probs, name, batch.ids, (slice(None),), s)
        else:
            labels = torch.empty(b, h, w, dtype=torch.uint8, device=first.device)
            conf = torch.empty(b, mh, mw, device=first.device)
            ent = torch.empty(b, mh, mw, device=first.device)
            for i, r in bands:
                band = (slice(i, i + per), slice(None), slice(r, r + rows))
                got_labels, got_conf, got_ent = _reduce(ens, probs, name, batch.ids[i : i + per], band, s)
                labels[i : i + per, r : r + rows] = got_labels
                conf[i : i + per, r // s : r // s + got_conf.shape[1]] = got_conf
                ent[i : i + per, r // s : r // s + got_ent.shape[1]] = got_ent
        builder.add(batch.ids, labels, conf, ent, batch.masks)


def _reduce(ens: Ensemble | None, probs: dict[str, torch.Tensor], name: str, ids: list[str], band: tuple,
            stride: int = 1):
    """(labels, confidence, entropy) of one band of a batch's probabilities, in float32; the
    maps at every ``stride``-th pixel."""
    if ens is None:
        return summarize(probs[name][band].float(), stride)
    return combine(ens, [probs[m][band].float() for m in ens.members], ids, stride)


def _column_key(base: str, col: Member | Ensemble, by_name: dict[str, Member], plans: dict[str, InferencePlan]) -> str:
    """What a column's predictions of one image depend on (not which images were asked for)."""
    if isinstance(col, Member):
        return digest(base, "model", col.identity, plans[col.name].key())
    return digest(base, "ensemble", col.kind, [round(w, 6) for w in col.member_weights()],
                  [by_name[m].identity for m in col.members], col.crossfit.identity() if col.crossfit else None,
                  [plans[m].key() for m in col.members])


INDEX = "predictions_index"   # per column key: the cache entries (image sets) stored for it
INDEX_SIZE = 8


class _ColumnCache:
    """A column's cached predictions: the entry for exactly these images, or rows of entries
    stored for other image sets (another split, a subset), so that a change of split predicts
    only the images never predicted before."""

    def __init__(self, column_key: str, ids: list[str], use: bool, masks: dict[str, int] | None = None):
        self.column_key, self.use = column_key, use
        self.masks = dict(masks or {})   # image id -> the corrected mask version it is scored against
        self.key = digest(column_key, ids, sorted(self.masks.items()))
        self.exact: Column | None = None
        self.rows: dict[str, Column] = {}        # image id -> a cached column holding it
        if not use:
            return
        self.exact = _load_column(self.key)
        if self.exact is not None:
            return
        wanted = set(ids)
        for key in self._entries():
            if wanted <= self.rows.keys():
                break
            col = _load_column(key)
            if col is not None:
                scored = col.info.get("mask_versions", {})
                self.rows.update((i, col) for i in col.ids if i in wanted and i not in self.rows
                                 and scored.get(i, 0) == self.masks.get(i, 0))

    def _entries(self) -> list[str]:
        index = cache.load(INDEX, self.column_key)
        return list(reversed(index["meta"]["entries"])) if index else []

    def save(self, column: Column) -> None:
        if not self.use:
            return
        column.info["mask_versions"] = {i: n for i, n in self.masks.items() if i in column}
        arrays, meta = column.to_arrays()
        save_pixels(column, _pixels_path(self.key))      # first: an entry is whole only with its pixels
        cache.save(NAMESPACE, self.key, arrays, meta)
        entries = [k for k in reversed(self._entries()) if k != self.key][-(INDEX_SIZE - 1):] + [self.key]
        cache.save(INDEX, self.column_key, {}, {"entries": entries})


def _pixels_path(key: str) -> Path:
    """Where a cached column's pixels lie: beside its npz of small rows (seglib.cache)."""
    return cache_dir() / NAMESPACE / f"{key}.pixels"


def _load_column(key: str) -> Column | None:
    """The cached column of ``key``, its pixels read from their file as needed; None on a miss
    (no entry, or an entry without its whole pixel file: written by an older version, or cut)."""
    hit = cache.load(NAMESPACE, key)
    if hit is None:
        return None
    meta = hit.pop("meta")
    try:
        pixels = PixelFile.open(_pixels_path(key))
    except OSError:
        return None
    try:
        return Column.from_arrays(hit, meta, pixels)
    except (KeyError, ValueError):
        pixels.close()
        return None


def predict(ds, members: Sequence[Member], ensembles: Sequence[Ensemble] = (), ids: Sequence[str] | None = None, *,
            tta: bool = False, device: str | torch.device = "auto", batch_size: int = 16,
            progress: Progress | None = None, use_cache: bool = True, layout: Layout | None = None,
            fingerprint: str | None = None, fit_ids: Sequence[str] | None = None, crossfit: bool = True,
            fit_progress: Progress | None = None, tile: int | None = None) -> Predictions:
    """Columns for every member and ensemble on ``ids`` (default: every usable image of ``ds``).

    Each member predicts every image at its own size as its run trained (see
    :func:`member_plans`: windows of the training crop blended smoothly, a resize, or whole
    images); ``tile`` S > 0 uses windows of S for every member, 0 whole images.

    Weighted ensembles without weights are fitted first on ``fit_ids`` (default: the members'
    shared validation images, see :func:`fit_ensemble`; ``fit_progress`` follows that pass).
    With ``crossfit`` (the default, for scoring) the fitting images are predicted with weights
    fitted on the other half of them, every other image with the weights fitted on all; without
    it (to export or predict new images) every image takes the weights fitted on all. Models are
    loaded and run only when a column is missing from the cache, and then only the models those
    columns need."""
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
                              batch_size=batch_size, layout=layout, fingerprint=fingerprint, use_cache=use_cache,
                              progress=fit_progress, tile=tile)
                 if e.needs_fit else e for e in ensembles]
    if not crossfit:
        ensembles = [replace(e, crossfit=None) for e in ensembles]
    # Predictions depend on the images only; scores on the masks too: keyed by the files, with
    # the corrected masks' versions per image (see the module docstring).
    overlay = getattr(ds, "corrections", None)
    files = fingerprint if overlay is None else ds.files_fingerprint()
    masks = {} if overlay is None else {i: overlay.versions[i] for i in ids if i in overlay.versions}
    base = digest(PREDICT_VERSION, files, bool(tta), layout.num_classes)
    wanted: list[Member | Ensemble] = [*members, *ensembles]
    plans = member_plans(members, tile)
    caches = {c.name: _ColumnCache(_column_key(base, c, by_name, plans), ids, use_cache, masks) for c in wanted}
    columns = {name: cc.exact for name, cc in caches.items() if cc.exact is not None}
    cached = list(columns)
    missing = [c for c in wanted if c.name not in columns]
    skipped: list[tuple[str, str]] = []
    if missing:
        # Only the images some missing column has never predicted are run through the models.
        todo = [i for i in ids if any(i not in caches[c.name].rows for c in missing)]
        ens_map = {e.name: e for e in missing if isinstance(e, Ensemble)}
        need = {c.name for c in missing if isinstance(c, Member)}
        need |= {m for e in ens_map.values() for m in e.members}
        models = {m.name: m.load(device) for m in members if m.name in need} if todo else {}
        builders = {c.name: ColumnBuilder(c.name, layout.num_classes, _info(c, tta, plans)) for c in missing}
        for batch, probs in probs_batches(ds, models, todo, layout, tta, batch_size, device, progress, skipped,
                                          identities=held_identities(members, files, tile), plans=plans, half=True):
            add_batch(builders, ens_map, batch, probs)
            del probs      # before the next batch is read: one image's maps at a time
        for c in missing:
            if set(ids) <= caches[c.name].rows.keys():
                cached.append(c.name)      # every image from entries of other image sets: nothing predicted
            fresh = builders[c.name].build()
            source_of = {**caches[c.name].rows, **dict.fromkeys(fresh.ids, fresh)}
            info = {**_info(c, tta, plans), "skipped": skipped}
            columns[c.name] = fresh if not caches[c.name].rows else Column.gather(
                c.name, [i for i in ids if i in source_of], source_of, info)
            columns[c.name].info["skipped"] = skipped
            caches[c.name].save(columns[c.name])
    else:
        skipped = next(iter(columns.values())).info.get("skipped", []) if columns else []
    ordered = {c.name: columns[c.name] for c in wanted}
    return Predictions(ordered, ids, list(members), list(ensembles), layout, [tuple(s) for s in skipped], cached)


def _info(c: Member | Ensemble, tta: bool, plans: dict[str, InferencePlan]) -> dict:
    if isinstance(c, Member):
        return {"kind": "model", "run": str(c.run_dir), "weights": str(c.weights), "model": c.spec.label, "tta": tta,
                "inference": plans[c.name].to_dict()}
    info = {"kind": c.kind, "members": list(c.members), "weights": list(c.member_weights()), "tta": tta}
    if c.crossfit is not None:
        info["crossfit"] = {"folds": len(c.crossfit.folds), "weights": [list(w) for w in c.crossfit.weights]}
    return info


def fit_ensemble(ds, members: Sequence[Member], ens: Ensemble, ids: Sequence[str] | None = None, *,
                 tta: bool = False, device: str | torch.device = "auto", batch_size: int = 16,
                 layout: Layout | None = None, fingerprint: str | None = None, per_image: int = 2048,
                 max_pixels: int = 500_000, use_cache: bool = True, seed: int = 0, folds: int = 2,
                 progress: Progress | None = None, tile: int | None = None) -> Ensemble:
    """``ens`` with weights fitted on ``ids`` (default: the members' shared validation images):
    the grid point of the weight simplex with the best mIoU on up to ``per_image`` random
    labelled pixels of each image (``max_pixels`` in all). Cached like predictions.

    These weights (fitted on all the images) are the ones to predict with. For honest scores,
    ``folds`` >= 2 also fits weights without each fold of the images (a seeded random split) and
    returns them as ``crossfit``: :func:`predict` scores each fold's images with the weights the
    other folds chose. The same pixels serve both fits: no extra inference.

    Raises ValueError when there is nothing to fit on (no shared validation images)."""
    layout = layout or dataset_layout(ds)
    ids = list(shared_val_ids(members, ds) if ids is None else ids)
    if not ids:
        raise ValueError(f"{ens.name}: the runs share no labeled validation images in {ds.source} to fit "
                         "weights on; give the weights instead")
    per_image = max(16, min(per_image, max_pixels // len(ids)))
    folds = folds if folds >= 2 and len(ids) >= 2 * folds else 0
    fingerprint = fingerprint or ds.fingerprint()
    key = digest(PREDICT_VERSION, "fit", fingerprint, ids, bool(tta), per_image, seed, folds,
                 [m.identity for m in members], [p.key() for p in member_plans(members, tile).values()])
    hit = cache.load("ensemble_weights", key) if use_cache else None
    if hit is None:
        hit = _fit(ds, members, ens, ids, tta, device, batch_size, layout, per_image, seed, folds, progress,
                   fingerprint, tile)
        if use_cache:
            cache.save("ensemble_weights", key, {k: v for k, v in hit.items() if k != "meta"}, hit["meta"])
    crossfit = None
    if "fold_weights" in hit:
        fold_of = np.asarray(hit["fold_of"])
        crossfit = CrossFit(tuple(tuple(i for i, f in zip(ids, fold_of, strict=True) if f == k)
                                  for k in range(len(hit["fold_weights"]))),
                            tuple(tuple(float(w) for w in ws) for ws in hit["fold_weights"]))
    return replace(ens, weights=tuple(float(w) for w in hit["weights"]), fit_info=hit["meta"], crossfit=crossfit)


def _fit(ds, members, ens, ids, tta, device, batch_size, layout, per_image, seed, folds, progress,
         fingerprint: str, tile: int | None = None) -> dict:
    """Sample pixels of ``ids`` from every member, fit on all of them and, with ``folds``, on
    all but each fold. Returns the arrays and meta the cache stores."""
    device = resolve_device(device)
    models = {m.name: m.load(device) for m in members}
    gen = torch.Generator().manual_seed(seed)
    parts: dict[str, list] = {m.name: [] for m in members}
    labels, owner = [], []     # owner: the index in ids of each sampled pixel's image
    row = {image_id: k for k, image_id in enumerate(ids)}
    for batch, probs in probs_batches(ds, models, ids, layout, tta, batch_size, device, progress,
                                      identities=held_identities(members, fingerprint, tile),
                                      plans=member_plans(members, tile), half=True):
        if batch.masks is None:
            continue
        picks = sample_pixels(batch.masks.cpu(), per_image, gen, layout.num_classes)
        labels.append(take_pixels(batch.masks.cpu(), picks))
        owner += [np.full(len(p), row[i], np.int64) for i, p in zip(batch.ids, picks, strict=True)]
        for name, p in probs.items():
            parts[name].append(take_pixels(p.cpu(), picks).astype(np.float32))
    if not labels:
        raise ValueError(f"{ens.name}: none of the {len(ids)} images to fit weights on has a mask")
    y = np.concatenate(labels)
    member_probs = [np.concatenate(parts[m.name]) for m in members]
    weights, score = fit_weights(member_probs, y, layout.scored)
    out = {"weights": np.asarray(weights), "meta": {"miou": score, "n_images": len(ids), "n_pixels": int(len(y)),
                                                    "folds": folds}}
    if folds:
        fold_of = np.random.default_rng(seed).permutation(len(ids)) % folds
        pixel_fold = fold_of[np.concatenate(owner)]
        fold_weights = []
        for k in range(folds):
            train = pixel_fold != k
            fold_weights.append(fit_weights([p[train] for p in member_probs], y[train], layout.scored)[0])
        out["fold_of"], out["fold_weights"] = fold_of, np.asarray(fold_weights)
    return out
