"""Class files as people have them (seglib's list, Supervisely's classes.json and meta.json), colour
masks read by colour whatever their PNG kind, file colours that disagree with the masks, and the
inferred class map cached with the dataset."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import seglib.data.folder as folder_mod
from seglib.data import open_dataset
from seglib.data.classmap import ClassMap, rgb_to_hex
from seglib.data.io import MaskDecoder, count_keys, pack_rgb
from seglib.stats import compute_stats

# The aerial set's real mask colours, and the (wrong) colours its classes.json ships for three of them.
MASK = {"Building": (0x3C, 0x10, 0x98), "Land": (0x84, 0x29, 0xF6), "Road": (0x6E, 0xC1, 0xE4),
        "Unlabeled": (0x9B, 0x9B, 0x9B)}
SUPERVISELY = {"classes": [
    {"title": "Building", "shape": "polygon", "color": "#3C1098", "geometry_config": {}, "id": 9501234},
    {"title": "Land", "shape": "polygon", "color": "#8429F6", "geometry_config": {}, "id": 9501235},
    {"title": "Road", "shape": "polygon", "color": "#6EC1E4", "geometry_config": {}, "id": 9501236},
    {"title": "Unlabeled", "shape": "polygon", "color": "#9B9B9B", "geometry_config": {}, "id": 9501237}]}


def _image(path, h, w):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)


def _stripes(h, w, k):
    """(h, w) labels 0..k-1 in vertical stripes."""
    return np.broadcast_to((np.arange(w) * k // w).astype(np.uint8), (h, w)).copy()


def _rgb_mask(path, labels, colours):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.array(colours, np.uint8)[labels]).save(path)


def _palette_mask(path, labels, colours, order):
    """A palette PNG of ``colours[labels]`` whose palette lists the colours in ``order``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    index = np.argsort(order).astype(np.uint8)[labels]
    im = Image.fromarray(index, "P")
    im.putpalette(np.array(colours, np.uint8)[order].ravel().tolist())
    im.save(path)


def _aerial(tmp_path, n=4, class_file="classes.json", doc=SUPERVISELY):
    """n tiles of two sizes: RGB colour masks, the last one a palette PNG in another colour order."""
    colours = list(MASK.values())
    for i in range(n):
        h, w = (12, 16) if i % 2 else (10, 20)
        _image(tmp_path / "images" / f"t{i}.jpg", h, w)
        labels = _stripes(h, w, 4)
        if i == n - 1:
            _palette_mask(tmp_path / "masks" / f"t{i}.png", labels, colours, [2, 0, 3, 1])
        else:
            _rgb_mask(tmp_path / "masks" / f"t{i}.png", labels, colours)
    if class_file:
        (tmp_path / class_file).write_text(json.dumps(doc))
    return tmp_path


# --- the file formats ---------------------------------------------------------------------------
def test_supervisely_classes_json_gives_names_colours_and_file_order_ids(tmp_path):
    ds = open_dataset(_aerial(tmp_path))
    assert ds.encoding == "rgb" and not ds.class_map.inferred
    assert ds.class_map.names == ["Building", "Land", "Road", "Unlabeled"]
    assert ds.class_map.ids == [0, 1, 2, 3]  # Supervisely's server ids are not class indices
    assert ds.class_map.by_id(0).color == "#3C1098" and not ds.class_map.ignore_ids
    stats = compute_stats(ds)
    assert ds.report.problems == []
    h, w = 10, 20
    expected = np.bincount(_stripes(h, w, 4).ravel(), minlength=4)
    assert stats.per_image.loc["t0", [f"px_{c}" for c in range(4)]].tolist() == expected.tolist()


def test_supervisely_meta_json_is_read_when_there_is_no_classes_json(tmp_path):
    doc = {"classes": SUPERVISELY["classes"], "tags": [], "projectType": "images"}
    ds = open_dataset(_aerial(tmp_path, class_file="meta.json", doc=doc))
    assert ds.class_map.names == ["Building", "Land", "Road", "Unlabeled"]
    assert ds.class_map_file.endswith("meta.json")


def test_a_meta_json_without_classes_is_not_a_class_file(tmp_path):
    ds = open_dataset(_aerial(tmp_path, class_file="meta.json", doc={"version": 3, "created": "2020"}))
    assert ds.class_map.inferred and ds.class_map_file is None
    assert not [p for p in ds.report.problems if p.code == "bad_class_map"]


def test_small_distinct_ids_in_the_file_are_used():
    cm = ClassMap.from_json({"classes": [{"title": "a", "color": "#010203", "id": 5},
                                         {"title": "b", "color": "#abc", "id": 2, "ignore": True}]})
    assert cm.ids == [2, 5] and cm.by_id(5).name == "a"
    assert cm.by_id(2).color == "#AABBCC" and cm.ignore_ids == [2]


