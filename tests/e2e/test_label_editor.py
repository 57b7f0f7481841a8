"""Browser tests of the Label page's mask editor: paint a stroke of a class with the mouse on a demo
image, save, reload, and the stored version differs from the original exactly along the stroke; the
same on a 2000x1800 tile at "fit" and at 1:1 (scrolled), with the brush radius changed between two
strokes and kept through a save and History; at 1:1 the canvas stays in its box beside the palette
and its own floating toolbar covers none of the page's buttons."""
from __future__ import annotations

import re

import numpy as np
import pytest

from .conftest import (
    app_with_runs,
    assert_no_exception,
    open_label,
    press_key_and_wait_chosen,
    stored_versions,
    wait_for_app,
)

pytestmark = pytest.mark.e2e

IMAGE = "00005"


def _shot(pg, name: str) -> None:
    path = f"/tmp/label_{name}.png"
    pg.screenshot(path=path, full_page=True)


def _open(pg, url: str, image_id: str) -> None:
    open_label(pg, url, f"image={image_id}")


def _canvas_box(pg) -> dict:
    box = pg.locator(".dc-container").bounding_box()
    assert box and box["width"] > 100, box
    return box


def _drag(pg, points) -> None:
    pg.mouse.move(*points[0])
    pg.mouse.down()
    for p in points[1:]:
        pg.mouse.move(*p, steps=1)
        pg.wait_for_timeout(15)
    pg.mouse.up()


def _radius(pg) -> float:
    """The brush radius the page shows (image pixels)."""
    text = pg.get_by_text(re.compile(r"^Radius [\d.]+ image px")).first.inner_text()
    return float(re.search(r"Radius ([\d.]+) image px", text).group(1))


def _choose_zoom(pg, label: str) -> None:
    chooser = pg.locator("[data-testid=stSelectbox]").filter(has_text="Canvas zoom").first
    chooser.scroll_into_view_if_needed()      # a click that has to scroll first does not open it
    pg.wait_for_timeout(300)
    chooser.click()
    pg.get_by_role("option", name=label, exact=True).click()
    wait_for_app(pg)
    pg.locator("h1").first.scroll_into_view_if_needed()
    pg.wait_for_timeout(800)


def _polyline(a, b, n: int) -> list[tuple[float, float]]:
    return [(a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t) for t in np.linspace(0, 1, n + 1)]


