"""The split by group: whole groups on one side, stratified as far as groups allow, seeded; the leak
counter; the split a training draws (by image, folder or overlap) recorded in its config and
warned about in the log and on stderr; ``seglib train --split-by``."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from crop_datasets import write_crops

from seglib.cli.train import config_from_args
from seglib.outliers import detect, shared_pixel_groups
from seglib.train import ConfigError, TrainConfig
from seglib.train.data import prepare_data
from seglib.train.split import folder_groups, group_split, split_groups, split_leaks
from seglib.train.split_plan import planned_leak, planned_split


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    """30 labeled crops, 10 from each of 3 scenes, in folders tile0..tile2."""
    root = tmp_path_factory.mktemp("split-crops") / "aerial"
    return root, write_crops(root)


def _groups_dataset(n_groups=40, seed=0):
    """ids in groups of 1-9 images; class 2 (rare) only in 4 groups, class 1 in most."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 10, n_groups)
    groups = np.repeat([f"g{k}" for k in range(n_groups)], sizes)
    ids = [f"img{k:03d}" for k in range(len(groups))]
    presence = np.zeros((len(ids), 3), bool)
    presence[:, 0] = True
    presence[:, 1] = rng.random(len(ids)) < 0.6
    for g in ("g3", "g11", "g20", "g31"):
        presence[groups == g, 2] = True
    return ids, presence, list(groups)


def test_group_split_keeps_groups_whole_and_the_rare_class_on_both_sides():
    ids, presence, groups = _groups_dataset()
    train, val = group_split(ids, presence, groups, 0.2, seed=0)
    assert sorted(train + val) == sorted(ids) and not set(train) & set(val)
    side = {i: "val" if i in set(val) else "train" for i in ids}
    by_group: dict[str, set] = {}
    for i, g in zip(ids, groups, strict=True):
        by_group.setdefault(g, set()).add(side[i])
    assert all(len(s) == 1 for s in by_group.values())  # no group on both sides
    rare = {i for i, p in zip(ids, presence, strict=True) if p[2]}
    assert rare & set(train) and rare & set(val)
    assert 0.12 <= len(val) / len(ids) <= 0.3
    assert group_split(ids, presence, groups, 0.2, seed=0) == (train, val)  # seeded
    assert group_split(ids, presence, groups, 0.2, seed=1) != (train, val)
    assert train == [i for i in ids if i in set(train)]  # in the order of ids


def test_group_split_needs_two_groups_and_folders_name_them():
    ids = ["Tile 3/x_1", "Tile 3/x_2", "Tile 4/x_1", "loose"]
    folders = folder_groups(ids)
    assert folders[:3] == ["Tile 3", "Tile 3", "Tile 4"] and folders[3] not in folders[:3]
    presence = np.ones((4, 1), bool)
    with pytest.raises(ValueError, match="one group \\('Tile 3'\\)"):
        group_split(ids[:2], presence[:2], folder_groups(ids[:2]))
    assert split_groups("image", ids, dict) is None
    alone = split_groups("overlap", ids, lambda: {"Tile 3/x_1": "g1", "Tile 4/x_1": "g1"})
    assert alone[0] == alone[2] == "g1" and len(set(alone)) == 3
    with pytest.raises(ValueError, match="choose from image, folder, overlap"):
        split_groups("source", ids, dict)


def test_split_leaks_counts_groups_on_both_sides():
    shared = {"a": "g1", "b": "g1", "c": "g1", "d": "g2", "e": "g2", "f": "g3", "g": "g3"}
    leak = split_leaks(shared, train_ids=["a", "b", "d", "e", "x", "f"], val_ids=["c", "g", "y"])
    assert (leak.groups, leak.images, leak.val_images, leak.total_groups) == (2, 5, 2, 3)
    assert leak.words() == "2 of 3 groups of images that share pixels (5 images, 2 of them in validation)"
    assert not split_leaks(shared, ["a", "b", "c", "x"], ["d", "e", "y"])