@pytest.mark.parametrize("doc, words", [
    ({"classes": []}, "at least one class"),
    ({"classes": [{"color": "#000000"}]}, "classes[0] has no 'title'"),
    ({"classes": [{"title": "a", "color": "green"}]}, "not a #RRGGBB colour"),
    ({"classes": [{"title": "a", "color": "#000000"}, {"title": "a", "color": "#FFFFFF"}]}, "appears twice"),
    ({"classes": "Building"}, "with at least one class"),
])
def test_bad_supervisely_files_name_the_file_and_the_fault(tmp_path, doc, words):
    ds = open_dataset(_aerial(tmp_path, doc=doc))
    (problem,) = [p for p in ds.report.problems if p.code == "bad_class_map"]
    assert problem.file.endswith("classes.json") and words in problem.problem
    assert ds.class_map.inferred  # made up from the masks instead


# --- colour masks read by colour -----------------------------------------------------------------
def test_palette_masks_of_a_colour_dataset_are_read_by_their_colours(tmp_path):
    ds = open_dataset(_aerial(tmp_path))
    labels = _stripes(12, 16, 4)
    np.testing.assert_array_equal(ds.mask("t3"), labels)  # the palette PNG, its palette reordered
    raw, mode = ds.raw_mask("t3")
    assert mode == "RGB" and tuple(raw[0, 0]) == MASK["Building"]
    img, mask, problems = ds.load_pair("t3")
    np.testing.assert_array_equal(mask, labels)
    assert problems == []
    pi = compute_stats(ds).per_image
    assert pi.loc["t3", [f"px_{c}" for c in range(4)]].tolist() == np.bincount(labels.ravel()).tolist()
    assert pi["unknown_px"].sum() == 0


def test_without_a_class_file_palette_and_rgb_masks_share_one_inferred_map(tmp_path):
    ds = open_dataset(_aerial(tmp_path, class_file=None))
    assert ds.encoding == "rgb" and ds.class_map.inferred
    stats = compute_stats(ds)
    assert sorted(c.color for c in ds.class_map) == sorted(rgb_to_hex(c) for c in MASK.values())
    assert stats.unknown_pixels == 0
    by_colour = {c.color: c.id for c in ds.class_map}
    building = by_colour["#3C1098"]
    assert stats.per_class().set_index("id").loc[building, "pixels"] == 2 * 10 * 5 + 2 * 12 * 4


def test_grey_masks_of_a_colour_dataset_are_grey_colours(tmp_path):
    _aerial(tmp_path)
    _rgb_mask(tmp_path / "masks" / "t1.png", np.zeros((12, 16), np.int64), [MASK["Unlabeled"]])  # all grey
    ds = open_dataset(tmp_path)
    assert (ds.mask("t1") == 3).all()  # Unlabeled (#9B9B9B), not index 155
    assert compute_stats(ds).per_image.loc["t1", "px_3"] == 12 * 16


def test_index_palettes_stay_indices(tmp_path):
    """VOC-like: every mask a palette PNG with one palette that colours the ids; 255 is a boundary."""
    pal = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (252 * 3) + [224, 224, 192]
    for i in range(3):
        _image(tmp_path / "images" / f"v{i}.jpg", 8, 8)
        m = _stripes(8, 8, 3)
        m[0] = 255
        im = Image.fromarray(m, "P")
        im.putpalette(pal)
        (tmp_path / "masks").mkdir(exist_ok=True)
        im.save(tmp_path / "masks" / f"v{i}.png")
    ds = open_dataset(tmp_path)
    assert ds.encoding == "palette"
    assert ds.mask("v0")[1].tolist() == _stripes(8, 8, 3)[1].tolist()


def test_palettes_that_disagree_between_masks_are_read_by_colour(tmp_path):
    colours = list(MASK.values())[:3]
    for i, order in enumerate([[0, 1, 2], [2, 1, 0]]):
        _image(tmp_path / "images" / f"p{i}.jpg", 6, 6)
        _palette_mask(tmp_path / "masks" / f"p{i}.png", _stripes(6, 6, 3), colours, order)
    ds = open_dataset(tmp_path)
    assert ds.encoding == "rgb"
    np.testing.assert_array_equal(ds.mask("p0"), ds.mask("p1"))  # same colours, same classes


def test_a_class_file_naming_palette_colours_under_other_ids_means_colours(tmp_path):
    colours = list(MASK.values())
    for i in range(2):
        _image(tmp_path / "images" / f"p{i}.jpg", 6, 8)
        _palette_mask(tmp_path / "masks" / f"p{i}.png", _stripes(6, 8, 4), colours, [3, 2, 1, 0])
    (tmp_path / "classes.json").write_text(json.dumps(SUPERVISELY))
    ds = open_dataset(tmp_path)
    assert ds.encoding == "rgb"
    np.testing.assert_array_equal(ds.mask("p0"), _stripes(6, 8, 4))


