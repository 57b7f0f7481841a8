"""seglib.edit.canvas_picture: the canvas background redrawn box by box equals the whole picture
drawn at once, through edits, undo and redo, at the zooms the editor uses."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from seglib.data.classmap import ClassInfo, ClassMap
from seglib.edit import raster
from seglib.edit.canvas_picture import CanvasPicture, canvas_picture
from seglib.edit.session import Work

CMAP = ClassMap([ClassInfo(0, "background", "#000000"), ClassInfo(1, "road", "#FF0000"),
                 ClassInfo(2, "tree", "#00FF00"), ClassInfo(3, "roof", "#0000FF")], inferred=False)
H, W = 90, 120


def _scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (H, W, 3)).astype(np.uint8)
    mask = np.zeros((H, W), np.uint8)
    mask[20:60, 30:80] = 1
    mask[50:85, 60:110] = 2
    return image, mask


@pytest.mark.parametrize("size", [(50, 37), (W, H), (3 * W, 3 * H), (200, 150)])   # fit, 1:1, 3x, 5/3x
@pytest.mark.parametrize("outline", [False, True])
def test_redrawing_changed_boxes_equals_drawing_all(size, outline):
    image, mask = _scene()
    work = Work("img", 0, mask.copy(), mask.copy())
    pic = CanvasPicture(image, CMAP, size, 0.5, outline)
    pic.follow(work)
    assert np.array_equal(pic.picture, canvas_picture(image, work.mask, CMAP, size, 0.5, outline))
    rng = np.random.default_rng(1)
    for k in range(25):
        if k % 7 == 6:
            work.step_back()
        elif k % 11 == 10:
            work.step_forward()
        else:
            y0, x0 = int(rng.integers(0, H - 2)), int(rng.integers(0, W - 2))
            box = raster.Box(y0, x0, min(H, y0 + int(rng.integers(1, 15))), min(W, x0 + int(rng.integers(1, 15))))
            work.edit_box(box, np.full(box.shape, int(rng.integers(0, 4)), np.uint8), "brush")
        pic.follow(work)
        assert np.array_equal(pic.picture, canvas_picture(image, work.mask, CMAP, size, 0.5, outline)), k


def test_a_canvas_pixel_shows_the_mask_pixel_under_its_centre():
    image, mask = _scene()
    pic = canvas_picture(np.zeros_like(image), mask, CMAP, (3 * W, 3 * H), 1.0, False)
    assert (pic[3 * 20:3 * 50, 3 * 30:3 * 80] == (255, 0, 0)).all()          # whole 3x3 blocks
    assert (pic[3 * 20 - 1, 3 * 30:3 * 80] == 0).all()
    small = canvas_picture(np.zeros_like(image), mask, CMAP, (W // 2, H // 2), 1.0, False)
    # canvas pixel (v, u) covers image pixels 2v, 2v+1: its centre is on pixel 2v+1
    assert np.array_equal(small[..., 0] == 255, mask[1::2, 1::2] == 1)


def test_only_a_change_is_encoded_again_and_a_restyle_redraws_all():
    image, mask = _scene()
    work = Work("img", 0, mask.copy(), mask.copy())
    pic = CanvasPicture(image, CMAP, (W, H), 0.5, False)
    pic.follow(work)
    url = pic.data_url()
    assert url.startswith("data:image/jpeg;base64,")
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))
    assert decoded.shape == (H, W, 3)
    assert np.abs(decoded.astype(int) - pic.picture).mean() < 8          # a faithful JPEG
    pic.follow(work)
    assert pic.data_url() is url, "nothing changed: the same string, not encoded again"
    work.edit_box(raster.Box(0, 0, 5, 5), np.full((5, 5), 3, np.uint8), "brush")
    pic.follow(work)
    assert pic.data_url() != url
    assert pic.restyle(0.8, True) and not pic.restyle(0.8, True)
    pic.follow(work)
    assert np.array_equal(pic.picture, canvas_picture(image, work.mask, CMAP, (W, H), 0.8, True))
    other = Work("img", 0, mask.copy(), mask.copy())                     # another Work: drawn whole
    pic.follow(other)
    assert np.array_equal(pic.picture, canvas_picture(image, mask, CMAP, (W, H), 0.8, True))
    with pytest.raises(ValueError, match="the mask is 10x10 but the image is 120x90"):
        pic.draw(np.zeros((10, 10), np.uint8))
