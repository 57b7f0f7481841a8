"""A class file written from the masks' colours (seglib.data.class_fix and ``seglib classes``), and
an edited class file seen by the next open: the aerial set whose classes.json misses every colour."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from aerial_tiles import FILE_CLASSES, MASK_COLOURS, pixels_of, write_aerial
from PIL import Image

from seglib.cli import main
from seglib.data import open_dataset
from seglib.data.class_fix import (
    class_file_from_mask_colours,
    fix_problem,
    mask_colours,
    parse_names,
    save_class_file,
)
from seglib.data.classmap import class_files_state
from seglib.stats import compute_stats

SIZES = ((40, 60), (50, 40))
RIGHT = {colour: name for name, colour in MASK_COLOURS.items()}


def _opened(root):
    ds = open_dataset(root)
    return ds, compute_stats(ds)


@pytest.fixture
def aerial(tmp_path):
    return write_aerial(tmp_path / "aerial", sizes=SIZES)


# --- the library -------------------------------------------------------------------------------
def test_the_masks_colours_are_listed_most_pixels_first_with_their_counts(aerial):
    ds, stats = _opened(aerial)
    colours = mask_colours(stats)
    assert [c.color for c in colours] == list(MASK_COLOURS.values())
    assert [c.pixels for c in colours] == [pixels_of(SIZES, n) for n in MASK_COLOURS]
    assert all(c.masks == 2 and c.class_id is None for c in colours)
    assert stats.n_unknown_values == 6 and stats.unknown_pixels == sum(h * w for h, w in SIZES)
    # The same from the cache.
    again = compute_stats(open_dataset(aerial))
    assert again.from_cache and mask_colours(again) == colours


def test_names_by_order_keep_the_files_format_keys_and_ids(aerial):
    ds, stats = _opened(aerial)
    fix = class_file_from_mask_colours(ds, stats)
    # The file's names in its order, on the colours most pixels first: its ids stay.
    assert fix.class_map.names == [name for name, _ in FILE_CLASSES]
    assert [c.color for c in fix.class_map] == list(MASK_COLOURS.values())
    assert fix.class_map.ids == list(range(6))
    entries = fix.document["classes"]
    assert [e["id"] for e in entries] == [9501230 + k for k in range(6)]  # Supervisely's server ids, as they were
    assert all(e["shape"] == "polygon" and e["geometry_config"] == {} for e in entries)


def test_chosen_names_and_the_rest_by_order(aerial):
    ds, stats = _opened(aerial)
    fix = class_file_from_mask_colours(ds, stats, {"#3c1098": "Building", "#8429F6": "Land (unpaved area)"})
    named = {c.color: c.name for c in fix.class_map}
    assert named["#3C1098"] == "Building" and named["#8429F6"] == "Land (unpaved area)"
    # The other four take the unused names in the file's order, most pixels first.
    assert [named[c] for c in ("#6EC1E4", "#FEDD3A", "#E2A929", "#9B9B9B")] == [
        "Water", "Road", "Vegetation", "Unlabeled"]
    # Each name keeps the id it had in the file (Supervisely: its place).
    assert {c.name: c.id for c in fix.class_map} == {name: k for k, (name, _) in enumerate(FILE_CLASSES)}


def test_all_right_names_make_every_pixel_known_once_saved(aerial):
    original = (aerial / "classes.json").read_bytes()
    ds, stats = _opened(aerial)
    backup = save_class_file(class_file_from_mask_colours(ds, stats, RIGHT))
    assert backup == aerial / "classes.orig.json" and backup.read_bytes() == original
    ds2, stats2 = _opened(aerial)
    assert stats2.unknown_pixels == 0 and not ds2.report.problems
    per_class = stats2.per_class().set_index("name")
    for name in MASK_COLOURS:
        assert per_class.loc[name, "pixels"] == pixels_of(SIZES, name)
    # A second save keeps the first backup and the file it replaces.
    first = (aerial / "classes.json").read_bytes()
    assert save_class_file(class_file_from_mask_colours(ds2, stats2)) == aerial / "classes.orig-2.json"
    assert (aerial / "classes.orig.json").read_bytes() == original
    assert (aerial / "classes.orig-2.json").read_bytes() == first


def test_new_colours_get_new_ids_after_the_files(tmp_path):
    """A seglib list with flags: kept on the names; a colour beyond the file's names is a new class."""
    root = write_aerial(tmp_path / "aerial", sizes=SIZES, class_file=False)
    (root / "classes.json").write_text(json.dumps([
        {"id": 0, "name": "Land (unpaved area)", "color": "#8429F6"},
        {"id": 3, "name": "Unlabeled", "color": "#010101", "ignore": True},
        {"id": 7, "name": "Building", "color": "#020202", "background": True}]))
    ds, stats = _opened(root)
    fix = class_file_from_mask_colours(ds, stats, {"#9B9B9B": "Unlabeled", "#3C1098": "Building"})
    by_name = {c.name: c for c in fix.class_map}
    assert by_name["Land (unpaved area)"].id == 0 and by_name["Land (unpaved area)"].color == "#8429F6"
    assert by_name["Unlabeled"].id == 3 and by_name["Unlabeled"].ignore
    assert by_name["Building"].id == 7 and by_name["Building"].background
    new = sorted((c.id, c.name, c.color) for c in fix.class_map if c.id > 7)
    assert new == [(8, "class_8", "#6EC1E4"), (9, "class_9", "#FEDD3A"), (10, "class_10", "#E2A929")]
    assert isinstance(fix.document, list) and fix.document[0] == {
        "id": 0, "name": "Land (unpaved area)", "color": "#8429F6", "ignore": False}


