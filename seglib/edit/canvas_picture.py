"""The Label page's canvas background: the image at the canvas size with the working mask blended
over it (and the class outlines), kept between reruns and redrawn only where the mask changed,
then encoded once per change as a JPEG data URL, what the canvas component loads.

A stroke on a 2000x1800 photo changes a few thousand pixels; redrawing and PNG-encoding the whole
composite on every rerun took seconds. Here the image is resized once, a change redraws the
canvas pixels of its box, and the encoding happens only when the picture changed.

>>> pic = CanvasPicture(image, ds.class_map, (740, 666), alpha=0.5, outline=False)
>>> pic.follow(work)          # draws what changed in work.mask since the last call
>>> url = pic.data_url()      # "data:image/jpeg;base64,..." (the same string until the next change)

Canvas pixel ``(v, u)`` shows mask pixel ``(rows[v], cols[u])``, the pixel under its centre
(``floor((v + 0.5) * h / ch)``): the rule the raster uses to turn canvas points into pixels.
"""
from __future__ import annotations

import base64
import io

import cv2
import numpy as np

from .. import viz
from .raster import Box

JPEG_QUALITY = 90


def _centres(n_canvas: int, n_image: int) -> np.ndarray:
    """For each canvas pixel along one axis, the image pixel under its centre."""
    return np.minimum(((np.arange(n_canvas) + 0.5) * n_image / n_canvas).astype(np.int64), n_image - 1)


def canvas_picture(image: np.ndarray, mask: np.ndarray, class_map, size: tuple[int, int], alpha: float,
                   outline: bool) -> np.ndarray:
    """uint8 (ch, cw, 3): the whole picture drawn at once (what :class:`CanvasPicture` keeps up to date)."""
    pic = CanvasPicture(image, class_map, size, alpha, outline)
    pic.draw(mask)
    return pic.picture


class CanvasPicture:
    """The canvas background of one image at one canvas size ``(width, height)``."""

    def __init__(self, image: np.ndarray, class_map, size: tuple[int, int], alpha: float, outline: bool):
        cw, ch = int(size[0]), int(size[1])
        h, w = image.shape[:2]
        self.size = (cw, ch)
        self.image_shape = (h, w)
        self.class_map = class_map
        self.rows, self.cols = _centres(ch, h), _centres(cw, w)
        rgb = viz.to_rgb(image)
        # enlarged: square blocks of whole pixels, so a class border sits on the pixel edges the raster uses
        self.image = (np.ascontiguousarray(rgb[self.rows][:, self.cols]) if cw >= w
                      else cv2.resize(np.ascontiguousarray(rgb), (cw, ch), interpolation=cv2.INTER_AREA))
        self.picture = self.image.copy()
        self.alpha, self.outline = float(alpha), bool(outline)
        self._work = None
        self._gen = -1
        self._url: str | None = None
        self._with: tuple | None = None   # (key, url) of data_url_with's last picture

    def restyle(self, alpha: float, outline: bool) -> bool:
        """Change the opacity or the outlines; True when the picture needs a full redraw."""
        if (float(alpha), bool(outline)) == (self.alpha, self.outline):
            return False
        self.alpha, self.outline = float(alpha), bool(outline)
        self._work = None
        return True

    def _canvas_box(self, box: Box | None) -> Box | None:
        """The canvas pixels that show the image pixels of ``box`` (None: none does)."""
        ch, cw = self.picture.shape[:2]
        if box is None:
            return Box(0, 0, ch, cw)
        v0, v1 = np.searchsorted(self.rows, [box.y0, box.y1])
        u0, u1 = np.searchsorted(self.cols, [box.x0, box.x1])
        shown = Box(int(v0), int(u0), int(v1), int(u1))
        return None if shown.empty else shown

    def draw(self, mask: np.ndarray, box: Box | None = None) -> None:
        """Redraw the canvas pixels that show the image pixels ``box`` of ``mask`` (all when None)."""
        if mask.shape != self.image_shape:
            raise ValueError(f"the mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
                             f"{self.image_shape[1]}x{self.image_shape[0]}")
        target = self._canvas_box(box)
        if target is None:
            return
        shape = self.picture.shape[:2]
        if self.outline:  # a pixel next to a changed one may gain or lose a border...
            target = Box(target.y0 - 1, target.x0 - 1, target.y1 + 1, target.x1 + 1).clip(shape)
        # ...and a border depends on the four neighbours: draw one pixel more around, keep the inside
        drawn = Box(target.y0 - 1, target.x0 - 1, target.y1 + 1, target.x1 + 1).clip(shape) if self.outline else target
        ids = mask[self.rows[drawn.y0:drawn.y1, None], self.cols[None, drawn.x0:drawn.x1]]
        part = viz.render(self.image[drawn.slices], ids, self.class_map, "overlay", self.alpha, None, self.outline)
        self.picture[target.slices] = part[target.within(drawn)]
        self._url = None
        self._with = None

    def follow(self, work) -> None:
        """Bring the picture up to ``work``'s mask (a :class:`~seglib.edit.session.Work`): only the
        box changed since the last call is redrawn; all of it for another Work."""
        if work is not self._work:
            self.draw(work.mask)
        elif work.gen != self._gen:
            box = work.touched_since(self._gen)
            if box is not None:
                self.draw(work.mask, box)
        self._work, self._gen = work, work.gen

    def sample(self, array: np.ndarray) -> np.ndarray:
        """An image-sized (H, W) array at the canvas size: the pixel under each canvas pixel's centre."""
        return np.asarray(array)[self.rows[:, None], self.cols[None, :]]

    def data_url_with(self, key, tint: np.ndarray | None = None, color=(255, 0, 255), alpha: float = 0.55,
                      lines: np.ndarray | None = None, line_color=(255, 255, 0), quality: int = JPEG_QUALITY) -> str:
        """The picture with a proposal over it, as a JPEG data URL: ``tint`` (bool, canvas size)
        blended in ``color`` and outlined, ``lines`` (bool, canvas size) drawn in ``line_color``.
        Encoded once per ``key`` (with the picture unchanged), like :meth:`data_url`."""
        if self._with is not None and self._with[0] == key:
            return self._with[1]
        pic = self.picture.copy()
        if tint is not None and tint.any():
            c = np.asarray(color, np.float32)
            pic[tint] = (pic[tint] * (1 - alpha) + c * alpha).astype(np.uint8)
            edge = tint & ~cv2.erode(tint.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            pic[edge] = np.asarray(color, np.uint8)
        if lines is not None:
            pic[lines] = np.asarray(line_color, np.uint8)
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(pic).save(buf, "JPEG", quality=quality, subsampling=0)
        url = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
        self._with = (key, url)
        return url

    def data_url(self, quality: int = JPEG_QUALITY) -> str:
        """The picture as a JPEG ``data:`` URL, encoded once per change. JPEG: a 2000x1800 PNG took
        seconds to write; no chroma subsampling, so a class border keeps its colours."""
        if self._url is None:
            from PIL import Image

            buf = io.BytesIO()
            Image.fromarray(self.picture).save(buf, "JPEG", quality=quality, subsampling=0)
            self._url = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
        return self._url
