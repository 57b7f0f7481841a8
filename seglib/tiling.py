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

import contextlib
import functools
import math
import sys
import threading
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
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4     # glibc mallopt parameters
_HEAP = {"users": 0, "lock": threading.Lock(), "libc": None}


@contextlib.contextmanager
def reuse_freed_memory():
    """While inside, freed memory stays in the process's heap for the next allocation instead of
    going back to the system (glibc only; elsewhere nothing changes). A forward pass allocates and
    frees hundreds of MB of activations per window batch; glibc serves blocks that big by mmap
    and unmaps them on free, so every batch faults its memory in again, page by page: most of
    the system time of a tiled evaluate (sys 5.6 s vs 12 s user for one 1800x1400 image;
    0.4 s inside this context, 3.3M -> 0.14M page faults). On leaving
    (the last user, when passes nest or run in threads) glibc's defaults come back and the heap
    is trimmed. Long inference passes (:func:`seglib.predict.run.probs_batches`) run inside it,
    and give the free memory back between images (:func:`release_freed_memory`): memory kept
    this way is fragmented by blocks of many sizes, and what one image left is not carried into
    the next. It costs peak memory when the window batch is big: on three photos of up to 3.7 MP
    (two U-Nets, 4 windows of 512 a call) +1.57 GB with it, +1.13 GB without it (and 2x the
    system time: 15M page faults instead of 7M); with 2 windows a call (what a CPU now gets,
    seglib.predict.infer.CPU_FORWARD_PIXELS) a 20 MP photo peaked at +0.80 GB with it, +0.84 GB
    without (issue 22)."""
    libc = _libc()
    if libc is None:
        yield
        return
    with _HEAP["lock"]:
        _HEAP["users"] += 1
        if _HEAP["users"] == 1:
            libc.mallopt(_M_MMAP_MAX, 0)
            libc.mallopt(_M_TRIM_THRESHOLD, 1 << 62)
    try:
        yield
    finally:
        with _HEAP["lock"]:
            _HEAP["users"] -= 1
            if _HEAP["users"] == 0:
                libc.mallopt(_M_MMAP_MAX, 65536)                # glibc's defaults
                libc.mallopt(_M_TRIM_THRESHOLD, 128 * 1024)
                libc.malloc_trim(0)


def release_freed_memory() -> None:
    """Inside :func:`reuse_freed_memory`: hand the heap's free memory back to the system now
    (what an image freed serves its own windows; between images it is let go, so that a pass
    does not hold more for more images). Elsewhere nothing happens."""
    libc = _libc()
    if libc is not None and _HEAP["users"]:
        libc.malloc_trim(0)


