"""Exports: the flags CSV and cleaned copies of .npz and folder datasets."""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from seglib.cli import main
from seglib.data import open_dataset
from seglib.review import ReviewStore, dataset_key, export


@pytest.fixture
def store(tmp_path):
    s = ReviewStore(f"sqlite:///{tmp_path / 'review.db'}")
    yield s
    s.close()


def test_flags_csv_has_the_decision_columns(tmp_path, store):
    store.flag("k", ["00003", "00004"], reason="blank", detector="quality", score=0.8)
    store.set_state("k", ["00003"], "exclude", note="empty frame")
    path = export.export_flags_csv(store, "k", tmp_path / "out" / "flags.csv")
    df = pd.read_csv(path, dtype={"image_id": str})
    assert list(df.columns) == ["image_id", "state", "reason", "note", "detector", "score", "who", "at"]
    row = df.set_index("image_id").loc["00003"]
    assert row[["state", "note", "reason"]].tolist() == ["exclude", "empty frame", "blank"]
    assert not list(path.parent.glob(".*.tmp"))


def test_clean_npz_drops_excluded_rows(tmp_path, demo_npz, store):
    ds = open_dataset(demo_npz)
    key = dataset_key(ds)
    store.flag(key, ["00000", "00005", "test/00001"])
    store.set_state(key, ["00005", "test/00001", "00299"], "exclude")
    out = tmp_path / "clean.npz"
    summary = export.export_clean(ds, out, export.excluded_ids(store, key) + ["nope"])
    assert summary["n_excluded"] == 3 and summary["unknown"] == ["nope"]
    with np.load(demo_npz) as src, np.load(out) as z:
        assert set(z.files) == set(src.files)
        ts, test = src["training_set"], src["test_set"]
        assert z["training_set"].shape == (ts.shape[0] - 2, *ts.shape[1:])
        assert z["test_set"].shape == (test.shape[0] - 1, *test.shape[1:])
        keep = np.delete(np.arange(len(ts)), [5, 299])
        np.testing.assert_array_equal(z["training_set"], ts[keep])
        np.testing.assert_array_equal(z["test_set"], np.delete(test, [1], axis=0))
    again = open_dataset(out)
    assert len(again) == len(ds) - 3 and again.class_map.names == ds.class_map.names
    assert summary["n_images"] == len(again)


def test_clean_npz_images_masks_layout(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, (6, 8, 8, 3), np.uint8)
    masks = rng.integers(0, 3, (6, 8, 8), np.uint8)
    src = tmp_path / "rgb.npz"
    np.savez(src, images=imgs, masks=masks, class_map=np.array(json.dumps(
        [{"id": 0, "name": "a"}, {"id": 1, "name": "b"}, {"id": 2, "name": "c"}])))
    ds = open_dataset(src)
    out = tmp_path / "rgb-clean.npz"
    export.export_clean(ds, out, [ds.ids[2]])
    with np.load(out) as z:
        np.testing.assert_array_equal(z["images"], np.delete(imgs, [2], axis=0))
        np.testing.assert_array_equal(z["masks"], np.delete(masks, [2], axis=0))
        assert "class_map" in z.files


def _folder_dataset(root):
    for sub in ("Tile 1", "Tile 2"):
        (root / sub / "images").mkdir(parents=True)
        (root / sub / "masks").mkdir(parents=True)
        for k in range(3):
            Image.fromarray(np.full((8, 8), 40 * k, np.uint8)).save(root / sub / "images" / f"img{k}.jpg")
            Image.fromarray(np.full((8, 8), k % 2, np.uint8)).save(root / sub / "masks" / f"img{k}.png")
    (root / "classes.json").write_text(json.dumps([{"id": 0, "name": "bg"}, {"id": 1, "name": "fg"}]))
    (root / "README.txt").write_text("notes")
    return root


def test_clean_folder_keeps_layout(tmp_path, store):
    src = _folder_dataset(tmp_path / "tiles")
    ds = open_dataset(src)
    drop = [i for i in ds.ids if i.endswith("img1")][:1]
    assert drop, ds.ids
    out = tmp_path / "tiles-clean"
    summary = export.export_clean(ds, out, drop)
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    before = {p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()}
    removed = before - files
    assert len(removed) == 2 and all("img1" in f for f in removed)
    assert "classes.json" in files and "README.txt" in files
    assert summary["n_images"] == 5
    again = open_dataset(out)
    assert sorted(again.ids) == sorted(set(ds.ids) - set(drop))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_clean_refuses_to_overwrite_unless_asked(tmp_path, demo_npz):
    ds = open_dataset(demo_npz)
    out = tmp_path / "c.npz"
    export.export_clean(ds, out, ["00001"])
    with pytest.raises(FileExistsError):
        export.export_clean(ds, out, ["00002"])
    export.export_clean(ds, out, ["00002", "00003"], overwrite=True)
    assert len(open_dataset(out)) == len(ds) - 2
    with pytest.raises(ValueError, match="cannot replace"):
        export.export_clean(ds, demo_npz, [], overwrite=True)


def test_failed_write_leaves_nothing(tmp_path, demo_npz, monkeypatch):
    ds = open_dataset(demo_npz)

    def broken(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez_compressed", broken)
    with pytest.raises(OSError):
        export.export_clean(ds, tmp_path / "x.npz", ["00001"])
    assert os.listdir(tmp_path) == []


def test_cli_flag_set_and_export(tmp_path, demo_npz, capsys):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["review", "flag", str(demo_npz), "00001", "00002", "--reason", "odd", "--db", db]) == 0
    assert main(["review", "set", str(demo_npz), "00001", "--state", "exclude", "--db", db]) == 0
    capsys.readouterr()
    assert main(["review", "status", str(demo_npz), "--db", db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"] == {"flagged": 1, "keep": 0, "exclude": 1, "relabel": 0}
    assert main(["review", "export-flags", str(demo_npz), "--db", db, "--out", str(tmp_path / "f.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "f.csv")) == 2
    capsys.readouterr()
    out = tmp_path / "clean.npz"
    assert main(["review", "export-clean", str(demo_npz), "--db", db, "--out", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["n_excluded"] == 1 and doc["excluded"] == ["00001"] and doc["path"] == str(out)
    assert len(open_dataset(out)) == len(open_dataset(demo_npz)) - 1
    assert main(["review", "flag", str(demo_npz), "99999", "--db", db]) == 1
    assert "no image with id 99999" in capsys.readouterr().err
    assert main(["review", "export-clean", str(demo_npz), "--db", db, "--out", str(out)]) == 1
