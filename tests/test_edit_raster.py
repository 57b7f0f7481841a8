"""seglib.edit.raster: canvas (Fabric.js) objects -> exact edits of a class-id mask."""
from __future__ import annotations

import math

import numpy as np
import pytest

from seglib.data.classmap import ClassInfo, ClassMap
from seglib.edit import raster

H, W = 40, 60
S = 4.0  # canvas pixels per image pixel


def fabric_path(points, stroke_width: float, commands=None) -> dict:
    """A freedraw path as Fabric stores it after drawing: path commands in canvas pixels, left/top
    at the bounding box minus half the stroke (origin left/top), no transform."""
    cmds = commands or [["M", *points[0]]] + [["L", *p] for p in points[1:]]
    off = raster.path_offset(cmds)
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    w, h = max(xs) - min(xs), max(ys) - min(ys)
    return {"type": "Path", "version": "6.7.1", "originX": "left", "originY": "top",
            "left": off[0] - w / 2 - stroke_width / 2, "top": off[1] - h / 2 - stroke_width / 2,
            "width": w, "height": h, "strokeWidth": stroke_width, "scaleX": 1, "scaleY": 1, "angle": 0,
            "path": cmds, "fill": None, "stroke": "#ff0000"}


def brute_within(points_img, radius) -> np.ndarray:
    """Pixels whose centre lies within radius of the polyline (image continuous coordinates)."""
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    best = np.full((H, W), np.inf)
    pts = np.asarray(points_img, float)
    for a, b in zip(pts[:-1], pts[1:], strict=True):
        d = b - a
        t = np.clip(((xx - a[0]) * d[0] + (yy - a[1]) * d[1]) / (d @ d), 0, 1)
        best = np.minimum(best, np.hypot(xx - a[0] - t * d[0], yy - a[1] - t * d[1]))
    return best <= radius + 1e-9


def test_stroke_changes_exactly_the_pixels_within_half_the_width():
    mask = np.zeros((H, W), np.uint8)
    pts = [(22.0, 30.0), (101.0, 47.0), (150.0, 110.0), (60.0, 140.0)]
    width = 18.0  # canvas px: radius 2.25 image px
    out, changed = raster.apply_objects(mask, [fabric_path(pts, width)], 3, (S, S))
    expected = brute_within([(x / S, y / S) for x, y in pts], width / 2 / S)
    assert np.array_equal(out == 3, expected)
    assert changed == expected.sum() > 0
    assert set(np.unique(out)) == {0, 3}   # exact class ids, nothing blended


def test_curved_freedraw_stroke_follows_the_curve():
    # PencilBrush: M p0 Q p1 mid(p1,p2) Q p2 mid(p2,p3) ... L last
    pts = [(40.0 + 15 * k, 80 + 50 * math.sin(k / 2.5)) for k in range(12)]
    cmds = [["M", *pts[0]]]
    for p, q in zip(pts[1:-1], pts[2:], strict=True):
        cmds.append(["Q", p[0], p[1], (p[0] + q[0]) / 2, (p[1] + q[1]) / 2])
    cmds.append(["L", *pts[-1]])
    obj = fabric_path(pts, 12.0, cmds)
    obj["width"], obj["height"] = 0, 0  # not used for an untransformed stroke's position...
    off = raster.path_offset(cmds)
    obj["left"], obj["top"] = off[0] - 6.0, off[1] - 6.0  # ...when width/height are 0 here
    out, _ = raster.apply_objects(np.zeros((H, W), np.uint8), [obj], 1, (S, S))
    dense = np.concatenate([ln for ln in raster.flatten_path(cmds, step=0.05)]) / S
    r = 6.0 / S
    assert np.array_equal(out == 1, brute_within(dense, r) | (out == 1) & brute_within(dense, r + 0.02))
    assert (brute_within(dense, r - 0.02) <= (out == 1)).all()


def test_stroke_transforms_translate_scale_rotate():
    pts = [(40.0, 40.0), (120.0, 40.0)]
    base = fabric_path(pts, 8.0)
    mask = np.zeros((H, W), np.uint8)
    ref = raster.apply_objects(mask, [base], 1, (S, S))[0] == 1
    moved = dict(base, left=base["left"] + 40, top=base["top"] + 20)  # 10 and 5 image px
    got = raster.apply_objects(mask, [moved], 1, (S, S))[0] == 1
    assert np.array_equal(got, np.roll(np.roll(ref, 5, axis=0), 10, axis=1))
    # rotated 90 degrees about its centre (origin center): a vertical stroke through the same centre
    centred = dict(base, originX="center", originY="center", left=80.0, top=40.0, angle=90)
    vert = raster.apply_objects(mask, [centred], 1, (S, S))[0] == 1
    assert np.array_equal(vert, brute_within([(20, 0), (20, 20)], 1.0))
    # scaled 2x about its centre: twice as long and (the stroke scales too) twice as thick
    scaled = dict(centred, angle=0, scaleX=2, scaleY=2)
    big = raster.apply_objects(mask, [scaled], 1, (S, S))[0] == 1
    assert np.array_equal(big, brute_within([(0, 10), (40, 10)], 2.0))