# --- the class file and the masks disagree -------------------------------------------------------
def test_file_colours_that_disagree_with_the_masks_are_reported_with_pixel_counts(tmp_path):
    doc = json.loads(json.dumps(SUPERVISELY))
    doc["classes"][0]["color"] = "#D0021B"  # the file's Building colour is not the masks'
    doc["classes"].append({"title": "Water", "color": "#50E3C2"})  # never in any mask
    ds = open_dataset(_aerial(tmp_path, doc=doc))
    stats = compute_stats(ds)
    by_code = {p.code: p for p in ds.report.problems}
    missing = by_code["class_file_colours_missing"]
    assert missing.file.endswith("classes.json") and not missing.excluded
    building_px = 2 * 10 * 5 + 2 * 12 * 4  # t0, t2: 10x20 (5 columns of it); t1, t3: 12x16 (4)
    assert f"#3C1098 ({building_px:,} px in 4 masks)" in missing.problem
    unseen = by_code["class_file_colours_unseen"]
    assert "Building #D0021B" in unseen.problem and "Water #50E3C2" in unseen.problem
    assert stats.unknown_pixels == building_px  # counted as unknown, never mapped to a guess
    assert len([p for p in ds.report.problems if p.code == "unknown_class"]) == 4
    # The same report from the cache.
    ds2 = open_dataset(tmp_path)
    compute_stats(ds2)
    assert {p.code for p in ds2.report.problems} >= {"class_file_colours_missing", "class_file_colours_unseen"}


# --- the inferred map is cached, and learns colours outside the sample ---------------------------
def test_a_warm_open_reads_no_mask_and_gives_the_same_map(tmp_path, monkeypatch):
    _aerial(tmp_path, n=6, class_file=None)
    first = open_dataset(tmp_path)
    reads = []
    orig = folder_mod.read_mask_file
    monkeypatch.setattr(folder_mod, "read_mask_file", lambda p: reads.append(p) or orig(p))
    again = open_dataset(tmp_path)
    assert reads == [] and again.encoding == "rgb"
    assert again.class_map.to_list() == first.class_map.to_list() and again.class_map.inferred
    # A changed mask changes the fingerprint: the map is recognised afresh.
    _rgb_mask(tmp_path / "masks" / "t0.png", _stripes(10, 20, 2), [(1, 2, 3), (4, 5, 6)])
    third = open_dataset(tmp_path)
    assert reads and "#010203" in [c.color for c in third.class_map]


def test_colours_only_in_unsampled_masks_become_classes(tmp_path):
    colours = list(MASK.values())
    for i in range(40):  # the open samples 5 of 40 masks
        _image(tmp_path / "images" / f"t{i:02d}.png", 4, 8)
        labels = _stripes(4, 8, 2)
        _rgb_mask(tmp_path / "masks" / f"t{i:02d}.png", labels, colours[:2] if i != 7 else [colours[0], (9, 9, 9)])
    ds = open_dataset(tmp_path)
    assert "#090909" not in [c.color for c in ds.class_map]
    stats = compute_stats(ds)
    rare = next(c for c in ds.class_map if c.color == "#090909")
    assert rare.id == 2 and stats.per_image.loc["t07", "px_2"] == 16
    assert stats.unknown_pixels == 0 and not [p for p in ds.report.problems if p.code == "unknown_class"]
    assert "#090909" in [c.color for c in open_dataset(tmp_path).class_map]  # remembered for the next open


# --- the decoder --------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding, inferred", [("index", True), ("index", False), ("binary", True),
                                                ("palette", True), ("rgb", False)])
def test_counting_gives_the_numbers_of_decoding(encoding, inferred):
    rng = np.random.default_rng(1)
    cm = ClassMap.from_list([{"id": 0, "name": "a", "color": "#000000"}, {"id": 1, "name": "b", "color": "#FF0000"},
                             {"id": 3, "name": "c", "color": "#9B9B9B"}])
    cm.inferred = inferred
    dec = MaskDecoder(cm, encoding)
    colours = np.array([[0, 0, 0], [255, 0, 0], [155, 155, 155], [1, 2, 3]], np.uint8)
    palette = [tuple(c) for c in colours] + [(7, 7, 7)] * 252
    for raw, mode, pal in [
        (rng.choice(np.array([0, 1, 3, 7, 255], np.uint8), (90, 70)), "L", None),
        (rng.choice(np.array([0, 1, 2, 3], np.uint8), (90, 70)), "P", palette),
        (colours[rng.integers(0, 4, (90, 70))], "RGB", None),
        (np.repeat(colours[rng.integers(0, 4, (300, 1))], 70, axis=1), "RGB", None),  # long runs
    ]:
        mask, unknown = dec.decode(raw, mode, pal)
        counts, unknown2 = dec.count(raw, mode, pal)
        assert counts.tolist() == np.bincount(mask.ravel(), minlength=256).tolist()
        assert unknown2 == unknown


