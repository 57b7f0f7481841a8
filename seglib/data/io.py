"""Read images and masks from disk as numpy arrays; decode masks to class indices. No torch."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from .classmap import UNKNOWN_INDEX, ClassMap, rgb_to_hex

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
# PIL itself refuses above ~179 million pixels (twice PIL.Image.MAX_IMAGE_PIXELS) unless a program raises
# that; this limit is the one to lower (SEGLIB_MAX_IMAGE_PIXELS) on a machine with little memory.
DEFAULT_MAX_PIXELS = 200_000_000


class ReadError(Exception):
    """A file could not be read as an image. The message names the file and the fault."""


def max_image_pixels() -> int:
    """The largest image (width x height) seglib opens: ``$SEGLIB_MAX_IMAGE_PIXELS``, else 200 million.

    PIL's own guard (``PIL.Image.MAX_IMAGE_PIXELS``, about 179 million pixels by default) still
    applies on top; a program that wants larger images raises or disables it itself."""
    env = os.environ.get("SEGLIB_MAX_IMAGE_PIXELS", "").strip()
    if not env:
        return DEFAULT_MAX_PIXELS
    try:
        return int(env.replace("_", ""))
    except ValueError:
        raise ValueError(f"SEGLIB_MAX_IMAGE_PIXELS={env!r} is not a whole number of pixels") from None


def _open(path: Path) -> Image.Image:
    limit = max_image_pixels()
    try:
        with warnings.catch_warnings():
            # The size check below is the policy; PIL's warning for images over its default would repeat it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)  # reads the header only
        w, h = im.size
        if w * h > limit:
            im.close()
            raise ReadError(f"{path}: image is {w}x{h} = {w * h:,} pixels, more than the limit of {limit:,} "
                            "(SEGLIB_MAX_IMAGE_PIXELS)")
        im.load()  # force decoding now: truncated files fail here, not later
        return im
    except ReadError:
        raise
    except FileNotFoundError:
        raise ReadError(f"{path}: file not found") from None
    except Image.DecompressionBombError as e:
        raise ReadError(f"{path}: image too large to open safely ({e}; PIL.Image.MAX_IMAGE_PIXELS sets "
                        "PIL's limit)") from None
    except Exception as e:  # PIL raises many types (OSError, SyntaxError, ValueError...)
        msg = (str(e) or type(e).__name__).replace(f" {str(path)!r}", "").replace(f" {str(path)}", "")
        if "cannot identify image file" in msg:
            msg = "not an image file, or damaged beyond recognition"
        elif "truncated" in msg.lower():
            msg = "image file is truncated"
        raise ReadError(f"{path}: cannot read image ({msg})") from None


def to_uint8(a: np.ndarray) -> np.ndarray:
    """Bring any numeric image array to uint8 without per-image rescaling where avoidable."""
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if a.dtype == np.uint16:
        return (a >> 8).astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        finite = np.nan_to_num(a.astype(np.float32, copy=False))
        if finite.size and finite.max() <= 1.0 and finite.min() >= 0.0:
            finite = finite * 255.0
        return np.clip(np.rint(finite), 0, 255).astype(np.uint8)
    return np.clip(a, 0, 255).astype(np.uint8)


def image_to_array(im: Image.Image) -> np.ndarray:
    """PIL image -> uint8 (H, W) for grey or (H, W, 3) for colour."""
    if im.mode in ("L", "1", "LA", "I", "I;16", "I;16B", "I;16L", "F"):
        if im.mode in ("1", "LA"):
            im = im.convert("L")
        a = np.asarray(im)
        if a.dtype != np.uint8:
            if im.mode.startswith("I;16"):
                a = (a.astype(np.uint16) >> 8).astype(np.uint8)
            else:
                a = to_uint8(a)
        return a
    if im.mode != "RGB":
        im = im.convert("RGB")
    a = np.asarray(im)
    # RGB files that only hold grey are grey: keep one channel, it is 3x cheaper downstream.
    if a[..., 0].tobytes() == a[..., 1].tobytes() == a[..., 2].tobytes():
        return np.ascontiguousarray(a[..., 0])
    return a


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 (H, W) or (H, W, 3). Raises ReadError naming the file."""
    return image_to_array(_open(Path(path)))


def read_mask_file(path: str | Path) -> tuple[np.ndarray, str, list | None]:
    """Raw mask pixels, the PIL mode, and the palette (list of RGB) for palette PNGs."""
    im = _open(Path(path))
    palette = None
    if im.mode == "P":
        pal = im.getpalette() or []
        palette = [tuple(pal[i : i + 3]) for i in range(0, len(pal), 3)]
        return np.asarray(im), "P", palette
    if im.mode in ("RGB", "RGBA", "CMYK", "YCbCr"):
        a = np.asarray(im.convert("RGB"))
        if a[..., 0].tobytes() == a[..., 1].tobytes() == a[..., 2].tobytes():
            return np.ascontiguousarray(a[..., 0]), "L", None
        return a, "RGB", None
    if im.mode in ("1", "LA"):
        im = im.convert("L")
    a = np.asarray(im)
    if im.mode.startswith("I;16") or a.dtype != np.uint8:
        a = a.astype(np.int64)
    return a, "L", None