def test_training_split_by_overlap_or_folder_keeps_sources_apart(crops):
    root, placed = crops
    logs: list[str] = []
    by_image = TrainConfig(data=str(root), val_fraction=0.3)
    data = prepare_data(by_image, log=logs.append)
    split = by_image.resolved["split"]
    assert split["by"] == "image" and split["checked"] and split["groups"] == 3 and split["groups_cut"] >= 2
    assert split["val_images_sharing"] == len(data.val_ids)  # every crop shares pixels with another
    assert any(m.startswith("warning: the image split puts") and "a split by overlap" in m for m in logs)
    for by in ("overlap", "folder"):
        logs.clear()
        cfg = TrainConfig(data=str(root), val_fraction=0.3, split_by=by)
        data = prepare_data(cfg, log=logs.append)
        sources = [{placed[i][0] for i in part} for part in (data.train_ids, data.val_ids)]
        assert not sources[0] & sources[1] and sources[1]
        assert cfg.resolved["split"]["groups_cut"] == 0 and not any("warning" in m for m in logs)
        assert json.loads(json.dumps(cfg.to_dict()))["split_by"] == by  # recorded in config.json
    # the split the Train page shows is the split that trains
    ds = data.ds
    shared = shared_pixel_groups(detect(ds, data.stats))
    for by in ("image", "folder", "overlap"):
        cfg = TrainConfig(data=str(root), val_fraction=0.3, split_by=by, seed=3)
        trained = prepare_data(TrainConfig(data=str(root), val_fraction=0.3, split_by=by, seed=3), log=logs.append)
        assert planned_split(cfg, ds, data.stats, shared) == (trained.train_ids, trained.val_ids)
    assert planned_leak(TrainConfig(data=str(root), val_fraction=0.3, split_by="overlap"), ds, data.stats,
                        shared).groups == 0


def test_a_split_by_folder_of_one_folder_is_refused(tmp_path):
    root = tmp_path / "one"
    write_crops(root, n_sources=1, per_source=4)
    with pytest.raises(ConfigError, match="split by folder: all 4 images are in one group \\('tile0'\\)"):
        prepare_data(TrainConfig(data=str(root), split_by="folder"), log=lambda m: None)
    with pytest.raises(ConfigError, match="split_by = 'tiles': choose from image, folder, overlap"):
        TrainConfig(data=str(root), split_by="tiles").validate()


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "seglib", *args], capture_output=True, text=True, timeout=600)


def test_cli_split_by_and_its_warning(tmp_path):
    """One training: a split by folder where a folder holds crops of two scenes leaks, and says so."""
    root = tmp_path / "mixed"
    write_crops(root, n_sources=2, per_source=6)
    for k in range(3):  # three crops of scene 1 filed under tile0
        for d, ext in (("images", "jpg"), ("masks", "png")):
            (root / d / "tile1" / f"crop_{k:02d}.{ext}").rename(root / d / "tile0" / f"moved_{k:02d}.{ext}")
    r = _cli("train", str(root), "--out", str(tmp_path / "run"), "--split-by", "folder", "--arch", "Unet",
             "--encoder", "mobilenet_v2", "--epochs", "1", "--batch-size", "4", "--max-steps-per-epoch", "1",
             "--device", "cpu", "--quiet", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    warning = [line for line in r.stderr.splitlines() if line.startswith("warning: the folder split puts 1 of 2 ")]
    assert len(warning) == 1 and warning[0].endswith("(--split-by overlap)"), r.stderr[-2000:]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["split_by"] == "folder" and config["resolved"]["split"]["groups_cut"] == 1
    folders = [{i.split("/")[0] for i in config[part]} for part in ("train_ids", "val_ids")]
    assert len(folders[0]) == len(folders[1]) == 1 and folders[0] != folders[1]  # whole folders
    bad = _cli("train", str(root), "--out", str(tmp_path / "x"), "--split-by", "tiles")
    assert bad.returncode != 0 and "invalid choice: 'tiles'" in bad.stderr


def test_config_from_args_reads_split_by():
    from seglib.cli import build_parser

    args = build_parser().parse_args(["train", "data", "--out", "run", "--split-by", "folder"])
    assert config_from_args(args).split_by == "folder"
    assert config_from_args(build_parser().parse_args(["train", "data", "--out", "run"])).split_by == "image"