def test_count_keys_is_np_unique_with_counts():
    rng = np.random.default_rng(2)
    for keys in [rng.integers(0, 5, 1000).astype(np.uint32), np.repeat(rng.integers(0, 1 << 24, 30), 50),
                 np.zeros(0, np.uint32)]:
        vals, n = count_keys(keys)
        u, c = np.unique(keys, return_counts=True)
        assert vals.tolist() == u.tolist() and n.tolist() == c.tolist()
    assert pack_rgb(np.array([[0x3C, 0x10, 0x98]], np.uint8)).tolist() == [0x3C1098]


# --- the background class -----------------------------------------------------------------------
def _listed(*entries):
    return ClassMap.from_list([{"id": i, "name": n, **extra} for i, n, extra in entries])


def test_the_class_file_says_which_class_is_background():
    marked = _listed((0, "Water", {}), (1, "Land", {"background": True}), (2, "background", {}))
    assert marked.background_id == 1 and marked.background_name == "Land"  # marked beats named
    assert marked.to_list()[1]["background"] is True and "background" not in marked.to_list()[0]
    assert ClassMap.from_list(marked.to_list()).background_id == 1  # survives the caches' round trip
    for name in ("Background", " bg ", "__bg__", "_background_"):
        assert _listed((0, "Water", {}), (4, name, {})).background_id == 4
    # A class file that names none has none, even when class 0 is Water.
    assert _listed((0, "Water", {}), (1, "Land", {})).background_id is None
    # A made-up map keeps seglib's old convention: id 0.
    assert ClassMap.default([0, 1, 2]).background_id == 0 and ClassMap.default([1, 2]).background_id is None


def test_supervisely_background_flag_and_title():
    doc = {"classes": [{"title": "Water", "color": "#50E3C2"},
                       {"title": "Land", "color": "#F5A623", "background": True}]}
    assert ClassMap.from_supervisely(doc).background_id == 1
    doc = {"classes": [{"title": "Water", "color": "#50E3C2"}, {"title": "__bg__", "color": "#000000"}]}
    assert ClassMap.from_supervisely(doc).background_id == 1


@pytest.mark.parametrize("entries, words", [
    ([{"id": 0, "name": "a", "background": True}, {"id": 1, "name": "b", "background": True}],
     "ids 0 and 1 are both marked background"),
    ([{"id": 0, "name": "a", "background": "yes"}], "'background' must be true or false"),
])
def test_bad_background_marks_name_the_file(tmp_path, entries, words):
    path = tmp_path / "classes.json"
    path.write_text(json.dumps(entries))
    with pytest.raises(ValueError, match=words) as e:
        ClassMap.load(path)
    assert str(path) in str(e.value)


def test_training_metrics_and_the_eraser_use_the_class_files_background():
    from seglib.edit import raster
    from seglib.metrics import scores
    from seglib.train.data import background_note, class_layout

    water_first = _listed((0, "Water", {}), (1, "Land", {}), (2, "Road", {}))
    assert class_layout(water_first) == (3, [0, 1, 2], None)
    assert "no background class" in background_note(water_first)
    cm = np.array([[50, 5, 0], [5, 30, 5], [0, 5, 20]])
    s = scores(cm, water_first.names, [0, 1, 2], class_layout(water_first)[2])
    assert s["miou_no_bg"] == s["miou"]  # no background: nothing left out
    marked = _listed((0, "Water", {}), (1, "Land", {"background": True}), (2, "Road", {}))
    layout = class_layout(marked)
    assert layout[2] == 1 and "Land (id 1)" in background_note(marked)
    s = scores(cm, marked.names, layout[1], layout[2])
    assert s["miou_no_bg"] == pytest.approx(np.mean([50 / 60, 20 / 30]))
    assert raster.background_class(marked) == 1 and raster.background_class(water_first) == 0
    ignored = _listed((0, "background", {"ignore": True}), (1, "Land", {}))
    assert class_layout(ignored)[2] is None  # an ignored class is never scored: nothing to leave out
    demo = _listed((0, "background", {}), (1, "soil", {}))
    assert class_layout(demo)[2] == 0 and raster.background_class(demo) == 0  # the demo and its runs as before
