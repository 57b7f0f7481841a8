"""Inference on images of any size: overlapping windows blended smoothly, or a resize, as the run trained.

A run trained on crops of S pixels sees images through windows of S (overlapping by a quarter,
each window's output weighted by a Gaussian that is highest at its centre and never zero, as
MONAI's and nnU-Net's sliding windows do: no seams, and every pixel mostly predicted from a window
where it had context on all sides). A run trained on images resized to a longest side of S
predicts a resized image, and its probabilities are resized back. A run trained on whole images
predicts whole images, except that an image beyond :data:`SAFETY_PIXELS` is also tiled, so that
memory is bounded by the window batch (and the probability map), never by the image.

>>> plan = inference_plan(run.read_config(), tile=None)      # or inference_plan(member.config)
>>> probs = plan.run(lambda x: torch.softmax(model(x), 1), images, batch=16)   # (B, K, H, W)

Only torch here: both seglib.train (validation) and seglib.predict use it.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# "full" runs predict whole images up to 4x the area of 1024x1024; beyond, windows of 1024.
SAFETY_WINDOW = 1024
SAFETY_PIXELS = 4 * SAFETY_WINDOW * SAFETY_WINDOW
OVERLAP = 0.25          # MONAI's default; 0.5 (nnU-Net) costs about 2.3x the windows for little
SIGMA = 0.125           # nnU-Net's Gaussian: sigma = window / 8
MODES = ("tile", "resize", "full")

Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class InferencePlan:
    """How a run sees an image at inference.

    mode: "tile" (windows of ``size``), "resize" (longest side ``size``, back to the image's own
    size after), "full" (the whole image; windows of :data:`SAFETY_WINDOW` beyond
    :data:`SAFETY_PIXELS`). ``why`` says where the choice came from, for logs and JSON."""

    mode: str = "full"
    size: int | None = None
    overlap: float = OVERLAP
    why: str = ""

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"inference mode {self.mode!r}: choose from {', '.join(MODES)}")
        if self.mode != "full" and (not self.size or self.size < 1):
            raise ValueError(f"inference mode {self.mode!r} needs a size of at least 1, not {self.size!r}")
        if not 0 <= self.overlap < 1:
            raise ValueError(f"overlap {self.overlap!r}: must be in [0, 1)")

    def key(self) -> str:
        """What predictions depend on (cache keys): mode, size, overlap; not ``why``."""
        return f"{self.mode}:{self.size or 0}:{self.overlap:g}"

    def to_dict(self) -> dict:
        return {"mode": self.mode, "size": self.size, "overlap": self.overlap, "why": self.why}

    def window(self, height: int, width: int) -> tuple[int, int] | None:
        """The window (h, w) an image of this size is tiled with; None when it goes whole (or resized)."""
        side = self.size if self.mode == "tile" else SAFETY_WINDOW if height * width > SAFETY_PIXELS else None
        if self.mode == "resize" or side is None or (height <= side and width <= side):
            return None
        return min(side, height), min(side, width)

    def images_per_batch(self, height: int, width: int, batch_size: int) -> int:
        """How many images of this size to predict at once: one when it is tiled (its windows
        are batched instead), else ``batch_size``."""
        return 1 if self.window(height, width) is not None else max(1, batch_size)

    def run(self, forward: Forward, images: torch.Tensor, batch: int = 8) -> torch.Tensor:
        """``forward`` (N, C, h, w) -> (N, K, h, w) applied to ``images`` (B, C, H, W) by this plan:
        float32 (B, K, H, W) at the images' own size. ``batch``: windows per forward call."""
        h, w = images.shape[-2:]
        if self.mode == "resize":
            return resized(forward, images, self.size)
        window = self.window(h, w)
        if window is None:
            return forward(images).float()
        return sliding_window(forward, images, window, self.overlap, batch)


def inference_plan(config, tile: int | None = None, overlap: float = OVERLAP) -> InferencePlan:
    """The plan for a run from its config (the dict of its config.json, or a TrainConfig):
    ``resolved["input"]`` = {"mode": "crop" | "resize" | "full", "size": S} as training decided.
    Runs older than that record trained on whole images: "full".

    ``tile``: None follows the run; S > 0 forces windows of S pixels at the image's own
    resolution (whatever the run did); 0 forces whole images (still tiled beyond the safety limit)."""
    resolved = getattr(config, "resolved", None)
    if resolved is None:
        resolved = (config or {}).get("resolved") or {}
    given = resolved.get("input") or {}
    if tile is not None:
        if tile < 0:
            raise ValueError(f"tile {tile}: a window side in pixels (0: whole images)")
        if tile == 0:
            return InferencePlan("full", None, overlap, "whole images (tile 0)")
        return InferencePlan("tile", int(tile), overlap, f"windows of {tile} px (given)")
    mode, size = given.get("mode"), given.get("size")
    if mode == "crop" and size:
        return InferencePlan("tile", int(size), overlap, f"windows of {size} px: the run trained on {size} px crops")
    if mode == "resize" and size:
        return InferencePlan("resize", int(size), overlap,
                             f"resized to a longest side of {size} px, as the run trained")
    why = "whole images, as the run trained" if mode == "full" else "whole images (the run records no input policy)"
    return InferencePlan("full", None, overlap, why)