def _within(shape, pts, radius: float) -> np.ndarray:
    """Pixels whose centre lies within ``radius`` of the polyline (image coordinates)."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]] + 0.5
    best = np.full(shape, np.inf)
    pts = np.asarray(pts, float)
    for a, b in zip(pts[:-1], pts[1:], strict=True):
        d = b - a
        t = np.clip(((xx - a[0]) * d[0] + (yy - a[1]) * d[1]) / max(d @ d, 1e-12), 0, 1)
        best = np.minimum(best, np.hypot(xx - a[0] - t * d[0], yy - a[1] - t * d[1]))
    return best <= radius


def test_paint_save_reload_stored_along_the_stroke(app_url, app_data_dir, page):
    from seglib.data import open_dataset

    pg = page
    _open(pg, app_url, IMAGE)
    assert_no_exception(pg)
    _shot(pg, "1_open")
    ds = open_dataset(app_data_dir / "demo" / "mars_demo.npz")
    original = ds.original_mask(IMAGE)
    h, w = original.shape
    sand = next(c.id for c in ds.class_map.classes if c.name == "sand")
    k = ds.class_map.ids.index(sand) + 1

    press_key_and_wait_chosen(pg, str(k), f"label_class_{sand}")   # the class's shortcut (its place in the palette)
    press_key_and_wait_chosen(pg, "B", "label_tool_brush")
    assert "Painting" in pg.get_by_text(re.compile("^Painting")).first.inner_text()
    box = _canvas_box(pg)
    scale = box["width"] / w
    assert abs(box["height"] / h - scale) < 0.05
    radius = _radius(pg)
    # an L-shaped stroke in image coordinates, drawn at the canvas's scale
    corner_a, corner_b, corner_c = (20.3, 12.6), (90.4, 14.1), (95.2, 50.7)
    img_pts = _polyline(corner_a, corner_b, 24)[:-1] + _polyline(corner_b, corner_c, 16)
    screen = [(box["x"] + x * scale, box["y"] + y * scale) for x, y in img_pts]
    _drag(pg, screen)
    pg.get_by_text(re.compile(r"pixels changed, not saved yet")).wait_for(timeout=30_000)
    wait_for_app(pg)
    _shot(pg, "2_painted")
    pg.get_by_label("Note (saved with the version)").fill("sand along the ridge")
    pg.get_by_role("button", name=re.compile("^Save")).first.click()
    pg.get_by_text("No unsaved change.").wait_for(timeout=30_000)
    wait_for_app(pg)
    assert_no_exception(pg)

    pg.reload()
    _open(pg, app_url, IMAGE)
    pg.locator("[data-testid=stMain]").get_by_text(re.compile("editing from version 1")).wait_for(timeout=30_000)
    _shot(pg, "3_reloaded")

    versions, saved = stored_versions(app_data_dir, ds, IMAGE)
    assert [v.number for v in versions] == [1]
    assert versions[-1].note == "sand along the ridge" and versions[-1].tool == "brush"
    changed = saved != original
    assert changed.any()
    assert set(np.unique(saved[changed])) == {sand}               # exactly the class painted
    assert abs(radius * scale - 4) <= 0.5 * scale                  # the default: a few screen pixels
    assert not (changed & ~_within((h, w), img_pts, radius + 0.75)).any(), "changed pixels off the stroke"
    core = _within((h, w), img_pts, radius - 0.75)
    assert (saved[core] == sand).all(), "pixels on the stroke left unpainted"

    # the History section shows the version and its diff
    pg.get_by_role("radio", name="History").click()
    wait_for_app(pg)
    _shot(pg, "4_history")
    pg.get_by_text(re.compile(r"version 1 · .* vs the original \(file\): \d+ pixels differ")).wait_for(timeout=30_000)
    _shot(pg, "4_history")


@pytest.fixture(scope="module")
def assist_app(tmp_path_factory, demo_npz, trained_runs):
    """The app on a copy of the tiny runs' demo, with the runs' folder as its checkpoints."""
    with app_with_runs(tmp_path_factory, demo_npz, trained_runs, "label-assist-app") as served:
        yield served


def test_accept_one_disagreement_region(assist_app, tall_page):
    from seglib.data import open_dataset

    url, data = assist_app
    image_id = "00001"
    pg = tall_page
    _open(pg, url, image_id)
    pg.get_by_text(re.compile("^Model assist")).click()
    pg.get_by_role("button", name=re.compile("Accept the whole prediction")).wait_for(timeout=120_000)
    wait_for_app(pg)
    _shot(pg, "5_assist")
    accept = pg.locator("[data-testid=stMain] button").filter(has_text=re.compile(r"^(check)?\s*Accept$"))
    assert accept.count() > 0, "a barely trained run disagrees with the label somewhere"
    first = pg.locator("[data-testid=stMain]").get_by_text(re.compile(r"^1\. [\d,]+ px: label ")).inner_text()
    area = int(re.search(r"([\d,]+) px", first).group(1).replace(",", ""))
    pg.mouse.move(0, 0)
    accept.first.click()
    pg.get_by_text(re.compile(r"pixels changed, not saved yet")).wait_for(timeout=30_000)
    wait_for_app(pg)
    assert_no_exception(pg)
    _shot(pg, "5_assist_accepted")
    pg.get_by_role("button", name=re.compile("^Save")).first.click()
    pg.get_by_text("No unsaved change.").wait_for(timeout=30_000)

    ds = open_dataset(data / "demo" / "mars_demo.npz")
    v, saved = stored_versions(data, ds, image_id)
    assert [x.number for x in v] == [1] and v[0].tool == "assist"
    assert int((saved != ds.original_mask(image_id)).sum()) == area, "exactly the region's pixels changed"


def _save(pg) -> None:
    pg.get_by_text(re.compile(r"pixels changed, not saved yet")).wait_for(timeout=30_000)
    wait_for_app(pg)
    pg.keyboard.press("Control+s")      # the Save shortcut
    pg.get_by_text("No unsaved change.").wait_for(timeout=30_000)
    wait_for_app(pg)


def test_polygon_and_flood_fill(app_url, app_data_dir, page):
    from seglib.data import open_dataset

    pg = page
    image_id = "00006"
    _open(pg, app_url, image_id)
    ds = open_dataset(app_data_dir / "demo" / "mars_demo.npz")
    original = ds.original_mask(image_id)
    h, w = original.shape
    big_rock = next(c.id for c in ds.class_map.classes if c.name == "big rock")
    press_key_and_wait_chosen(pg, str(ds.class_map.ids.index(big_rock) + 1), f"label_class_{big_rock}")
    press_key_and_wait_chosen(pg, "P", "label_tool_polygon")
    box = _canvas_box(pg)
    s = box["width"] / w
    corners = [(30.0, 20.0), (70.0, 20.0), (70.0, 40.0), (30.0, 40.0)]
    for x, y in corners + corners[:1]:            # back on the first corner closes it
        pg.mouse.click(box["x"] + x * s, box["y"] + y * s)
        pg.wait_for_timeout(150)
    _save(pg)
    _shot(pg, "6_polygon")

    _, poly = stored_versions(app_data_dir, ds, image_id)
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    inside = (xx > 30.5) & (xx < 69.5) & (yy > 20.5) & (yy < 39.5)
    near = (xx > 29.5) & (xx < 70.5) & (yy > 19.5) & (yy < 40.5)
    assert (poly[inside] == big_rock).all()
    assert not ((poly != original) & ~near).any()

    # flood fill: the 4-connected region of the clicked pixel's class, in bedrock
    bedrock = next(c.id for c in ds.class_map.classes if c.name == "bedrock")
    press_key_and_wait_chosen(pg, str(ds.class_map.ids.index(bedrock) + 1), f"label_class_{bedrock}")
    press_key_and_wait_chosen(pg, "F", "label_tool_fill")
    box = _canvas_box(pg)
    pg.mouse.click(box["x"] + 50.5 * s, box["y"] + 30.5 * s)   # inside the polygon just painted
    _save(pg)
    _shot(pg, "7_fill")
    versions, filled = stored_versions(app_data_dir, ds, image_id)
    assert versions[-1].tool == "fill"
    import cv2
    _, comp = cv2.connectedComponents((poly == big_rock).astype(np.uint8), connectivity=4)
    region = comp == comp[30, 50]
    assert np.array_equal(filled != poly, region)
    assert (filled[region] == bedrock).all()


# --- a 2000x1800 tile ----------------------------------------------------------------------------
TILE_W, TILE_H = 2000, 1800


@pytest.fixture(scope="module")
def tile_folder(tmp_path_factory):
    """A folder with one 2000x1800 RGB photo: background on its left half, other classes on the right."""
    import json

    from PIL import Image

    root = tmp_path_factory.mktemp("tile-data")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    (root / "classes.json").write_text(json.dumps([{"id": i, "name": n} for i, n in
                                                   enumerate(["background", "road", "building", "tree"])]))
    yy, xx = np.mgrid[0:TILE_H, 0:TILE_W]
    mask = np.where(xx < TILE_W // 2, 0, 1 + (yy // 600) % 3).astype(np.uint8)
    rgb = np.stack([60 + xx * 120 // TILE_W, 80 + yy * 100 // TILE_H, 90 + mask * 30], -1).astype(np.uint8)
    Image.fromarray(rgb).save(root / "images" / "tile.jpg", quality=90)
    Image.fromarray(mask).save(root / "masks" / "tile.png")
    return root


def _open_tile(pg, url: str, folder) -> None:
    open_label(pg, url, f"dataset={folder}&image=tile")


def _stroke_in_image(pg, box: dict, scale: float, pts) -> None:
    _drag(pg, [(box["x"] + x * scale, box["y"] + y * scale) for x, y in pts])
    pg.get_by_text(re.compile(r"pixels changed, not saved yet")).wait_for(timeout=30_000)
    wait_for_app(pg)


def _saved_tile(folder, data_dir):
    from seglib.data import open_dataset

    ds = open_dataset(folder)
    return stored_versions(data_dir, ds, "tile")[1], ds.original_mask("tile")


def test_strokes_on_a_2k_tile_paint_exact_ids_at_the_width_set_and_the_radius_stays(app_url, app_data_dir,
                                                                                   tile_folder, page):
    pg = page
    _open_tile(pg, app_url, tile_folder)
    assert_no_exception(pg)
    press_key_and_wait_chosen(pg, "2", "label_class_1")   # road, over the background of the left half
    box = _canvas_box(pg)
    scale = box["width"] / TILE_W
    assert 0.3 < scale < 0.45, "fit"
    first = _radius(pg)
    assert 3 <= first * scale <= 5, "the default brush is a few screen pixels wide, not 2 image px"
    line_a = _polyline((150.0, 200.0), (800.0, 420.0), 30)
    _stroke_in_image(pg, box, scale, line_a)
    slider = pg.locator("[data-testid=stSlider]").filter(has_text="Brush radius").first.get_by_role("slider")
    slider.focus()
    for _ in range(24):                        # +12 image px, then the very next stroke
        pg.keyboard.press("ArrowRight")
    wait_for_app(pg)
    second = _radius(pg)
    assert second == first + 12
    line_b = _polyline((150.0, 900.0), (800.0, 1150.0), 30)
    _stroke_in_image(pg, box, scale, line_b)
    _shot(pg, "8_tile_fit")
    pg.keyboard.press("Control+s")
    pg.get_by_text("No unsaved change.").wait_for(timeout=30_000)
    wait_for_app(pg)
    assert _radius(pg) == second, "the radius is kept after a save"
    pg.get_by_role("radio", name="History").click()
    wait_for_app(pg)
    pg.get_by_role("radio", name="Edit").click()
    wait_for_app(pg)
    pg.locator(".dc-container").first.wait_for(timeout=30_000)
    assert _radius(pg) == second, "the radius is kept after a visit to History"

    saved, original = _saved_tile(tile_folder, app_data_dir)
    changed = saved != original
    assert set(np.unique(saved[changed])) == {1}, "exactly the class painted"
    tol = 1.5 / scale                          # a canvas pixel and a half: the mouse's own rounding
    shape = (TILE_H, TILE_W)
    near = _within(shape, line_a, first + tol) | _within(shape, line_b, second + tol)
    assert not (changed & ~near).any(), "changed pixels off the strokes"
    assert (saved[_within(shape, line_a, first - tol)] == 1).all()
    core_b = _within(shape, line_b, second - tol)
    assert (saved[core_b] == 1).all(), "the stroke after the change paints the new width"
    assert (core_b & ~_within(shape, line_b, first + tol)).any(), "wider than the old radius could paint"


def _overlap(a: dict, b: dict) -> float:
    w = min(a["x"] + a["width"], b["x"] + b["width"]) - max(a["x"], b["x"])
    h = min(a["y"] + a["height"], b["y"] + b["height"]) - max(a["y"], b["y"])
    return max(w, 0) * max(h, 0)


def _hit(pg, box: dict, key: str) -> bool:
    """Whether a click at the middle of ``box`` reaches the element keyed ``key`` (nothing over it)."""
    return pg.evaluate("([x, y, key]) => !!document.elementFromPoint(x, y)?.closest('.st-key-' + key)",
                       [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, key])


def test_at_one_to_one_the_canvas_stays_in_its_box_and_its_toolbar_covers_no_button(app_url, app_data_dir,
                                                                                    tile_folder, page):
    pg = page
    _open_tile(pg, app_url, tile_folder)
    press_key_and_wait_chosen(pg, "3", "label_class_2")   # building
    _choose_zoom(pg, "1:1")
    assert pg.get_by_text(f"{TILE_W}×{TILE_H} px image shown at 1×").count() == 1
    canvas = _canvas_box(pg)
    assert canvas["width"] == TILE_W, "1:1: one screen pixel an image pixel"
    scroller = pg.locator(".st-key-label_canvas_box").bounding_box()
    palette = pg.locator("[data-testid=stColumn]").filter(has=pg.locator(".st-key-label_class_0")).last.bounding_box()
    assert scroller["width"] < 800 and _overlap(scroller, palette) == 0, "the canvas scrolls in its own box"
    for c in range(4):
        key = f"label_class_{c}"
        assert _hit(pg, pg.locator(f".st-key-{key}").bounding_box(), key), "a palette button under the canvas"
    pg.mouse.move(canvas["x"] + 400, canvas["y"] + 200)    # the canvas's toolbar shows on hover
    pg.wait_for_timeout(500)
    toolbar = pg.locator(".dc-toolbar-card").first.bounding_box()
    assert _overlap(toolbar, scroller) == 0, "the canvas's own toolbar lies outside its box: hidden"
    for tool in ("brush", "eraser", "polygon", "fill", "ignore"):
        key = f"label_tool_{tool}"
        assert _hit(pg, pg.locator(f".st-key-{key}").bounding_box(), key), f"the {tool} button is covered"
    for key in ("label_undo", "label_redo"):
        assert _hit(pg, pg.locator(f".st-key-{key}").bounding_box(), key)
    _shot(pg, "9_tile_one_to_one")

    # scrolled: a stroke still lands where it is drawn (image px = screen px + the scroll)
    pg.locator(".st-key-label_canvas_box").evaluate("e => { e.scrollTop = 500; e.scrollLeft = 300; }")
    pg.wait_for_timeout(300)
    canvas = _canvas_box(pg)
    line = _polyline((420.0, 640.0), (700.0, 760.0), 20)
    radius = _radius(pg)
    assert radius == 4.0, "the default at 1:1: four image (= screen) pixels"
    _stroke_in_image(pg, canvas, 1.0, line)
    pg.keyboard.press("Control+s")
    pg.get_by_text("No unsaved change.").wait_for(timeout=30_000)
    saved, original = _saved_tile(tile_folder, app_data_dir)
    mine = _within((TILE_H, TILE_W), line, radius + 1.5)
    changed = (saved != original) & (saved == 2)
    assert changed.any() and not (changed & ~mine).any()
    assert (saved[_within((TILE_H, TILE_W), line, radius - 1.5)] == 2).all()
