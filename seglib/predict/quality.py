"""Label quality from out-of-sample predictions: cleanlab on a run's own validation images.

A model that never saw an image and still disagrees with its label, confidently, over a region,
points at a label worth a second look. cleanlab ranks the images (``get_label_quality_scores``,
through :func:`seglib.outliers.label_quality_from_predictions`) and finds the suspicious pixels
(``cleanlab.segmentation.filter.find_label_issues``, confident learning).

>>> lq = label_quality(ds, member)        # the run's validation images, cached
>>> lq.table.head()                       # image_id, detector, reason, score, quality, issue_share, suggested
>>> lq.issues("00012")                    # bool (H, W): the pixels whose label looks wrong
>>> flag_detections(store, dataset_key(ds), lq.table[lq.table.suggested])   # into the review queue
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .. import cache
from ..outliers.base import robust_z
from ..outliers.label_quality import Z_LOW, label_quality_from_predictions
from .members import Layout, Member, dataset_layout
from .run import PREDICT_VERSION, digest, held_identities, member_plans, probs_batches, resolve_device

# cleanlab gets every image of one size at once: probabilities of images larger than this on
# their longer side are averaged down by a whole factor first (labels taken at the same grid),
# so its memory is a few MB an image whatever the photos' size. Ranking and the issue map are
# about regions, not single pixels; the map is scaled back up to the image.
CLEANLAB_SIDE = 256


@dataclass
class LabelQuality:
    table: pd.DataFrame        # one row per image, most suspicious first (flag-table columns + extras)
    shapes: dict[str, tuple[int, int]]   # the images' sizes
    packed: dict[str, np.ndarray]   # id -> np.packbits of the issue mask (at ``grids[id]``)
    member: str
    grids: dict[str, tuple[int, int]] = field(default_factory=dict)   # size cleanlab saw; default: shapes

    def issues(self, image_id: str) -> np.ndarray:
        """bool (H, W): pixels cleanlab finds mislabeled."""
        h, w = self.grids.get(image_id, self.shapes[image_id])
        small = np.unpackbits(self.packed[image_id], count=h * w).astype(bool).reshape(h, w)
        full_h, full_w = self.shapes[image_id]
        if (h, w) == (full_h, full_w):
            return small
        f = -(-max(full_h, full_w) // max(h, w))   # the factor it was reduced by
        return np.repeat(np.repeat(small, f, 0), f, 1)[:full_h, :full_w]


POOL_PIXELS = 1 << 20    # pixels of an image averaged at once (float32 work of a few MB a class)


def reduce_for_cleanlab(probs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, K, H, W) probabilities (float16 or float32) averaged over f x f blocks, in float32,
    and (B, H, W) labels taken at each block's corner, f the smallest whole factor that brings
    the longer side to CLEANLAB_SIDE. Averaged in bands of whole blocks of rows: no float32
    copy of a big photo's map. Labels of unknown pixels (>= K) become the predicted class
    there (never an issue)."""
    h, w = labels.shape[-2:]
    k = probs.shape[1]
    f = -(-max(h, w) // CLEANLAB_SIDE)
    if f <= 1:
        probs = probs.float()
        return probs, torch.where(labels < k, labels.long(), probs.max(1)[1])
    corner = labels[:, ::f, ::f].long()
    labels = torch.where(corner < k, corner, probs[:, :, ::f, ::f].float().max(1)[1])
    rows = max(f, POOL_PIXELS // max(1, w) // f * f)
    pooled = torch.cat([F.avg_pool2d(probs[:, :, r : r + rows].float(), f, f, ceil_mode=True)
                        for r in range(0, h, rows)], 2)
    return pooled, labels


def label_quality(ds, member: Member, ids: Sequence[str] | None = None, *, tta: bool = False,
                  device: str | torch.device = "auto", batch_size: int = 16, layout: Layout | None = None,
                  fingerprint: str | None = None, use_cache: bool = True, progress=None,
                  tile: int | None = None) -> LabelQuality:
    """Rank ``ids`` (default: the run's own validation images, those it never trained on) by
    label quality. Images of different sizes are ranked per size (cleanlab needs one array).
    Probabilities are the run's at each image's own size, tiled as it trained (``tile``: see
    :func:`seglib.predict.run.member_plans`).

    Table columns: image_id, detector ("label_quality"), reason, score (1 - quality), group,
    quality, issue_share (share of the image's pixels cleanlab finds mislabeled), suggested
    (:func:`suggest`: worth sending to the review queue).

    Raises ValueError when there is no labeled image to rank."""
    layout = layout or dataset_layout(ds)
    labeled = set(ds.labeled_ids)
    ids = [i for i in (member.val_ids if ids is None else ids) if i in labeled]
    if not ids:
        raise ValueError(f"{member.name}: none of its validation images is a labeled image of {ds.source}")
    fingerprint = fingerprint or ds.fingerprint()
    plans = member_plans([member], tile)
    key = digest(PREDICT_VERSION, "label_quality", 2, fingerprint, ids, bool(tta), member.identity,
                 plans[member.name].key())
    hit = cache.load("label_quality", key) if use_cache else None
    if hit is not None:
        return _from_cache(hit, member.name)
    device = resolve_device(device)
    model = member.load(device)
    groups: dict[tuple[int, int], dict[str, list]] = {}
    files = fingerprint if getattr(ds, "corrections", None) is None else ds.files_fingerprint()
    for batch, probs in probs_batches(ds, {member.name: model}, ids, layout, tta, batch_size, device, progress,
                                      identities=held_identities([member], files, tile), plans=plans, half=True):
        if batch.masks is None:
            continue
        g = groups.setdefault(tuple(batch.masks.shape[1:]), {"ids": [], "labels": [], "probs": []})
        p, y = reduce_for_cleanlab(probs.pop(member.name).cpu(), batch.masks.cpu())
        g["ids"] += batch.ids
        g["labels"].append(y.numpy())
        g["probs"].append(p.float().numpy())
    tables, shapes, grids, packed = [], {}, {}, {}
    for (h, w), g in groups.items():
        labels, probs = np.concatenate(g["labels"]), np.concatenate(g["probs"])
        tables.append(_rank(labels, probs, g["ids"]))
        for i, m in zip(g["ids"], _issues(labels, probs), strict=True):
            shapes[i], grids[i], packed[i] = (h, w), m.shape, np.packbits(m.reshape(-1))
    table = pd.concat(tables).sort_values("score", ascending=False, kind="mergesort").reset_index(drop=True)
    share = {i: float(np.unpackbits(packed[i], count=h * w).mean()) for i, (h, w) in grids.items()}
    table["issue_share"] = table["image_id"].map(share)
    table["suggested"] = suggest(table["quality"].to_numpy())
    result = LabelQuality(table, shapes, packed, member.name, grids)
    if use_cache:
        _save(key, result)
    return result


def _rank(labels: np.ndarray, probs: np.ndarray, ids: list[str]) -> pd.DataFrame:
    # threshold 0 keeps every image: the page lists them all, most suspicious first.
    table = label_quality_from_predictions(labels, probs, ids, threshold=0.0)
    table["quality"] = 1.0 - table["score"]
    return table


def suggest(quality: np.ndarray) -> np.ndarray:
    """bool: quality ``Z_LOW`` robust SDs or more under the median, on a log scale.

    cleanlab's softmin quality is small for almost every image of a well-fitted set (it looks at
    each image's worst pixels), so a fixed cut such as 0.5 flags them all; the bad labels stand
    apart by orders of magnitude instead. On the demo's validation split (260 images, runs of
    bench/bench_predict.py) this picks the 6 corrupted labels and the blank image, nothing else.
    Fewer than 10 images: no baseline, no suggestion."""
    if len(quality) < 10:
        return np.zeros(len(quality), bool)
    return robust_z(np.log(np.clip(quality, 1e-12, None))) <= -Z_LOW


def _issues(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    from cleanlab.segmentation.filter import find_label_issues

    # n_jobs=1: no worker processes inside the app's server; verbose off: no prints.
    return find_label_issues(labels.astype(np.int64), probs, n_jobs=1, verbose=False)


def _save(key: str, lq: LabelQuality) -> None:
    ids = list(lq.shapes)
    arrays = {"shapes": np.array([lq.shapes[i] for i in ids], np.int32).reshape(-1, 2),
              "grids": np.array([lq.grids.get(i, lq.shapes[i]) for i in ids], np.int32).reshape(-1, 2),
              "sizes": np.array([len(lq.packed[i]) for i in ids], np.int64),
              "packed": np.concatenate([lq.packed[i] for i in ids]) if ids else np.zeros(0, np.uint8)}
    cache.save("label_quality", key, arrays, {"ids": ids, "member": lq.member,
                                               "table": lq.table.to_dict(orient="list")})


def _from_cache(hit: dict, name: str) -> LabelQuality:
    meta = hit["meta"]
    ids = meta["ids"]
    ends = np.cumsum(hit["sizes"])
    starts = ends - hit["sizes"]
    packed = {i: hit["packed"][s:e] for i, s, e in zip(ids, starts, ends, strict=True)}
    shapes = {i: tuple(int(v) for v in s) for i, s in zip(ids, hit["shapes"], strict=True)}
    grids = {i: tuple(int(v) for v in s) for i, s in zip(ids, hit.get("grids", hit["shapes"]), strict=True)}
    table = pd.DataFrame(meta["table"])
    table["suggested"] = table["suggested"].astype(bool)
    return LabelQuality(table, shapes, packed, meta.get("member", name), grids)
