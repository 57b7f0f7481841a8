"""Read images and masks from disk as numpy arrays; decode masks to class indices. No torch."""
from __future__ import annotations

import os
import threading
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


# A JPEG decodes at 1/2, 1/4 or 1/8 of its size for a fraction of the work and memory (PIL's
# ``draft``: the DCT scales while decoding). Thumbnails and the detectors' measures need no more.
DRAFT_FACTORS = (8, 4, 2)


def reduce_factor(w: int, h: int, shorter: int = 0, longer: int = 0) -> int:
    """The largest of 8, 4, 2 (else 1) that keeps the shorter side >= ``shorter`` and the longer
    side >= ``longer`` pixels."""
    for f in DRAFT_FACTORS:
        if min(w, h) // f >= shorter and max(w, h) // f >= longer:
            return f
    return 1


def _open(path: Path) -> Image.Image:
    return _decode(path)[0]


def _decode(path: Path, shorter: int = 0, longer: int = 0) -> tuple[Image.Image, tuple[int, int]]:
    """(the decoded image, its full (W, H)); a JPEG at a reduced scale when ``shorter``/``longer``
    allow one."""
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
        f = reduce_factor(w, h, shorter, longer) if (shorter or longer) and im.format == "JPEG" else 1
        if f > 1:
            im.draft(None, (w // f, h // f))
        im.load()  # force decoding now: truncated files fail here, not later
        return im, (w, h)
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
    if is_grey(a):
        return np.ascontiguousarray(a[..., 0])
    return a


def is_grey(a: np.ndarray) -> bool:
    """Whether an (H, W, 3) array has three equal channels. A colour image almost always shows
    it in a sparse sample, so the full comparison runs only on images that look grey."""
    sample = a[::17, ::13]
    if not (np.array_equal(sample[..., 0], sample[..., 1]) and np.array_equal(sample[..., 0], sample[..., 2])):
        return False
    return np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 0], a[..., 2])


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 (H, W) or (H, W, 3). Raises ReadError naming the file."""
    return image_to_array(_open(Path(path)))


def read_image_reduced(path: str | Path, shorter: int = 0, longer: int = 0) -> tuple[np.ndarray, tuple[int, int], int]:
    """:func:`read_image`, but a JPEG that stays at least ``shorter`` / ``longer`` pixels is
    decoded at 1/2, 1/4 or 1/8 of its size (see :func:`reduce_factor`). Returns (the array, the
    full (H, W), the factor: 1 = full size; a reduced JPEG is ceil(H / factor) x ceil(W / factor)).
    Raises ReadError naming the file, as :func:`read_image` does."""
    im, (w, h) = _decode(Path(path), shorter, longer)
    return image_to_array(im), (h, w), round(w / im.size[0])   # the factor the decoder chose


def read_mask_file(path: str | Path) -> tuple[np.ndarray, str, list | None]:
    """Raw mask pixels, the PIL mode, and the palette (list of RGB) for palette PNGs."""
    im = _open(Path(path))
    palette = None
    if im.mode == "P":
        pal = im.getpalette() or []
        palette = [tuple(pal[i : i + 3]) for i in range(0, len(pal), 3)]
        return np.asarray(im), "P", palette
    if im.mode in ("RGB", "RGBA", "CMYK", "YCbCr"):
        a = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))
        if is_grey(a):
            return np.ascontiguousarray(a[..., 0]), "L", None
        return a, "RGB", None
    if im.mode in ("1", "LA"):
        im = im.convert("L")
    a = np.asarray(im)
    if im.mode.startswith("I;16") or a.dtype != np.uint8:
        a = a.astype(np.int64)
    return a, "L", None


# The mode of a mask that holds class ids already (a stored correction): decoded as it is.
IDS_MODE = "ids"

_BINARY_KNOWN = np.zeros(256, bool)
_BINARY_KNOWN[:2] = True
# Value v of a single-channel mask read as the colour (v, v, v) (grey masks of a colour-coded dataset).
_GREY_COLOURS = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
_LUT_ABOVE = 4096  # pixels: above this a colour lookup goes through the 16 MB table, below a binary search


def pack_rgb(a: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 colours -> (...) uint32 keys 0xRRGGBB: one number per pixel is cheap to
    count (bincount, np.unique) and to look up, where rows of three (np.unique(axis=0)) are not."""
    k = a[..., 0].astype(np.uint32)
    k <<= 8
    k |= a[..., 1]
    k <<= 8
    k |= a[..., 2]
    return k


def key_to_hex(key) -> str:
    k = int(key)
    return rgb_to_hex(((k >> 16) & 255, (k >> 8) & 255, k & 255))