def test_a_meta_json_keeps_its_other_keys(tmp_path):
    root = write_aerial(tmp_path / "aerial", sizes=SIZES, class_file=False)
    meta = {"classes": [{"title": t, "shape": "bitmap", "color": c} for t, c in FILE_CLASSES],
            "tags": [{"name": "checked"}], "projectType": "images"}
    (root / "meta.json").write_text(json.dumps(meta))
    ds, stats = _opened(root)
    fix = class_file_from_mask_colours(ds, stats, RIGHT)
    assert fix.path == root / "meta.json"
    assert fix.document["tags"] == [{"name": "checked"}] and fix.document["projectType"] == "images"
    save_class_file(fix)
    assert (root / "meta.orig.json").exists()
    assert _opened(root)[1].unknown_pixels == 0


@pytest.mark.parametrize("names, words", [
    ({"#123456": "Water"}, "not a colour of the masks"),
    ({"#8429F6": "Water", "#3C1098": "Water"}, "both named 'Water'"),
    ({"#8429F6": " "}, "empty class name"),
])
def test_bad_names_are_refused_naming_the_colour(aerial, names, words):
    ds, stats = _opened(aerial)
    with pytest.raises(ValueError, match=words):
        class_file_from_mask_colours(ds, stats, names)


def test_index_masks_have_no_colours_to_name(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "images" / "a.png")
    Image.fromarray(np.ones((4, 4), np.uint8)).save(tmp_path / "masks" / "a.png")
    ds, stats = _opened(tmp_path)
    assert "not colours" in fix_problem(ds, stats)
    with pytest.raises(ValueError, match="not colours"):
        class_file_from_mask_colours(ds, stats)


def test_parse_names():
    assert parse_names("Land (unpaved area)=#8429f6, Building=3C1098") == {
        "#8429F6": "Land (unpaved area)", "#3C1098": "Building"}
    with pytest.raises(ValueError, match="NAME=#RRGGBB"):
        parse_names("Building")
    with pytest.raises(ValueError, match="named twice"):
        parse_names("a=#010101,b=#010101")


# --- an edited class file is seen --------------------------------------------------------------
def test_an_edit_that_keeps_size_and_mtime_is_seen(aerial):
    """A colour changed for another of the same length, the file's time set back: the class file's
    state, the dataset's fingerprint and the classes all change."""
    path = aerial / "classes.json"
    before = class_files_state(aerial)
    fingerprint = _opened(aerial)[0].fingerprint()
    info = path.stat()
    text = path.read_text().replace(FILE_CLASSES[0][1], MASK_COLOURS["Water"])
    path.write_text(text)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert path.stat().st_size == info.st_size and path.stat().st_mtime_ns == info.st_mtime_ns
    assert class_files_state(aerial) != before
    ds2, stats2 = _opened(aerial)
    assert ds2.fingerprint() != fingerprint and not stats2.from_cache
    assert ds2.class_map.by_id(0).color == MASK_COLOURS["Water"]
    assert stats2.per_class().set_index("name").loc["Water", "pixels"] == pixels_of(SIZES, "Water")


# --- the command -------------------------------------------------------------------------------
def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_lists_the_classes_and_the_colours_the_file_lacks(aerial, capsys):
    code, out, _ = cli(capsys, "classes", aerial, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["encoding"] == "rgb" and doc["class_file"].endswith("classes.json")
    assert [c["name"] for c in doc["classes"]] == [n for n, _ in FILE_CLASSES]
    assert [(c["color"], c["pixels"], c["class"]) for c in doc["mask_colours"]] == [
        (colour, pixels_of(SIZES, name), None) for name, colour in MASK_COLOURS.items()]
    assert [p["code"] for p in doc["problems"]] == ["class_file_colours_missing", "class_file_colours_unseen"]
    code, out, _ = cli(capsys, "classes", aerial)
    assert code == 0 and out.count("NOT IN THE CLASS FILE") == 6


def test_cli_writes_from_the_masks(aerial, capsys):
    pairs = ",".join(f"{name}={colour}" for name, colour in MASK_COLOURS.items())
    code, out, _ = cli(capsys, "classes", aerial, "--write-from-masks", "--names-by", pairs, "--out", "-")
    assert code == 0 and [c["title"] for c in json.loads(out)["classes"]] == [n for n, _ in FILE_CLASSES]
    assert not (aerial / "classes.orig.json").exists()  # printed only
    code, out, _ = cli(capsys, "classes", aerial, "--write-from-masks", "--names-by", pairs, "--json")
    doc = json.loads(out)
    assert code == 0 and doc["written"].endswith("classes.json") and doc["backup"].endswith("classes.orig.json")
    assert {c["name"]: c["color"] for c in doc["classes"]} == MASK_COLOURS
    code, out, _ = cli(capsys, "classes", aerial, "--json")
    assert all(c["class"] == RIGHT[c["color"]] for c in json.loads(out)["mask_colours"])
    other = aerial / "elsewhere.json"
    code, out, _ = cli(capsys, "classes", aerial, "--write-from-masks", "--out", other)
    assert code == 0 and json.loads(other.read_text())["classes"][0]["title"] == "Water"


@pytest.mark.parametrize("argv, words", [
    (["--names-by", "Water=#8429F6"], "go with --write-from-masks"),
    (["--write-from-masks", "--names-by", "Water"], "--names-by: 'Water': expected NAME=#RRGGBB"),
    (["--write-from-masks", "--names-by", "Water=#123456"], "#123456: not a colour of the masks"),
    (["--write-from-masks", "--out", "-", "--json"], "use one of them"),
])
def test_cli_errors_are_one_line(aerial, capsys, argv, words):
    code, out, err = cli(capsys, "classes", aerial, *argv)
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(lines) == 1 and words in lines[0] and not out
