"""Batched inference: images in batches of one size, class probabilities out, optional flips,
big images by overlapping windows (seglib.tiling) as the run trained.

>>> plan = inference_plan(member.config, tile=None)            # the run's crop, resize or whole images
>>> for batch in iter_batches(ds, ids, batch_size=32, channels=1):
...     probs = forward_probs(model, batch.images, tta=True, plan=plan)   # (B, K, H, W), rows sum to 1
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from ..metrics import IGNORE_INDEX
from ..tiling import InferencePlan

# Test-time augmentation: the flips a segmentation model should not care about. Each view is
# undone on the output before averaging: a flip is its own inverse.
TTA_FLIPS: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,), (-2, -1))

# Images per batch are capped so that a batch holds at most batch_size x 512 x 512 pixels: a
# dataset of 4000x3000 photos goes one image at a time (its windows are what is batched).
BATCH_PIXELS = 512 * 512


@dataclass
class Batch:
    ids: list[str]
    images: torch.Tensor             # float32 (B, C, H, W) in [0, 1]
    masks: torch.Tensor | None       # int64 (B, H, W), IGNORE_INDEX where unknown; None when unlabeled


def _image_tensor(image: np.ndarray, channels: int) -> torch.Tensor:
    """uint8 (H, W) or (H, W, 3) -> float32 (channels, H, W) / 255 (grey repeated for an RGB model)."""
    arr = image[None] if image.ndim == 2 else np.moveaxis(image[..., :3], -1, 0)
    # Images read by PIL are read-only: float32 straight from NumPy is the one copy either way.
    t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).div_(255.0)
    if t.shape[0] != channels:
        t = t[:1].expand(channels, -1, -1) if channels > t.shape[0] else t.mean(0, keepdim=True)
    return t


def _read(ds, image_id: str, want_mask: bool):
    """(image, mask or None) or (None, why) for an image that cannot be read."""
    image, mask, problems = ds.load_pair(image_id)
    if image is None:
        return None, "; ".join(f"{p.file}: {p.problem}" for p in problems) or "cannot be read"
    return image, (mask if want_mask else None)


def iter_batches(ds, ids: Sequence[str], batch_size: int, channels: int, labels: bool = True,
                 skipped: list[tuple[str, str]] | None = None, threads: int = 4,
                 max_pixels: int | None = None) -> Iterator[Batch]:
    """Batches of consecutive ``ids`` that share one image size (a size change starts a new
    batch, so nothing is padded and no pixel is invented), of at most ``max_pixels`` pixels
    (default ``batch_size`` x :data:`BATCH_PIXELS`; an image larger than that is a batch of its
    own). With ``labels``, labeled and unlabeled images go in separate batches and masks come
    along with the labeled ones. An image that
    cannot be read is left out and appended to ``skipped`` as (id, why). Images are decoded in
    ``threads`` threads (PIL and NumPy release the GIL), one chunk ahead of the model, so memory
    holds two chunks at most; after big images the chunks shrink to what one batch may hold
    (the first chunk is one image, to learn the size before reading many)."""
    ids = list(ids)
    max_pixels = max_pixels or max(1, batch_size) * BATCH_PIXELS
    if not ids:
        return

    with ThreadPoolExecutor(max(1, threads)) as decode, ThreadPoolExecutor(1) as prefetch:
        def read(chunk):
            return list(decode.map(lambda i: _read(ds, i, labels), chunk))

        pos, take = 0, 1
        chunk = ids[:1]
        ahead = prefetch.submit(read, chunk)
        while chunk:
            pairs = ahead.result()
            areas = [p[0].shape[0] * p[0].shape[1] for p in pairs if p[0] is not None]
            if areas:  # the next chunk: as many images as one batch of the largest size seen may hold
                take = max(1, min(batch_size, max_pixels // max(areas)))
            pos += len(chunk)
            following = ids[pos : pos + take]
            ahead = prefetch.submit(read, following) if following else None
            good = [(i, p) for i, p in zip(chunk, pairs, strict=True) if p[0] is not None]
            if skipped is not None:
                skipped.extend((i, p[1]) for i, p in zip(chunk, pairs, strict=True) if p[0] is None)
            start = 0
            for k in range(1, len(good) + 1):
                size, masked = good[start][1][0].shape[:2], good[start][1][1] is not None
                full = (k - start) * size[0] * size[1] >= max_pixels
                # a size change, a budget reached, or labeled meeting unlabeled (masks stay with theirs)
                if k == len(good) or good[k][1][0].shape[:2] != size or full or (good[k][1][1] is not None) != masked:
                    part = good[start:k]
                    yield _batch([i for i, _ in part], [p for _, p in part], channels)
                    start = k
            chunk = following


def _batch(ids: list[str], pairs, channels: int) -> Batch:
    images = torch.stack([_image_tensor(img, channels) for img, _ in pairs])
    masks = None
    if all(m is not None for _, m in pairs):
        masks = torch.stack([torch.from_numpy(m.astype(np.int64)) for _, m in pairs])
    return Batch(ids, images, masks)


@torch.no_grad()
def forward_probs(model: torch.nn.Module, images: torch.Tensor, tta: bool = False,
                  plan: InferencePlan | None = None, window_batch: int = 16,
                  out_dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, K, H, W) softmax probabilities at the images' own size; with ``tta`` the mean
    over the four flips. ``plan`` (default: whole images, tiled beyond the safety limit) says how
    the model sees them: by windows (flipped window by window under ``tta``, ``window_batch``
    windows per call) or resized. ``out_dtype`` float16 returns them rounded once, halving the
    map of a tiled image (blended in float32 band by band, see seglib.tiling.sliding_window)."""
    plan = plan or InferencePlan()
    return plan.run(lambda x: _probs(model, x, tta), images, window_batch, out_dtype)


def _probs(model: torch.nn.Module, images: torch.Tensor, tta: bool) -> torch.Tensor:
    if not tta:
        return torch.softmax(model(images).float(), 1)
    total = None
    for dims in TTA_FLIPS:
        x = images.flip(dims) if dims else images
        p = torch.softmax(model(x).float(), 1)
        p = p.flip(dims) if dims else p
        total = p if total is None else total.add_(p)
    return total.div_(len(TTA_FLIPS))


def keep_known(masks: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Masks with ids outside 0..K-1 set to IGNORE_INDEX (they are never scored)."""
    return torch.where((masks >= 0) & (masks < num_classes), masks, torch.full_like(masks, IGNORE_INDEX))