def count_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of ``keys`` (sorted) and their counts. Masks are piecewise constant: runs
    are found first and only their first values are sorted, far cheaper than sorting every pixel."""
    flat = keys.ravel()
    if not flat.size:
        return flat[:0], np.zeros(0, np.int64)
    runs = _runs(flat, most=1.0)
    if runs is None or len(runs[0]) > flat.size // 2:
        return np.unique(flat, return_counts=True)
    starts, lengths = runs
    vals, inv = np.unique(flat[starts], return_inverse=True)
    return vals, np.bincount(inv.ravel(), weights=lengths, minlength=len(vals)).astype(np.int64)


def _runs(flat: np.ndarray, most: float = 1 / 16) -> tuple[np.ndarray, np.ndarray] | None:
    """(start, length) of each run of equal values, or None when there are more than ``most``
    of the values' count (noise-like data, where sorting every value is cheaper)."""
    change = flat[1:] != flat[:-1]
    n_runs = int(np.count_nonzero(change)) + 1
    if n_runs > max(1, most * flat.size):
        return None
    starts = np.concatenate(([0], np.flatnonzero(change) + 1))
    return starts, np.diff(np.append(starts, flat.size))


def palette_colours(palette) -> np.ndarray:
    """A PIL palette (list of RGB) as a (256, 3) uint8 table; missing entries are black."""
    table = np.zeros((256, 3), np.uint8)
    if palette:
        pal = np.asarray(palette[:256], np.uint8).reshape(-1, 3)
        table[: len(pal)] = pal
    return table


