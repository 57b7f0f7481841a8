"""Folder datasets follow linked subfolders (at any depth), stop at link cycles, and count a
folder reached twice once."""
from __future__ import annotations

import os

import numpy as np
from PIL import Image

from seglib.data import open_dataset
from seglib.stats import compute_stats


def _pair(images, masks, name, value=100):
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), value, np.uint8)).save(images / f"{name}.png")
    m = np.zeros((8, 8), np.uint8)
    m[:, 4:] = 1
    Image.fromarray(m).save(masks / f"{name}.png")


def codes(ds) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in ds.report.problems:
        out.setdefault(p.code, []).append(p.file)
    return out


def test_nested_linked_folders_are_followed(tmp_path):
    store = tmp_path / "store"  # the files live elsewhere; the dataset is a tree of links
    _pair(store / "imgs", store / "msks", "x")
    _pair(store / "tile2-imgs", store / "tile2-msks", "y", 150)
    os.symlink(store / "tile2-imgs", store / "imgs" / "tile2")   # a link inside a linked folder
    os.symlink(store / "tile2-msks", store / "msks" / "tile2")
    root = tmp_path / "set"
    root.mkdir()
    os.symlink(store / "imgs", root / "images")
    os.symlink(store / "msks", root / "masks")
    os.symlink(tmp_path / "missing", root / "broken")             # a dangling link is skipped
    ds = open_dataset(root)
    assert ds.ids == ["tile2/y", "x"] and ds.labeled_ids == ds.ids
    assert ds.report.problems == []
    stats = compute_stats(ds, use_cache=False)
    assert stats.ids == ds.ids


def test_a_link_cycle_ends_and_is_reported(tmp_path):
    root = tmp_path / "set"
    _pair(root / "images", root / "masks", "a")
    os.symlink(root, root / "images" / "loop")          # back to the top: images/loop/images/loop/...
    os.symlink("..", root / "masks" / "up")             # relative, to its own parent
    os.symlink(".", root / "images" / "here")           # to itself
    ds = open_dataset(root)
    assert ds.ids == ["a"] and ds.labeled_ids == ["a"]
    cycles = codes(ds)["link_cycle"]
    assert sorted(f.removeprefix(str(root) + "/") for f in cycles) == ["images/here", "images/loop", "masks/up"]
    assert all(not p.excluded and "a cycle" in p.problem for p in ds.report.problems)


def test_the_same_folder_reached_twice_counts_once(tmp_path):
    root = tmp_path / "set"
    _pair(root / "images", root / "masks", "a")
    _pair(root / "images", root / "masks", "b", 50)
    os.symlink(root / "images", root / "all-images")    # sorts first, but the real folder wins
    (tmp_path / "other").mkdir()
    os.symlink(root / "masks", tmp_path / "other" / "masks-again")
    os.symlink(tmp_path / "other", root / "more")       # a linked folder holding a second way in
    ds = open_dataset(root)
    assert ds.ids == ["a", "b"] and ds.labeled_ids == ["a", "b"]
    repeats = sorted(f.removeprefix(str(root) + "/") for f in codes(ds)["link_repeat"])
    assert repeats == ["all-images", "more/masks-again"]
    assert "already read as images" in next(p.problem for p in ds.report.problems if p.file.endswith("all-images"))
