"""What a training step sees of each image: the input policy for images of any size.

Users' photos are megapixels; a segmentation model learns from a window of a few hundred pixels
as well as from the whole photo, at a fraction of the time and memory. Three policies:

- ``crop``: random square crops of S pixels (S a multiple of 32); an image smaller than S is
  padded, its mask with the ignore index, so padding is never learned or scored. A share of the
  crops (a third, as nnU-Net does) is centred on a pixel of the rarest scored class, so cropping
  does not starve rare classes. Validation and inference then run on whole images by tiles of S.
- ``resize``: the longest side to S (images by area averaging, masks by nearest neighbour);
  predictions are resized back to each image's own size for scoring.
- ``full``: whole images, for small ones (the 64x128 demo).

``auto`` picks ``crop`` when the images are much larger than S and ``full`` otherwise, and says
why; the choice is recorded in the run's config (``resolved["input"]``).

The crop (or resize) runs before the saved augmentation pipeline: crop first, then augment.

>>> plan = resolve_input(cfg, stats, train_ids)       # {"mode": "crop", "size": 512, "why": "..."}
>>> prepare = input_transform(plan, rare_classes=[4], rare_share=1 / 3, seed=0)
>>> image, mask = prepare(image, mask)                 # (512, 512[, C]), (512, 512)
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

from ..metrics import IGNORE_INDEX

INPUT_MODES = ("auto", "crop", "resize", "full")
AUTO_CROP_FACTOR = 1.5   # auto crops when the median image's longer side exceeds 1.5 S


def resolve_input(mode: str, size: int, shapes: np.ndarray) -> dict:
    """The policy for images of ``shapes`` ((N, 2+) heights and widths): {"mode", "size", "why"};
    ``size`` is None for ``full``."""
    longest = np.asarray(shapes)[:, :2].max(1) if len(shapes) else np.zeros(0)
    typical = int(np.median(longest)) if len(longest) else 0
    biggest = int(longest.max()) if len(longest) else 0
    seen = f"the images' longer side is {typical} px (median; largest {biggest})"
    if mode == "crop":
        return {"mode": "crop", "size": size, "why": f"asked for: random {size}-px crops; {seen}"}
    if mode == "resize":
        return {"mode": "resize", "size": size, "why": f"asked for: longest side resized to {size} px; {seen}"}
    if mode == "full":
        return {"mode": "full", "size": None, "why": f"asked for: whole images; {seen}"}
    if typical > AUTO_CROP_FACTOR * size:
        return {"mode": "crop", "size": size,
                "why": f"auto: {seen}, much larger than {size}: random {size}-px crops train faster in less memory "
                       "(validation on whole images, by tiles)"}
    above = int(AUTO_CROP_FACTOR * size)
    return {"mode": "full", "size": None, "why": f"auto: {seen}, small enough to train whole (crops above {above})"}


def check_size(mode: str, size: int) -> str | None:
    """Why ``size`` cannot serve ``mode`` (one line), or None."""
    if mode in ("crop", "auto") and (size < 32 or size % 32):
        return f"input_size = {size}: a crop side must be a multiple of 32, at least 32 (encoders reduce 32 times)"
    if mode == "resize" and size < 32:
        return f"input_size = {size}: resize to at least 32 px"
    return None


class RandomCrop:
    """A random ``size`` x ``size`` window of an image and its mask; with probability
    ``rare_share`` centred on a random pixel of one of ``rare_classes`` that the mask holds.

    Random numbers come from a generator seeded by ``seed`` and torch's per-process seed, made
    on first use in each process: DataLoader workers draw different crops, a seeded run repeats."""

    def __init__(self, size: int, rare_classes: Sequence[int] = (), rare_share: float = 1 / 3, seed: int = 0):
        self.size, self.rare_classes = int(size), [int(c) for c in rare_classes]
        self.rare_share, self.seed = float(rare_share), int(seed)
        self._rng: np.random.Generator | None = None
        self._pid: int | None = None
        self.centred = 0     # crops centred on a rare pixel (for tests and the log)
        self.drawn = 0

    def _generator(self) -> np.random.Generator:
        if self._rng is None or self._pid != os.getpid():
            import torch

            self._rng = np.random.default_rng([self.seed, torch.initial_seed() % 2**32])
            self._pid = os.getpid()
        return self._rng

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rng = self._generator()
        image, mask = pad_to(image, mask, self.size)
        h, w = mask.shape
        s = self.size
        self.drawn += 1
        centre = None
        if self.rare_classes and rng.random() < self.rare_share:
            ys, xs = np.nonzero(np.isin(mask, self.rare_classes))
            if len(ys):
                k = rng.integers(len(ys))
                centre = (int(ys[k]), int(xs[k]))
                self.centred += 1
        if centre is None:
            top, left = int(rng.integers(h - s + 1)), int(rng.integers(w - s + 1))
        else:   # the window around the pixel, kept inside the image
            top = min(max(0, centre[0] - s // 2), h - s)
            left = min(max(0, centre[1] - s // 2), w - s)
        return image[top : top + s, left : left + s], mask[top : top + s, left : left + s]


def pad_to(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad an image (with 0) and its mask (with the ignore index) at the bottom and right to at
    least ``size`` x ``size``."""
    h, w = mask.shape
    dh, dw = max(0, size - h), max(0, size - w)
    if not dh and not dw:
        return image, mask
    pad = ((0, dh), (0, dw)) + (((0, 0),) if image.ndim == 3 else ())
    return np.pad(image, pad), np.pad(mask, ((0, dh), (0, dw)), constant_values=IGNORE_INDEX)


class ResizeLongest:
    """Scale an image (area averaging down, bilinear up) and its mask (nearest neighbour: ids stay
    ids) so that the longer side is ``size``."""

    def __init__(self, size: int):
        self.size = int(size)

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = mask.shape
        scale = self.size / max(h, w)
        if scale == 1:
            return image, mask
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
        image = np.asarray(Image.fromarray(image).resize((nw, nh), resample))
        mask = np.asarray(Image.fromarray(mask).resize((nw, nh), Image.Resampling.NEAREST))
        return image, mask


def input_transform(plan: dict, rare_classes: Sequence[int] = (), rare_share: float = 1 / 3, seed: int = 0):
    """The callable ``(image, mask) -> (image, mask)`` a training sample goes through before the
    augmentation pipeline, for a resolved plan; None for ``full``."""
    if plan["mode"] == "crop":
        return RandomCrop(plan["size"], rare_classes, rare_share, seed)
    if plan["mode"] == "resize":
        return ResizeLongest(plan["size"])
    return None