def window_starts(length: int, window: int, overlap: float = OVERLAP) -> list[int]:
    """Offsets of windows of ``window`` covering 0..length, neighbours overlapping by at least
    ``overlap`` of a window, spread evenly so the last one ends at ``length``."""
    if length <= window:
        return [0]
    step = max(1, int(window * (1 - overlap)))
    n = math.ceil((length - window) / step) + 1
    return [round(i * (length - window) / (n - 1)) for i in range(n)]


def gaussian_weight(height: int, width: int, sigma: float = SIGMA, device=None) -> torch.Tensor:
    """float32 (height, width): a Gaussian centred on the window, sigma ``sigma`` x each side,
    1 at the centre. Each axis is floored (at 1e-3) so that no pixel weighs zero (a pixel every
    window sees at its edge is still predicted); flooring the axes, not their product, keeps
    the weights separable, so windows that share a row blend by their columns alone."""
    def axis(n: int) -> torch.Tensor:
        x = torch.arange(n, dtype=torch.float32, device=device) - (n - 1) / 2
        w = torch.exp(-0.5 * (x / max(sigma * n, 1e-6)) ** 2)
        return w.div_(w.max()).clamp_(min=1e-3)

    return axis(height)[:, None] * axis(width)[None, :]


def sliding_window(forward: Forward, images: torch.Tensor, window: int | tuple[int, int],
                   overlap: float = OVERLAP, batch: int = 8, sigma: float = SIGMA) -> torch.Tensor:
    """float32 (B, K, H, W): ``forward`` over overlapping windows of every image, blended.

    Each window's output is multiplied by :func:`gaussian_weight` and added into one map per
    image; the map is divided by the summed weights at the end. Windows of all the images go
    through ``forward`` ``batch`` at a time, so memory holds ``batch`` windows' activations plus
    the output maps. An image that fits one window is one plain call of ``forward``."""
    b, _, h, w = images.shape
    wh, ww = (window, window) if isinstance(window, int) else window
    wh, ww = min(wh, h), min(ww, w)
    if (wh, ww) == (h, w):
        return forward(images).float()
    ys, xs = window_starts(h, wh, overlap), window_starts(w, ww, overlap)
    weight = gaussian_weight(wh, ww, sigma, images.device)
    norm = torch.zeros(h, w, device=images.device)
    for y in ys:
        for x in xs:
            norm[y : y + wh, x : x + ww] += weight
    spots = [(i, y, x) for i in range(b) for y in ys for x in xs]
    out = None
    for start in range(0, len(spots), max(1, batch)):
        chunk = spots[start : start + max(1, batch)]
        crops = torch.stack([images[i, :, y : y + wh, x : x + ww] for i, y, x in chunk])
        probs = forward(crops).float().mul_(weight)
        if out is None:
            out = torch.zeros(b, probs.shape[1], h, w, device=images.device)
        for (i, y, x), p in zip(chunk, probs, strict=True):
            out[i, :, y : y + wh, x : x + ww] += p
    return out.div_(norm)


def resized(forward: Forward, images: torch.Tensor, size: int) -> torch.Tensor:
    """float32 (B, K, H, W): ``forward`` on ``images`` resized to a longest side of ``size``
    (area when shrinking, bilinear when enlarging), its output resized back bilinearly (a
    convex mix of probabilities is still a probability)."""
    h, w = images.shape[-2:]
    x = resize_longest(images, size)
    if x.shape[-2:] == (h, w):
        return forward(images).float()
    return F.interpolate(forward(x).float(), (h, w), mode="bilinear", align_corners=False)


def resize_longest(images: torch.Tensor, size: int) -> torch.Tensor:
    """``images`` (B, C, H, W) scaled so that the longer side is ``size`` (area averaging down,
    bilinear up, sides rounded as training's resize rounds them); unchanged when it already is."""
    h, w = images.shape[-2:]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    if (nh, nw) == (h, w):
        return images
    if scale < 1:
        return F.interpolate(images, (nh, nw), mode="area")
    return F.interpolate(images, (nh, nw), mode="bilinear", align_corners=False)