_BINARY_KNOWN = np.zeros(256, bool)
_BINARY_KNOWN[:2] = True


def _pack_rgb(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.int32, copy=False)
    return (a[..., 0] << 16) | (a[..., 1] << 8) | a[..., 2]


class MaskDecoder:
    """Turns raw mask pixels into uint8 class indices.

    ``encoding`` is one of ``"index"`` (pixel value = class id), ``"binary"`` ({0,255} ->
    {0,1}), ``"palette"`` (palette PNG: index = class id) or ``"rgb"`` (colour -> id through
    the class map). Values or colours that the class map does not know become
    ``UNKNOWN_INDEX`` and are counted, never silently mapped. When the class map was inferred
    (no classes.json), any index 0..254 is accepted: the class map grows to hold it.
    """

    def __init__(self, class_map: ClassMap, encoding: str = "index"):
        self.class_map = class_map
        self.encoding = encoding
        known = np.zeros(256, bool)
        if class_map.inferred and encoding in ("index", "palette"):
            known[:UNKNOWN_INDEX] = True
        else:
            known[class_map.ids] = True
        self._known = known
        # Colour keys sorted for a vectorised searchsorted lookup.
        keys = np.array([_pack_rgb(np.array(c.rgb)) for c in class_map], np.int64)
        order = np.argsort(keys)
        self._color_keys = keys[order]
        self._color_ids = np.array(class_map.ids, np.uint8)[order] if len(class_map) else np.zeros(0, np.uint8)

    def decode(self, raw: np.ndarray, mode: str = "L") -> tuple[np.ndarray, dict]:
        """Returns (mask uint8 (..., H, W), {unknown value or '#RRGGBB': pixel count}).

        ``raw`` is (H, W) or a batch (B, H, W) of values, or (H, W, 3) colours with mode "RGB"."""
        if mode == "RGB":
            return self._decode_rgb(raw)
        values = raw
        if self.encoding == "binary" and mode != "P":
            values = np.where(raw == 255, 1, raw)  # {0,255} -> {0,1}; {0,1} stays
            return self._lookup(values, raw, _BINARY_KNOWN)
        return self._lookup(values, raw, self._known)

    def _lookup(self, values, raw, known) -> tuple[np.ndarray, dict]:
        if values.dtype == np.uint8:
            ok = known[values]
        else:
            inrange = (values >= 0) & (values < 256)
            ok = np.zeros(values.shape, bool)
            ok[inrange] = known[values[inrange].astype(np.int64)]
        if ok.all():
            return values.astype(np.uint8, copy=False), {}
        bad_vals, counts = np.unique(raw[~ok], return_counts=True)
        mask = np.where(ok, values, UNKNOWN_INDEX).astype(np.uint8)
        return mask, {int(v): int(c) for v, c in zip(bad_vals, counts, strict=True)}

    def _decode_rgb(self, raw: np.ndarray) -> tuple[np.ndarray, dict]:
        keys = _pack_rgb(raw[..., :3])
        if not len(self._color_keys):
            pos = np.zeros(keys.shape, np.int64)
            ok = np.zeros(keys.shape, bool)
        else:
            pos = np.clip(np.searchsorted(self._color_keys, keys), 0, len(self._color_keys) - 1)
            ok = self._color_keys[pos] == keys
        mask = np.where(ok, self._color_ids[pos] if len(self._color_ids) else 0, UNKNOWN_INDEX).astype(np.uint8)
        if ok.all():
            return mask, {}
        bad, counts = np.unique(keys[~ok], return_counts=True)
        unknown = {rgb_to_hex(((int(k) >> 16) & 255, (int(k) >> 8) & 255, int(k) & 255)): int(c)
                   for k, c in zip(bad, counts, strict=True)}
        return mask, unknown


def describe_unknown(unknown: dict, encoding: str) -> str:
    """'unknown mask colours: #FF00FF (120 px), #00FF00 (3 px)' with the biggest first."""
    kind = "colours" if encoding == "rgb" or any(isinstance(k, str) for k in unknown) else "values"
    items = sorted(unknown.items(), key=lambda kv: -kv[1])
    shown = ", ".join(f"{k} ({v} px)" for k, v in items[:6])
    more = f" and {len(items) - 6} more" if len(items) > 6 else ""
    return f"mask {kind} not in the class map: {shown}{more}"
