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
from .infer import iter_batches
from .members import Member, dataset_layout
from .run import PREDICT_VERSION, digest, resolve_device


@torch.no_grad()
def encoder_embeddings(ds, member: Member, ids: Sequence[str] | None = None, *, device="auto", batch_size: int = 32,
                       progress=None) -> tuple[list[str], np.ndarray]:
    """(ids read, float32 (N, D)): the mean and the max over space of the encoder's two deepest
    feature maps, each block L2-normalised (deep = what the image holds; mean and max = how much
    of it and whether it is there at all)."""
    layout = dataset_layout(ds)
    device = resolve_device(device)
    model = member.load(device)
    ids = list(ds.ids if ids is None else ids)
    out_ids, rows, done = [], [], 0
    for batch in iter_batches(ds, ids, batch_size, layout.in_channels, labels=False):
        x = batch.images.to(device)
        h, w = x.shape[-2:]
        ph, pw = padded_size(member.spec.arch, h, w)
        if (ph, pw) != (h, w):  # as SegmentationModel pads: encoders want multiples of 32
            x = F.pad(x, (0, pw - w, 0, ph - h), mode="reflect" if ph - h < h and pw - w < w else "replicate")
        feats = [f for f in model.net.encoder(x) if f.ndim == 4 and f.shape[1] > 0][-2:]
        blocks = []
        for f in feats:
            for pooled in (f.mean((2, 3)), f.amax((2, 3))):
                blocks.append(F.normalize(pooled.float(), dim=1))
        rows.append(torch.cat(blocks, 1).cpu().numpy())
        out_ids += batch.ids
        done += len(batch.ids)
        if progress is not None:
            progress(done, len(ids))
    return out_ids, (np.concatenate(rows) if rows else np.zeros((0, 0), np.float32))


def embedding_projection(ds, member: Member, ids: Sequence[str] | None = None, *, seed: int = 0, device="auto",
                         use_cache: bool = True, progress=None) -> pd.DataFrame:
    """DataFrame (index image_id, in ``ids`` order) with float columns pc1, pc2: a PCA of
    :func:`encoder_embeddings`, cached by the run's weights and the dataset content. Images that
    cannot be read have NaN coordinates."""
    from sklearn.decomposition import PCA

    ids = list(ds.ids if ids is None else ids)
    key = digest(PREDICT_VERSION, "embedding", ds.fingerprint(), ids, member.identity, seed)
    hit = cache.load("embedding_projection", key) if use_cache else None
    if hit is not None:
        coords = hit["coords"]
    else:
        read, emb = encoder_embeddings(ds, member, ids, device=device, progress=progress)
        coords = np.full((len(ids), 2), np.nan, np.float32)
        if len(read) >= 2:
            pos = {i: k for k, i in enumerate(ids)}
            coords[[pos[i] for i in read]] = PCA(n_components=2, random_state=seed).fit_transform(emb)
        if use_cache:
            cache.save("embedding_projection", key, {"coords": coords})
    return pd.DataFrame(coords, columns=["pc1", "pc2"], index=pd.Index(ids, name="image_id"))
