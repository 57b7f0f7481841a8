"""A learned map of a dataset: each image embedded by a trained run's encoder, projected to 2-D.

The Review page's map places images by a PCA of tiny thumbnails and class fractions, which
separates images that look odd but only weakly those whose content is odd (the Mars "alien"
images). An encoder trained on the dataset's own labels sees content: images it embeds far from
the rest are worth a look.

>>> proj = embedding_projection(ds, member)      # DataFrame, index image_id, columns pc1, pc2
>>> tables.map_table(per_image, proj, states, detections)   # drop-in for the thumbnail projection
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .. import cache
from ..models import padded_size
from ..tiling import InferencePlan, inference_plan, resize_longest, window_starts
from .infer import iter_batches
from .members import Member, dataset_layout
from .run import PREDICT_VERSION, digest, resolve_device


@torch.no_grad()
def encoder_embeddings(ds, member: Member, ids: Sequence[str] | None = None, *, device="auto", batch_size: int = 32,
                       progress=None, tile: int | None = None) -> tuple[list[str], np.ndarray]:
    """(ids read, float32 (N, D)): the mean and the max over space of the encoder's two deepest
    feature maps, each block L2-normalised (deep = what the image holds; mean and max = how much
    of it and whether it is there at all).

    The encoder sees each image as the run trained (seglib.tiling.inference_plan; ``tile``
    overrides): a run trained on crops encodes windows of its crop side and the image's
    features are the mean of the windows' means and the max of their maxes, which is what
    pooling the whole image's feature maps gives, at the scale the encoder learned and with
    memory bounded by ``batch_size`` windows (a shrunken photo would show it objects at a
    scale it never saw). A resize run encodes the resized image."""
    layout = dataset_layout(ds)
    device = resolve_device(device)
    model = member.load(device)
    plan = inference_plan(member.config, tile)
    ids = list(ds.ids if ids is None else ids)
    out_ids, rows, done = [], [], 0
    for batch in iter_batches(ds, ids, batch_size, layout.in_channels, labels=False):
        x = batch.images.to(device)
        rows.append(torch.cat(_image_blocks(model, x, plan, member.spec.arch, batch_size), 1).cpu().numpy())
        out_ids += batch.ids
        done += len(batch.ids)
        if progress is not None:
            progress(done, len(ids))
    return out_ids, (np.concatenate(rows) if rows else np.zeros((0, 0), np.float32))


def _pooled(model, x: torch.Tensor, arch: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(mean, max) over space of the two deepest feature maps of ``x`` (N, C, h, w): (N, D) each."""
    x = model.normalize(x)  # as SegmentationModel: the pretrained encoder's mean/std, when it has them
    h, w = x.shape[-2:]
    ph, pw = padded_size(arch, h, w)
    if (ph, pw) != (h, w):  # as SegmentationModel pads: encoders want multiples of 32
        x = F.pad(x, (0, pw - w, 0, ph - h), mode="reflect" if ph - h < h and pw - w < w else "replicate")
    feats = [f for f in model.net.encoder(x) if f.ndim == 4 and f.shape[1] > 0][-2:]
    return [(f.float().mean((2, 3)), f.float().amax((2, 3))) for f in feats]


def _image_blocks(model, images: torch.Tensor, plan: InferencePlan, arch: str, window_batch: int) -> list:
    """The L2-normalised (B, D) blocks of every image of the batch, seen as ``plan`` says."""
    if plan.mode == "resize":
        images = resize_longest(images, plan.size)
    b, _, h, w = images.shape
    window = plan.window(h, w)
    if window is None:
        pooled = _pooled(model, images, arch)
    else:  # windows side by side (no overlap needed for a mean): mean of means, max of maxes
        wh, ww = window
        spots = [(i, y, x) for i in range(b) for y in window_starts(h, wh, 0.0) for x in window_starts(w, ww, 0.0)]
        sums, maxes, count = None, None, torch.zeros(b, 1, device=images.device)
        for start in range(0, len(spots), max(1, window_batch)):
            chunk = spots[start : start + max(1, window_batch)]
            crops = torch.stack([images[i, :, y : y + wh, x : x + ww] for i, y, x in chunk])
            owner = torch.tensor([i for i, _, _ in chunk], device=images.device)
            part = _pooled(model, crops, arch)
            if sums is None:
                sums = [torch.zeros(b, m.shape[1], device=images.device) for m, _ in part]
                maxes = [torch.full((b, m.shape[1]), -torch.inf, device=images.device) for m, _ in part]
            for level, (mean, top) in enumerate(part):
                sums[level].index_add_(0, owner, mean)
                for j, i in enumerate(owner.tolist()):
                    maxes[level][i] = torch.maximum(maxes[level][i], top[j])
            count.index_add_(0, owner, torch.ones(len(chunk), 1, device=images.device))
        pooled = [(s / count, m) for s, m in zip(sums, maxes, strict=True)]
    return [F.normalize(p, dim=1) for mean, top in pooled for p in (mean, top)]


def embedding_projection(ds, member: Member, ids: Sequence[str] | None = None, *, seed: int = 0, device="auto",
                         use_cache: bool = True, progress=None, tile: int | None = None) -> pd.DataFrame:
    """DataFrame (index image_id, in ``ids`` order) with float columns pc1, pc2: a PCA of
    :func:`encoder_embeddings`, cached by the run's weights and the dataset content. Images that
    cannot be read have NaN coordinates."""
    from sklearn.decomposition import PCA

    ids = list(ds.ids if ids is None else ids)
    # The files' fingerprint: embeddings see images only, so a corrected mask keeps the map.
    key = digest(PREDICT_VERSION, "embedding", ds.files_fingerprint(), ids, member.identity, seed,
                 inference_plan(member.config, tile).key())
    hit = cache.load("embedding_projection", key) if use_cache else None
    if hit is not None:
        coords = hit["coords"]
    else:
        read, emb = encoder_embeddings(ds, member, ids, device=device, progress=progress, tile=tile)
        coords = np.full((len(ids), 2), np.nan, np.float32)
        if len(read) >= 2:
            pos = {i: k for k, i in enumerate(ids)}
            coords[[pos[i] for i in read]] = PCA(n_components=2, random_state=seed).fit_transform(emb)
        if use_cache:
            cache.save("embedding_projection", key, {"coords": coords})
    return pd.DataFrame(coords, columns=["pc1", "pc2"], index=pd.Index(ids, name="image_id"))
