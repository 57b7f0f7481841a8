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

# On a CPU one forward call sees at most this many pixels (windows, or whole images), whatever
# the batch size: activations cost a U-Net ~0.45 KB a pixel (16 windows of 512, the page's batch
# size, peaked at +1.8 GB for U-Net/resnet18, issue 22; 4 windows still left a 20 MP photo at
# +1.37 GB, 2 windows at +0.8 GB) and a CPU runs no faster past two windows of 512 at once
# (CPU time a window, 2 vs 4: 1.47 vs 1.76 s for U-Net/mobilenet_v2, 1.55 vs 1.53 s for
# resnet18, 2 cores). A GPU keeps the batch size.
CPU_FORWARD_PIXELS = 2 * 512 * 512


def per_call(device: torch.device | str, batch_size: int, pixels: int) -> int:
    """How many windows (or images) of ``pixels`` each to give one forward call on ``device``."""
    batch_size = max(1, batch_size)
    if torch.device(device).type != "cpu":
        return batch_size
    return max(1, min(batch_size, CPU_FORWARD_PIXELS // max(1, pixels)))


def batch_pixels(device: torch.device | str, batch_size: int) -> int:
    """Pixels of whole images one batch may hold: ``batch_size`` x BATCH_PIXELS, on a CPU no
    more than one forward call sees (CPU_FORWARD_PIXELS)."""
    pixels = max(1, batch_size) * BATCH_PIXELS
    return pixels if torch.device(device).type != "cpu" else min(pixels, CPU_FORWARD_PIXELS)


@dataclass
class Batch:
    ids: list[str]
    images: torch.Tensor             # float32 (B, C, H, W) in [0, 1]; uint8 0..255 from iter_batches(raw=True)
    masks: torch.Tensor | None       # uint8 (B, H, W) class ids; None when unlabeled


def _image_tensor(image: np.ndarray, channels: int, raw: bool = False) -> torch.Tensor | np.ndarray:
    """uint8 (H, W) or (H, W, 3) -> float32 (channels, H, W) / 255 (grey repeated for an RGB
    model). With ``raw`` a uint8 NumPy view (channels, H, W) of the image as read, a quarter of
    the memory (a float32 tensor only where RGB is averaged to grey): :func:`_batch` stacks it,
    :func:`to_unit` makes the float32 of it, window by window."""
    arr = image[None] if image.ndim == 2 else np.moveaxis(image[..., :3], -1, 0)
    if raw and arr.shape[0] <= channels and arr.dtype == np.uint8:
        return np.broadcast_to(arr[:1], (channels, *arr.shape[1:])) if arr.shape[0] != channels else arr
    # Images read by PIL are read-only: float32 straight from NumPy is the one copy either way.
    t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).div_(255.0)
    if t.shape[0] != channels:
        t = t[:1].expand(channels, -1, -1) if channels > t.shape[0] else t.mean(0, keepdim=True)
    return t


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 / 255 (the same values :func:`_image_tensor` makes); float ones unchanged."""
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images


def _read(ds, image_id: str, want_mask: bool):
    """(image, mask or None) or (None, why) for an image that cannot be read."""
    image, mask, problems = ds.load_pair(image_id)
    if image is None:
        return None, "; ".join(f"{p.file}: {p.problem}" for p in problems) or "cannot be read"
    return image, (mask if want_mask else None)


def iter_batches(ds, ids: Sequence[str], batch_size: int, channels: int, labels: bool = True,
                 skipped: list[tuple[str, str]] | None = None, threads: int = 4,
                 max_pixels: int | None = None, raw: bool = False) -> Iterator[Batch]:
    """Batches of consecutive ``ids`` that share one image size (a size change starts a new
    batch, so nothing is padded and no pixel is invented), of at most ``max_pixels`` pixels
    (default ``batch_size`` x :data:`BATCH_PIXELS`; an image larger than that is a batch of its
    own). With ``labels``, labeled and unlabeled images go in separate batches and masks come
    along with the labeled ones. An image that
    cannot be read is left out and appended to ``skipped`` as (id, why). Images are decoded in
    ``threads`` threads (PIL and NumPy release the GIL), one chunk ahead of the model, so memory
    holds two chunks at most; after big images the chunks shrink to what one batch may hold
    (the first chunk is one image, to learn the size before reading many). With ``raw`` the
    images come as uint8 (see :func:`_image_tensor`)."""
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
                    yield _batch([i for i, _ in part], [p for _, p in part], channels, raw)
                    start = k
            chunk = following


def _batch(ids: list[str], pairs, channels: int, raw: bool = False) -> Batch:
    # np.stack: one (writable) copy of the images as read, whatever their layout
    parts = [_image_tensor(img, channels, raw) for img, _ in pairs]
    if all(isinstance(p, np.ndarray) for p in parts):
        images = torch.from_numpy(np.stack(parts))
    else:   # some averaged to grey: all as float
        images = torch.stack([to_unit(torch.from_numpy(np.array(p))) if isinstance(p, np.ndarray) else p
                              for p in parts])
    masks = None
    if all(m is not None for _, m in pairs):    # decoded masks are uint8: 1 byte a pixel, not 8
        masks = torch.from_numpy(np.stack([np.asarray(m, np.uint8) for _, m in pairs]))
    return Batch(ids, images, masks)


@torch.no_grad()
def forward_probs(model: torch.nn.Module, images: torch.Tensor, tta: bool = False,
                  plan: InferencePlan | None = None, window_batch: int = 16,
                  out_dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, K, H, W) softmax probabilities at the images' own size; with ``tta`` the mean
    over the four flips. ``plan`` (default: whole images, tiled beyond the safety limit) says how
    the model sees them: by windows (flipped window by window under ``tta``, ``window_batch``
    windows per call) or resized. ``out_dtype`` float16 returns them rounded once, halving the
    map of a tiled image (blended in float32 band by band, see seglib.tiling.sliding_window).
    uint8 ``images`` (0..255) are made float32 a window at a time when they are tiled: no
    float32 copy of a whole big photo."""
    plan = plan or InferencePlan()
    if images.dtype == torch.uint8 and plan.window(*images.shape[-2:]) is not None:
        return plan.run(lambda x: _probs(model, to_unit(x), tta), images, window_batch, out_dtype)
    return plan.run(lambda x: _probs(model, x, tta), to_unit(images), window_batch, out_dtype)


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
    """Masks with ids outside 0..K-1 set to IGNORE_INDEX (they are never scored), in their dtype."""
    unknown = masks >= num_classes
    if masks.is_signed():
        unknown |= masks < 0
    return masks.masked_fill(unknown, IGNORE_INDEX)
