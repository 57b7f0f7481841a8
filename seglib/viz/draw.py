"""Overlays, colourised masks and thumbnails as pure numpy functions (pages only display the arrays)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.classmap import ClassMap


def to_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W) or (H, W, 3) -> (H, W, 3)."""
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    return image[..., :3]


def colorize(mask: np.ndarray, class_map: ClassMap) -> np.ndarray:
    """uint8 (H, W) class ids -> (H, W, 3) colours of the class map (unknown = magenta)."""
    return class_map.lut()[mask]


def overlay(image: np.ndarray, mask: np.ndarray | None, class_map: ClassMap, alpha: float = 0.5,
            visible: list[int] | None = None) -> np.ndarray:
    """Blend the colourised mask over the image.

    Args:
        alpha: mask opacity, 0 (image only) to 1 (mask only).
        visible: class ids to draw; others show the bare image. None draws every class.
    Returns:
        uint8 (H, W, 3).
    """
    rgb = to_rgb(image)
    if mask is None or alpha <= 0:
        return rgb.copy()
    # A per-class weight table instead of boolean scatter: 4x faster on a 2000x1800 photo.
    weight = np.full(256, alpha if visible is None else 0.0, np.float32)
    if visible is not None:
        weight[np.asarray(list(visible), dtype=np.int64)] = alpha
    out = rgb.astype(np.float32)
    out += weight[mask][..., None] * (colorize(mask, class_map).astype(np.float32) - out)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def tile(images: list[np.ndarray], cols: int, pad: int = 2, fill: int = 255) -> np.ndarray:
    """Lay (H, W, 3) images of one size out in a grid."""
    h, w = images[0].shape[:2]
    rows = -(-len(images) // cols)
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad, 3), fill, np.uint8)
    for k, im in enumerate(images):
        r, c = divmod(k, cols)
        out[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = to_rgb(im)
    return out


# --- display modes, contours, thumbnails -------------------------------------------------
MODES = ("overlay", "image", "mask", "side_by_side")


def contours(mask: np.ndarray, visible: list[int] | None = None) -> np.ndarray:
    """bool (H, W): pixels on a border between two classes (drawn classes only when ``visible``)."""
    edge = np.zeros(mask.shape, bool)
    edge[:-1] |= mask[:-1] != mask[1:]
    edge[1:] |= mask[1:] != mask[:-1]
    edge[:, :-1] |= mask[:, :-1] != mask[:, 1:]
    edge[:, 1:] |= mask[:, 1:] != mask[:, :-1]
    if visible is not None:
        edge &= np.isin(mask, list(visible))
    return edge


def render(image: np.ndarray, mask: np.ndarray | None, class_map: ClassMap, mode: str = "overlay",
           alpha: float = 0.5, visible: list[int] | None = None, outline: bool = False, gap: int = 4) -> np.ndarray:
    """One view of an image and its mask.

    Args:
        image: uint8 (H, W) or (H, W, 3). mask: uint8 (H, W) class ids or None (unlabeled).
        mode: "overlay" (mask blended at ``alpha``), "image", "mask" (colours only, hidden
            classes black) or "side_by_side" (image | overlay, ``gap`` white pixels apart).
        visible: class ids to draw; None draws every class, [] none.
        outline: also draw class borders in the class colours (overlay modes).
    Returns:
        uint8 (H, W, 3), or (H, 2W + gap, 3) side by side.
    """
    if mode not in MODES:
        raise ValueError(f"unknown display mode {mode!r}; one of {', '.join(MODES)}")
    rgb = to_rgb(image)
    if mode == "image" or mask is None and mode != "side_by_side":
        return rgb.copy()
    if mode == "mask":
        out = colorize(mask, class_map)
        if visible is not None:
            out = np.where(np.isin(mask, list(visible))[..., None], out, 0).astype(np.uint8)
        return out
    over = overlay(rgb, mask, class_map, alpha, visible)
    if outline and mask is not None:
        edge = contours(mask, visible)
        over[edge] = colorize(mask, class_map)[edge]
    if mode == "overlay":
        return over
    out = np.full((rgb.shape[0], 2 * rgb.shape[1] + gap, 3), 255, np.uint8)
    out[:, : rgb.shape[1]] = rgb
    out[:, rgb.shape[1] + gap :] = over
    return out


def thumbnail_pair(image: np.ndarray, mask: np.ndarray | None, size: int = 192) -> tuple[np.ndarray, np.ndarray | None]:
    """Scale an image and its mask so the longer side is about ``size`` pixels.

    Large images shrink with area averaging (image) and nearest neighbour (mask: ids must
    stay ids; it may be larger than a reduced image, see ``SegDataset.load_pair_reduced``); small ones
    grow by a whole factor with nearest neighbour, so that the browser does not blur the class
    borders of a 64x128 crop. Returns the same dtypes and layouts.
    """
    from PIL import Image

    h, w = image.shape[:2]
    longest = max(h, w)
    if longest > size or mask is not None and mask.shape[:2] != (h, w):
        scale = min(size / longest, 1.0)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        image = np.asarray(Image.fromarray(image).resize((nw, nh), Image.Resampling.BOX, reducing_gap=2.0))
        if mask is not None:
            mask = np.asarray(Image.fromarray(mask).resize((nw, nh), Image.Resampling.NEAREST))
        return image, mask
    k = size // longest
    if k >= 2:
        image = image.repeat(k, 0).repeat(k, 1)
        mask = None if mask is None else mask.repeat(k, 0).repeat(k, 1)
    return image, mask


def encode(rgb: np.ndarray, quality: int = 85) -> tuple[bytes, str]:
    """uint8 (H, W, 3) -> (bytes, mime): PNG for small or flat pictures, JPEG for large photos."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    if rgb.shape[0] * rgb.shape[1] <= 256 * 256:
        Image.fromarray(rgb).save(buf, "PNG", compress_level=1)  # small: lossless, fast
        return buf.getvalue(), "image/png"
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue(), "image/jpeg"


def legend_html(class_map: ClassMap, visible: list[int] | None = None) -> str:
    """A one-line legend: a colour square and the name of each class; hidden classes struck out."""
    from html import escape

    items = []
    for c in class_map:
        shown = visible is None or c.id in visible
        style = "" if shown else "text-decoration:line-through;opacity:0.45;"
        items.append(f'<span style="margin-right:14px;white-space:nowrap;{style}">'
                     f'<span style="display:inline-block;width:12px;height:12px;background:{c.color};'
                     f'border:1px solid #888;vertical-align:middle;margin-right:4px"></span>{escape(c.name)}'
                     f'{" (ignored)" if c.ignore else ""}</span>')
    return '<div style="line-height:1.8">' + "".join(items) + "</div>"


# --- views and thumbnails ----------------------------------------------------------------
@dataclass(frozen=True)
class View:
    """How an image is drawn: a :data:`MODES` mode, mask opacity, the class ids drawn (None =
    all) and class outlines. Frozen: it is part of the thumbnail cache key."""

    mode: str = "overlay"
    alpha: float = 0.45
    visible: tuple[int, ...] | None = None
    outline: bool = False

    def draw(self, image: np.ndarray, mask: np.ndarray | None, class_map: ClassMap) -> np.ndarray:
        """uint8 (H, W, 3) (twice as wide side by side) of ``image`` and ``mask``."""
        visible = None if self.visible is None else list(self.visible)
        return render(image, mask, class_map, self.mode, self.alpha, visible, self.outline)


def thumbnail(ds, image_id: str, view: View, size: int = 192) -> tuple[bytes, str]:
    """Encoded picture (bytes, mime) of one image, its longer side about ``size`` pixels.

    The image and mask are scaled before drawing, so a 2000x1800 photo costs one reduced
    decode (a JPEG at 1/8 of its size) and one resize, not a full-size blend. An image that
    cannot be read becomes a grey tile.
    """
    image, mask, _, _ = ds.load_pair_reduced(image_id, longer=size)
    if image is None:
        image, mask = np.full((size // 2, size // 2), 128, np.uint8), None
    image, mask = thumbnail_pair(image, mask, size)
    return encode(view.draw(image, mask, ds.class_map))