class MaskDecoder:
    """Turns raw mask pixels into uint8 class indices, or counts them per class.

    ``encoding`` is one of ``"index"`` (pixel value = class id), ``"binary"`` ({0,255} ->
    {0,1}), ``"palette"`` (palette PNG: index = class id) or ``"rgb"`` (colour -> id through
    the class map). In a colour-coded (``"rgb"``) dataset every mask is read by its colours:
    a palette PNG (given its palette) by the colour of each index, a single-channel mask by the
    grey (v, v, v). Values or colours that the class map does not know become ``UNKNOWN_INDEX``
    and are counted, never silently mapped. When the class map was inferred (no class file),
    any index 0..254 is accepted: the class map grows to hold it.
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
        # Colour keys sorted for a binary search; the full table is built on the first large lookup.
        keys = np.array([int(pack_rgb(np.array(c.rgb, np.uint8))) for c in class_map], np.uint32)
        order = np.argsort(keys)
        self._color_keys = keys[order]
        self._color_ids = np.array(class_map.ids, np.uint8)[order] if len(class_map) else np.zeros(0, np.uint8)
        self._lut: np.ndarray | None = None
        self._lut_lock = threading.Lock()

    # --- colour lookups --------------------------------------------------------------------
    def _colour_table(self) -> np.ndarray:
        """(2**24,) uint8: class id of every colour key, UNKNOWN_INDEX elsewhere (16 MB, built once)."""
        with self._lut_lock:
            if self._lut is None:
                lut = np.full(1 << 24, UNKNOWN_INDEX, np.uint8)
                lut[self._color_keys] = self._color_ids
                self._lut = lut
            return self._lut

    def ids_of_keys(self, keys: np.ndarray) -> np.ndarray:
        """Class id (uint8) of each colour key; UNKNOWN_INDEX where the class map lacks it."""
        if keys.size > _LUT_ABOVE:
            return self._colour_table()[keys]
        if not len(self._color_keys):
            return np.full(keys.shape, UNKNOWN_INDEX, np.uint8)
        pos = np.clip(np.searchsorted(self._color_keys, keys), 0, len(self._color_keys) - 1)
        return np.where(self._color_keys[pos] == keys, self._color_ids[pos], UNKNOWN_INDEX).astype(np.uint8)

    def _value_colours(self, raw: np.ndarray, mode: str, palette) -> np.ndarray | None:
        """(256, 3) colour of each raw value when this mask is read by colour, else None."""
        if self.encoding != "rgb" or raw.dtype != np.uint8:
            return None
        if mode == "P" and palette is not None:
            return palette_colours(palette)
        if mode == "L":
            return _GREY_COLOURS
        return None

    # --- decoding ------------------------------------------------------------------------
    def decode(self, raw: np.ndarray, mode: str = "L", palette=None) -> tuple[np.ndarray, dict]:
        """Returns (mask uint8 (..., H, W), {unknown value or '#RRGGBB': pixel count}).

        ``raw`` is (H, W) or a batch (B, H, W) of values, or (H, W, 3) colours with mode "RGB";
        ``palette`` is the palette of a mode "P" mask (needed to read it by colour); mode
        ``IDS_MODE`` holds class ids already (checked when it was stored)."""
        if mode == IDS_MODE:
            return np.array(raw, np.uint8), {}  # a copy: the stored one is shared
        if mode == "RGB":
            return self._decode_rgb(raw)
        colours = self._value_colours(raw, mode, palette)
        if colours is not None:
            table = self.ids_of_keys(pack_rgb(colours))
            mask = table[raw]
            if not (table == UNKNOWN_INDEX).any() or not (mask == UNKNOWN_INDEX).any():
                return mask, {}
            return mask, _unknown_colours(np.bincount(raw.ravel(), minlength=256), table, colours)
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
        keys = pack_rgb(raw)
        mask = self.ids_of_keys(keys)
        bad = mask == UNKNOWN_INDEX
        if not bad.any():
            return mask, {}
        vals, counts = count_keys(keys[bad])
        return mask, {key_to_hex(k): int(c) for k, c in zip(vals, counts, strict=True)}

    # --- counting (the statistics pass: no decoded mask is needed) -------------------------
    def count(self, raw: np.ndarray, mode: str = "L", palette=None) -> tuple[np.ndarray, dict]:
        """(pixels per class id (256,) int64 with column UNKNOWN_INDEX = unknown, unknown dict as
        :meth:`decode` gives): the same numbers as ``bincount(decode(...)[0])``, from a bincount
        of the raw values where that is enough (no per-pixel lookup)."""
        if mode == IDS_MODE:
            return np.bincount(raw.ravel(), minlength=256).astype(np.int64), {}
        if mode == "RGB":
            keys = pack_rgb(raw).ravel()
            runs = _runs(keys)
            if runs is not None:  # piecewise constant, as masks are: look up one colour per run
                starts, lengths = runs
                vals, inv = np.unique(keys[starts], return_inverse=True)
                px = np.bincount(inv.ravel(), weights=lengths, minlength=len(vals)).astype(np.int64)
            else:
                vals, px = count_keys(keys)
            ids = self.ids_of_keys(vals)
            counts = np.rint(np.bincount(ids, weights=px, minlength=256)).astype(np.int64)
            bad = ids == UNKNOWN_INDEX
            return counts, {key_to_hex(k): int(c) for k, c in zip(vals[bad], px[bad], strict=True)}
        if raw.dtype != np.uint8:
            mask, unknown = self.decode(raw, mode, palette)
            return np.bincount(mask.ravel(), minlength=256), unknown
        hits = np.bincount(raw.ravel(), minlength=256)
        colours = self._value_colours(raw, mode, palette)
        if colours is not None:
            table = self.ids_of_keys(pack_rgb(colours))
            counts = np.rint(np.bincount(table, weights=hits, minlength=256)).astype(np.int64)
            return counts, (_unknown_colours(hits, table, colours) if counts[UNKNOWN_INDEX] else {})
        values = np.arange(256)
        known = self._known
        if self.encoding == "binary" and mode != "P":
            values[255] = 1
            known = _BINARY_KNOWN
        ok = known[values]
        target = np.where(ok, values, UNKNOWN_INDEX)
        counts = np.rint(np.bincount(target, weights=hits, minlength=256)).astype(np.int64)
        bad = np.flatnonzero(~ok & (hits > 0))
        return counts, {int(v): int(hits[v]) for v in bad}


def _unknown_colours(hits: np.ndarray, table: np.ndarray, colours: np.ndarray) -> dict:
    """{'#RRGGBB': pixels} of the raw values whose colour the class map lacks (a colour that
    two palette entries share is counted once, with both entries' pixels)."""
    out: dict[str, int] = {}
    for v in np.flatnonzero((table == UNKNOWN_INDEX) & (hits > 0)):
        c = rgb_to_hex(colours[v])
        out[c] = out.get(c, 0) + int(hits[v])
    return out


def describe_unknown(unknown: dict, encoding: str) -> str:
    """'unknown mask colours: #FF00FF (120 px), #00FF00 (3 px)' with the biggest first."""
    kind = "colours" if encoding == "rgb" or any(isinstance(k, str) for k in unknown) else "values"
    items = sorted(unknown.items(), key=lambda kv: -kv[1])
    shown = ", ".join(f"{k} ({v} px)" for k, v in items[:6])
    more = f" and {len(items) - 6} more" if len(items) > 6 else ""
    return f"mask {kind} not in the class map: {shown}{more}"