def _libc():
    if _HEAP["libc"] is None:
        _HEAP["libc"] = False
        if sys.platform.startswith("linux"):
            try:
                import ctypes
                libc = ctypes.CDLL("libc.so.6")
                if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim"):
                    _HEAP["libc"] = libc
            except OSError:
                pass
    return _HEAP["libc"] or None


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

    def run(self, forward: Forward, images: torch.Tensor, batch: int = 8,
            out_dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``forward`` (N, C, h, w) -> (N, K, h, w) applied to ``images`` (B, C, H, W) by this plan:
        (B, K, H, W) at the images' own size, computed in float32 and returned as ``out_dtype``
        (float16 halves a tiled image's map). ``batch``: windows per forward call."""
        h, w = images.shape[-2:]
        if self.mode == "resize":
            return resized(forward, images, self.size).to(out_dtype)
        window = self.window(h, w)
        if window is None:
            return forward(images).float().to(out_dtype)
        return sliding_window(forward, images, window, self.overlap, batch, out_dtype=out_dtype)


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


def _axis_weight(n: int, sigma: float, device=None) -> torch.Tensor:
    """float32 (n,): one axis of :func:`gaussian_weight` (cached: computed once per window size)."""
    return _axis_weight_cached(n, float(sigma), str(torch.device(device or "cpu")))


@functools.lru_cache(maxsize=32)
def _axis_weight_cached(n: int, sigma: float, device: str) -> torch.Tensor:
    x = torch.arange(n, dtype=torch.float32, device=device) - (n - 1) / 2
    w = torch.exp(-0.5 * (x / max(sigma * n, 1e-6)) ** 2)
    return w.div_(w.max()).clamp_(min=1e-3)


def gaussian_weight(height: int, width: int, sigma: float = SIGMA, device=None) -> torch.Tensor:
    """float32 (height, width): a Gaussian centred on the window, sigma ``sigma`` x each side,
    1 at the centre. Each axis is floored (at 1e-3) so that no pixel weighs zero (a pixel every
    window sees at its edge is still predicted); flooring the axes, not their product, keeps
    the weights separable, so windows that share a row blend by their columns alone (and the
    summed weights of all windows are the product of two 1-D sums)."""
    return _axis_weight(height, sigma, device)[:, None] * _axis_weight(width, sigma, device)[None, :]


def _coverage(length: int, starts: list[int], weight: torch.Tensor) -> torch.Tensor:
    """float32 (length,): the 1-D weights of the windows at ``starts`` summed along one axis."""
    total = torch.zeros(length, device=weight.device)
    for s in starts:
        total[s : s + len(weight)] += weight
    return total


class _Bands:
    """Blends windows into float32 bands of rows and writes each band out once no later window
    can touch it: memory is one band per image row of windows (window height x image width x K),
    not a float32 map of the whole image, and the output may be float16.

    Windows must arrive in (image, row, column) order, as :func:`sliding_window` makes them."""

    def __init__(self, out: torch.Tensor, ys: list[int], wh: int, ny: torch.Tensor, nx: torch.Tensor):
        self.out, self.ys, self.wh, self.ny, self.nx = out, ys, wh, ny, nx
        k, w = out.shape[1], out.shape[-1]
        self.acc = torch.zeros(k, wh, w, device=out.device)
        self.spare = torch.zeros_like(self.acc)
        self.image, self.lo, self.done = -1, 0, 0      # rows [lo, lo + wh) of `image` are in acc

    def add(self, i: int, y: int, x: int, p: torch.Tensor) -> None:
        if i != self.image:
            self.finish()
            self.image, self.lo, self.done = i, y, 0
            self.acc.zero_()
        elif y != self.lo:
            self._flush(y)
        self.acc[:, y - self.lo : y - self.lo + p.shape[-2], x : x + p.shape[-1]] += p

    def _flush(self, upto: int) -> None:
        """Write rows [done, upto) of the current image out, and move acc to start at ``upto``."""
        shift = upto - self.lo
        self._write(self.lo, upto)
        keep = self.wh - shift
        self.spare[:, keep:].zero_()
        if keep > 0:
            self.spare[:, :keep].copy_(self.acc[:, shift:])
        self.acc, self.spare = self.spare, self.acc
        self.lo = upto

    def _write(self, start: int, stop: int) -> None:
        if stop > start:
            band = self.acc[:, start - self.lo : stop - self.lo]
            band.div_(self.ny[start:stop, None] * self.nx[None, :])
            self.out[self.image, :, start:stop].copy_(band)
        self.done = stop

    def finish(self) -> None:
        if self.image >= 0:
            self._write(self.lo, min(self.lo + self.wh, self.out.shape[-2]))
            self.image = -1


def sliding_window(forward: Forward, images: torch.Tensor, window: int | tuple[int, int],
                   overlap: float = OVERLAP, batch: int = 8, sigma: float = SIGMA,
                   out_dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``out_dtype`` (B, K, H, W): ``forward`` over overlapping windows of every image, blended.

    Each window's output is multiplied by :func:`gaussian_weight` and added, in float32, into a
    band of rows of its image; a band is divided by the summed weights (separable: one row and
    one column vector, no (H, W) map) and written out in ``out_dtype`` as soon as no later
    window touches it. Windows of all the images go through ``forward`` ``batch`` at a time
    into one reused input buffer, so memory holds ``batch`` windows' activations, one band per
    image being blended, and the output (float16 output: 2 bytes a pixel and class, the float32
    blend rounded once, within 5e-4 of it). An image that fits one window is one plain call of
    ``forward``."""
    b, c, h, w = images.shape
    wh, ww = (window, window) if isinstance(window, int) else window
    wh, ww = min(wh, h), min(ww, w)
    if (wh, ww) == (h, w):
        return forward(images).to(out_dtype)
    ys, xs = window_starts(h, wh, overlap), window_starts(w, ww, overlap)
    wy, wx = _axis_weight(wh, sigma, images.device), _axis_weight(ww, sigma, images.device)
    weight = wy[:, None] * wx[None, :]
    spots = [(i, y, x) for i in range(b) for y in ys for x in xs]
    step = max(1, batch)
    crops = torch.empty(min(step, len(spots)), c, wh, ww, dtype=images.dtype, device=images.device)
    bands = None
    for start in range(0, len(spots), step):
        chunk = spots[start : start + step]
        for k, (i, y, x) in enumerate(chunk):
            crops[k].copy_(images[i, :, y : y + wh, x : x + ww])
        probs = forward(crops[: len(chunk)]).float().mul_(weight)
        if bands is None:
            out = torch.empty(b, probs.shape[1], h, w, dtype=out_dtype, device=images.device)
            bands = _Bands(out, ys, wh, _coverage(h, ys, wy), _coverage(w, xs, wx))
        for (i, y, x), p in zip(chunk, probs, strict=True):
            bands.add(i, y, x, p)
        del probs
    bands.finish()
    return bands.out


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