def test_polygon_fill_area_and_pixel_centres():
    mask = np.zeros((H, W), np.uint8)
    ring = [{"x": 40.0, "y": 20.0}, {"x": 120.0, "y": 20.0}, {"x": 120.0, "y": 60.0}, {"x": 40.0, "y": 60.0}]
    poly = {"type": "Polygon", "points": ring, "left": 40 - 1.0, "top": 20 - 1.0, "width": 80, "height": 40,
            "strokeWidth": 2, "originX": "left", "originY": "top"}
    out, changed = raster.apply_objects(mask, [poly], 2, (S, S))
    assert changed == 20 * 10 and (out[5:15, 10:30] == 2).all()
    tri = {"type": "Polygon", "points": [{"x": 0, "y": 0}, {"x": 200, "y": 0}, {"x": 0, "y": 160}],
           "left": -1.0, "top": -1.0, "width": 200, "height": 160, "strokeWidth": 2}
    out, changed = raster.apply_objects(mask, [tri], 2, (S, S))
    assert abs(changed - 0.5 * 50 * 40) <= 50 + 40  # area within a perimeter's worth of pixels
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    inside = xx / 50 + yy / 40 < 1 - 1e-9
    assert np.array_equal(out == 2, inside | ((out == 2) & (np.abs(xx / 50 + yy / 40 - 1) < 1e-6)))


def test_flood_fill_stops_at_a_boundary_four_connected():
    mask = np.zeros((H, W), np.uint8)
    mask[:, 30] = 1                   # a wall of another class
    mask[10, 10] = 1
    mask[20, 40], mask[21, 41] = 0, 0  # inside the right part anyway
    # a diagonal gap: 8-connectivity would leak through it, 4-connectivity must not
    mask[5:8, 5:8] = 1
    mask[6, 6] = 0
    click = {"type": "Circle", "left": 8 * S - (3 + 1), "top": 20 * S + 2, "radius": 3, "strokeWidth": 2,
             "originX": "left", "originY": "center"}   # the canvas's point mode: centred on the click
    out, changed = raster.apply_objects(mask, [click], 4, (S, S))
    left = np.zeros((H, W), bool)
    left[:, :30] = True
    left &= mask == 0
    left[6, 6] = False                # enclosed by class 1 on its four sides
    assert np.array_equal(out == 4, left)
    assert changed == left.sum()
    assert (out[:, 30:] == mask[:, 30:]).all()


def test_point_outside_the_image_changes_nothing():
    mask = np.zeros((H, W), np.uint8)
    click = {"type": "Circle", "left": -50, "top": -50, "radius": 3, "strokeWidth": 2}
    out, changed = raster.apply_objects(mask, [click], 4, (S, S))
    assert changed == 0 and (out == 0).all()


def test_non_square_scale_and_thin_brush():
    mask = np.zeros((H, W), np.uint8)
    sx, sy = 2.0, 3.0
    obj = fabric_path([(0.0, 3 * 10.5), (2 * 60, 3 * 10.5)], 0.5)  # along row 10's centres
    out, _ = raster.apply_objects(mask, [obj], 7, (sx, sy))
    assert (out[10] == 7).all() and (out != 7).sum() == (H - 1) * W   # a thin stroke still paints its row


def test_background_and_ignore_classes():
    cm = ClassMap([ClassInfo(0, "soil", "#8B4513"), ClassInfo(1, "Background", "#000000"),
                   ClassInfo(9, "void", "#FFFFFF", ignore=True)], inferred=False)
    assert raster.background_class(cm) == 1
    assert raster.ignore_class(cm) == 9
    plain = ClassMap([ClassInfo(0, "soil", "#8B4513"), ClassInfo(2, "rock", "#808080")], inferred=False)
    assert raster.background_class(plain) == 0
    assert raster.ignore_class(plain) is None


def test_svg_string_paths_and_bad_class():
    cmds = "M 10 10 L 50 10"
    obj = fabric_path([(10.0, 10.0), (50.0, 10.0)], 4.0)
    obj["path"] = cmds
    out, changed = raster.apply_objects(np.zeros((H, W), np.uint8), [obj], 1, (S, S))
    assert changed > 0
    with pytest.raises(ValueError):
        raster.apply_objects(np.zeros((H, W), np.uint8), [obj], 300, (S, S))
    unknown = {"type": "Textbox", "text": "hi"}
    assert raster.apply_objects(np.zeros((H, W), np.uint8), [unknown], 1, (S, S))[1] == 0


# --- rasterising only the box an object touches -------------------------------------------------
def _random_strokes(rng, n: int):
    for _ in range(n):
        pts = rng.uniform([-20, -20], [W * S + 20, H * S + 20], (int(rng.integers(1, 6)), 2))
        yield fabric_path([tuple(p) for p in pts], float(rng.uniform(0.5, 40)))


def test_box_rasterisation_equals_the_whole_mask():
    rng = np.random.default_rng(3)
    mask = rng.integers(0, 3, (H, W)).astype(np.uint8)
    for obj in _random_strokes(rng, 40):
        shp = raster.object_shape(obj)
        lines = [raster.to_image(ln, (S, S)) for ln in shp.lines]
        radius = shp.radius / S
        whole = raster.stroke_pixels((H, W), lines, radius)      # every pixel of the mask measured
        found = raster.object_region(obj, mask, (S, S))
        pasted = np.zeros((H, W), bool)
        if found is not None:
            box, where = found
            assert where.shape == box.shape and box.shape[0] <= H and box.shape[1] <= W
            pasted[box.slices] = where
        assert np.array_equal(pasted, whole)
    for _ in range(30):   # polygons, partly outside the mask too
        ring = rng.uniform([-30, -30], [W * S + 30, H * S + 30], (int(rng.integers(3, 8)), 2))
        poly = {"type": "Polygon", "points": [{"x": x, "y": y} for x, y in ring], "originX": "center",
                "originY": "center", "left": float((ring[:, 0].min() + ring[:, 0].max()) / 2),
                "top": float((ring[:, 1].min() + ring[:, 1].max()) / 2), "strokeWidth": 0,
                "width": float(np.ptp(ring[:, 0])), "height": float(np.ptp(ring[:, 1]))}
        whole = raster.polygon_pixels((H, W), raster.to_image(raster.object_shape(poly).lines[0], (S, S)))
        pasted = np.zeros((H, W), bool)
        found = raster.object_region(poly, mask, (S, S))
        if found is not None:
            pasted[found[0].slices] = found[1]
        assert np.array_equal(pasted, whole)


def test_painting_several_objects_touches_only_their_box_in_drawing_order():
    rng = np.random.default_rng(5)
    mask = np.zeros((H, W), np.uint8)
    mask[:, 30] = 1
    objects = list(_random_strokes(rng, 3)) + [
        {"type": "Circle", "left": 8 * S - 4, "top": 20 * S + 2, "radius": 3, "strokeWidth": 2,
         "originX": "left", "originY": "center"}]            # a fill that sees the strokes before it
    expected = mask.copy()
    for obj in objects:                                       # the reference: whole-mask pixels, one by one
        expected[raster.object_pixels(obj, expected, (S, S))] = 2
    box, crop = raster.paint_objects(mask, objects, 2, (S, S))
    got = mask.copy()
    got[box.slices] = crop
    assert np.array_equal(got, expected)
    assert (mask == np.where(np.arange(W) == 30, 1, 0)).all(), "the mask itself is left as it was"
    assert raster.changed_box(mask, expected) is not None
    changed = raster.changed_box(mask, expected)
    assert box.y0 <= changed.y0 and box.x0 <= changed.x0 and box.y1 >= changed.y1 and box.x1 >= changed.x1
    one = fabric_path([(10.0, 10.0), (30.0, 12.0)], 4.0)
    small, _ = raster.paint_objects(mask, [one], 2, (S, S))
    assert small.shape[0] * small.shape[1] < 0.05 * H * W, "one short stroke: a small box"
    assert raster.paint_objects(mask, [{"type": "Textbox"}], 2, (S, S)) is None


def test_a_stroke_paints_the_width_it_was_drawn_with_at_any_zoom():
    """The canvas brush gets the exact width for the radius (no whole canvas pixels: at 0.37x a
    radius of 3 image px would draw 2 canvas px wide and paint 2.7), and the raster reads the width
    from the stroke, not from the slider: a stroke drawn before a radius change keeps its width."""
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    for scale in (0.37, 1.0, 2.7, 4.0):
        for radius in (0.5, 1.0, 3.0, 7.5):
            a, b = (6.3, 9.1), (48.2, 27.7)   # image coordinates
            obj = fabric_path([(a[0] * scale, a[1] * scale), (b[0] * scale, b[1] * scale)],
                              raster.canvas_stroke_width(radius, (scale, scale)))
            got = raster.object_pixels(obj, np.zeros((H, W), np.uint8), (scale, scale))
            d = np.array(b) - np.array(a)
            t = np.clip(((xx - a[0]) * d[0] + (yy - a[1]) * d[1]) / (d @ d), 0, 1)
            dist = np.hypot(xx - a[0] - t * d[0], yy - a[1] - t * d[1])
            assert np.array_equal(got, dist <= max(radius, 0.5) + 1e-6), (scale, radius)
    thin = fabric_path([(20.0, 40.0), (200.0, 40.0)], raster.canvas_stroke_width(1.0, (S, S)))
    wide = fabric_path([(20.0, 80.0), (200.0, 80.0)], raster.canvas_stroke_width(6.0, (S, S)))
    out, _ = raster.apply_objects(np.zeros((H, W), np.uint8), [thin, wide], 1, (S, S))
    rows = np.flatnonzero(out[:, 25] == 1)                      # strokes along rows 9.5 and 19.5
    assert list(rows) == [9, 10] + list(range(14, 26)), "radius 1: 2 rows; radius 6: 12 rows"
