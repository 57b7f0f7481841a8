"""Corrected masks: versions in the review store, the dataset as corrected everywhere, the CLI."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglib.data import open_dataset
from seglib.review import ReviewStore
from seglib.review import corrections as cr
from seglib.stats import compute_stats


@pytest.fixture
def store(tmp_path):
    s = ReviewStore(f"sqlite:///{tmp_path / 'review.db'}")
    yield s
    s.close()


@pytest.fixture
def demo(demo_npz):
    return open_dataset(demo_npz)


def _painted(ds, image_id, cls=3, box=(slice(0, 10), slice(0, 12))):
    m = ds.mask(image_id).copy()
    m[box] = cls
    return m


def test_versions_numbered_stale_and_revert(demo, store):
    i = demo.labeled_ids[0]
    original = demo.mask(i).copy()
    fixed = _painted(demo, i)
    v1 = cr.save_correction(demo, i, fixed, store=store, tool="brush", note="crater", expected=0)
    assert (v1.number, v1.tool, v1.note, v1.original) == (1, "brush", "crater", False)
    assert v1.changed_px == int((fixed != original).sum()) > 0
    # A second tab that opened version 0 is told that version 1 exists, and nothing is written.
    with pytest.raises(cr.StaleVersion) as e:
        cr.save_correction(demo, i, original, store=store, expected=0)
    assert e.value.latest.number == 1 and "version 1" in str(e.value)
    assert cr.latest_number(demo, i, store) == 1
    v2 = cr.save_correction(demo, i, _painted(demo, i, cls=2), store=store, expected=1)
    assert v2.number == 2
    # Revert to version 1, then to the file: both are new versions; nothing is lost.
    v3 = cr.revert_correction(demo, i, 1, store=store, expected=2)
    assert (v3.number, v3.reverts_to, v3.original) == (3, 1, False)
    assert np.array_equal(cr.version_mask(demo, i, 3, store), fixed)
    v4 = cr.revert_correction(demo, i, 0, store=store)
    assert v4.original and v4.changed_px == v1.changed_px
    assert [v.number for v in cr.versions(demo, i, store)] == [1, 2, 3, 4]
    assert cr.apply_corrections(demo, store).corrected_ids == []
    assert np.array_equal(cr.version_mask(demo, i, 2, store), _painted(demo, i, cls=2))
    assert np.array_equal(cr.version_mask(demo, i, 0, store), original)
    with pytest.raises(KeyError):
        cr.revert_correction(demo, i, 9, store=store)


def test_bad_masks_are_refused_in_one_line(demo, store):
    i = demo.labeled_ids[0]
    m = demo.mask(i)
    with pytest.raises(ValueError, match=r"mask is 128x10 but the image is 128x64"):
        cr.save_correction(demo, i, m[:10], store=store)
    bad = m.copy()
    bad[0, 0] = 9
    with pytest.raises(ValueError, match=r"class id 9 not in the class map"):
        cr.save_correction(demo, i, bad, store=store)
    with pytest.raises(ValueError, match="one channel"):
        cr.save_correction(demo, i, np.stack([m] * 3, -1), store=store)
    with pytest.raises(ValueError, match="no image"):
        cr.save_correction(demo, "nope", m, store=store)
    assert cr.versions(demo, i, store) == []


def test_the_corrected_view_reads_corrections_everywhere(demo, store):
    i, j = demo.labeled_ids[:2]
    fixed = _painted(demo, i)
    cr.save_correction(demo, i, fixed, store=store)
    view = cr.apply_corrections(demo, store)
    assert view.corrected_ids == [i]
    assert np.array_equal(view.mask(i), fixed) and not np.array_equal(demo.mask(i), fixed)
    assert np.array_equal(view.original_mask(i), demo.mask(i))
    assert np.array_equal(view.mask(j), demo.mask(j))
    img, mask, problems = view.load_pair(i)
    assert np.array_equal(mask, fixed) and not problems
    _, counts, _, _ = view.load_counts(i)
    assert np.array_equal(counts[:5], np.bincount(fixed.ravel(), minlength=5))
    # The view's fingerprint follows the corrections; the files' one does not move.
    assert view.fingerprint() != demo.fingerprint() and view.files_fingerprint() == demo.fingerprint()
    cr.save_correction(demo, i, _painted(demo, i, cls=1), store=store)
    assert cr.apply_corrections(demo, store).fingerprint() != view.fingerprint()
    # The app can still show the originals.
    assert view.original().corrected_ids == [] and np.array_equal(view.original().mask(i), demo.mask(i))


def test_statistics_measure_only_the_corrected_images(demo, store, monkeypatch):
    files = compute_stats(demo)
    i = demo.labeled_ids[5]
    fixed = _painted(demo, i, cls=4, box=(slice(0, 30), slice(0, 30)))
    cr.save_correction(demo, i, fixed, store=store)
    view = cr.apply_corrections(demo, store)
    import seglib.stats as stats_mod
    seen = []
    real = stats_mod._one
    monkeypatch.setattr(stats_mod, "_one", lambda ds, image_id: (seen.append(image_id), real(ds, image_id))[1])
    corrected = compute_stats(view)
    assert seen == [i]          # the files' statistics came from the cache; one image was read
    row = corrected.ids.index(i)
    assert np.array_equal(corrected.counts[row, :5], np.bincount(fixed.ravel(), minlength=5))
    others = [k for k in range(len(files.ids)) if k != row]
    assert np.array_equal(corrected.counts[others], files.counts[others])
    again = compute_stats(cr.apply_corrections(demo, store))
    assert again.from_cache and np.array_equal(again.counts, corrected.counts)


def test_a_new_label_makes_an_unlabeled_image_labeled(demo, store):
    u = demo.unlabeled_ids[0]
    h, w = demo.image(u).shape[:2]
    label = np.zeros((h, w), np.uint8)
    label[: h // 2] = 2
    cr.save_correction(demo, u, label, store=store, tool="label-next")
    view = cr.apply_corrections(demo, store)
    assert view.is_labeled(u) and not demo.is_labeled(u)
    assert u in view.labeled_ids and np.array_equal(view.mask(u), label)
    assert view.original_mask(u) is None
    stats = compute_stats(view)
    assert stats.labeled.sum() == compute_stats(demo).labeled.sum() + 1


def test_folder_colour_masks_take_corrections_by_class_id(tmp_path, store):
    root = tmp_path / "colour"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    colours = {0: (0, 0, 0), 1: (255, 0, 0), 2: (0, 255, 0)}
    for k in range(4):
        Image.fromarray(np.full((40, 60, 3), 50 * k, np.uint8)).save(root / "images" / f"a{k}.png")
        ids = np.zeros((40, 60), np.uint8)
        ids[10:20, 10 + k: 30] = 1
        ids[25:, :] = 2
        Image.fromarray(np.array([colours[v] for v in range(3)], np.uint8)[ids]).save(root / "masks" / f"a{k}.png")
    ds = open_dataset(root)
    assert ds.encoding == "rgb"
    compute_stats(ds)
    i = ds.labeled_ids[0]
    fixed = ds.mask(i).copy()
    fixed[:5] = fixed.max()
    cr.save_correction(ds, i, fixed, store=store)
    view = cr.apply_corrections(ds, store)
    assert np.array_equal(view.mask(i), fixed)
    stats = compute_stats(view)
    assert stats.counts[stats.ids.index(i), fixed.max()] == (fixed == fixed.max()).sum()


def test_export_writes_the_latest_corrected_masks(demo, store, tmp_path):
    i, j = demo.labeled_ids[:2]
    cr.save_correction(demo, i, _painted(demo, i), store=store)
    cr.save_correction(demo, j, _painted(demo, j), store=store)
    cr.revert_correction(demo, j, 0, store=store)
    written = cr.export_corrections(demo, tmp_path / "out", store)
    assert [p.name for p in written] == [f"{i}.png"]
    assert np.array_equal(np.asarray(Image.open(written[0])), _painted(demo, i))


def test_mask_diff_counts_pixels_per_class(demo):
    i = demo.labeled_ids[0]
    before = demo.mask(i)
    after = _painted(demo, i, cls=4, box=(slice(0, 4), slice(0, 5)))
    d = cr.mask_diff(before, after, demo.class_map)
    assert d.changed_px == int((before != after).sum()) == d.changed.sum()
    row = d.table.set_index("id").loc[4]
    assert row["after_px"] - row["before_px"] == row["delta"] > 0
    assert d.table["delta"].sum() == 0


def test_training_uses_the_corrected_masks_and_records_them(demo_npz, tmp_path, monkeypatch):
    from seglib.train.config import TrainConfig
    from seglib.train.data import prepare_data
    monkeypatch.setenv("SEGLIB_REVIEW_DB", str(tmp_path / "team.db"))
    ds = open_dataset(demo_npz)
    i = ds.labeled_ids[0]
    cr.save_correction(ds, i, _painted(ds, i))
    data = prepare_data(TrainConfig(data=str(demo_npz), train_ids=ds.labeled_ids[:20], val_ids=ds.labeled_ids[20:30]),
                        log=lambda *_: None)
    assert np.array_equal(data.ds.mask(i), _painted(ds, i))
    cfg = TrainConfig(data=str(demo_npz), train_ids=ds.labeled_ids[:20], val_ids=ds.labeled_ids[20:30])
    prepare_data(cfg, log=lambda *_: None)
    assert cfg.resolved["masks"] == "corrected" and cfg.resolved["corrections"] == {i: 1}
    cfg = TrainConfig(data=str(demo_npz), train_ids=ds.labeled_ids[:20], val_ids=ds.labeled_ids[20:30],
                      original_masks=True)
    data = prepare_data(cfg, log=lambda *_: None)
    assert cfg.resolved["masks"] == "original" and cfg.resolved["corrections"] == {}
    assert np.array_equal(data.ds.mask(i), ds.mask(i))


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "seglib", *map(str, args)], capture_output=True, text=True, env=env)


def test_cli_correct_list_export_revert(demo_npz, tmp_path, monkeypatch):
    import os
    env = {**os.environ, "SEGLIB_REVIEW_DB": str(tmp_path / "cli.db")}
    ds = open_dataset(demo_npz)
    i = ds.labeled_ids[1]
    fixed = _painted(ds, i)
    Image.fromarray(fixed).save(tmp_path / "fixed.png")
    Image.fromarray(fixed[:10]).save(tmp_path / "small.png")
    bad = fixed.copy()
    bad[0, 0] = 77
    Image.fromarray(bad).save(tmp_path / "bad.png")

    r = _cli("review", "correct", demo_npz, i, "--mask", tmp_path / "fixed.png", "--note", "crater", env=env)
    assert r.returncode == 0 and "version 1" in r.stdout, r.stderr
    for png, why in [("small.png", "128x10 but the image is 128x64"), ("bad.png", "class id 77")]:
        r = _cli("review", "correct", demo_npz, i, "--mask", tmp_path / png, env=env)
        assert r.returncode == 1 and why in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert "Traceback" not in r.stderr
    r = _cli("review", "corrections", demo_npz, "--json", env=env)
    doc = json.loads(r.stdout)
    assert doc["n_corrected"] == 1 and doc["versions"][0]["note"] == "crater"
    r = _cli("review", "corrections", demo_npz, "--export", tmp_path / "out", env=env)
    assert r.returncode == 0 and np.array_equal(np.asarray(Image.open(tmp_path / "out" / f"{i}.png")), fixed)
    # stats see the correction by default, the files with --original-masks
    doc = json.loads(_cli("stats", demo_npz, "--json", env=env).stdout)
    assert doc["corrected_masks"] == [i]
    doc = json.loads(_cli("stats", demo_npz, "--json", "--original-masks", env=env).stdout)
    assert doc["corrected_masks"] == []
    r = _cli("review", "revert", demo_npz, i, "--to", "0", env=env)
    assert r.returncode == 0 and "version 2" in r.stdout
    doc = json.loads(_cli("review", "corrections", demo_npz, "--json", env=env).stdout)
    assert doc["n_corrected"] == 0 and doc["n_versions"] == 2
    assert Path(tmp_path / "cli.db").exists()


def test_compare_predicts_and_scores_again_only_the_corrected_image(trained_runs, demo_npz, store):
    from seglib.predict import Comparison, Ensemble, dataset_layout, open_members, predict

    ds = open_dataset(demo_npz)
    ids = ds.labeled_ids[:12]
    members, _ = open_members([trained_runs["unet"], trained_runs["segformer"]], dataset_layout(ds))
    ens = [Ensemble("mean", tuple(m.name for m in members), name="ensemble")]
    before = predict(cr.apply_corrections(ds, store), members, ens, ids, device="cpu")
    i = ids[3]
    pred_i = before.columns[members[0].name].mask(i)
    cr.save_correction(ds, i, pred_i, store=store)   # the label becomes the first run's prediction
    view = cr.apply_corrections(ds, store)
    seen: list[tuple[int, int]] = []
    after = predict(view, members, ens, ids, device="cpu", progress=lambda d, t: seen.append((d, t)))
    assert seen and seen[-1][1] == 1   # one image through the models, not twelve
    col = after.columns[members[0].name]
    cm = col.cms[col.row(i)]
    assert cm.trace() == cm.sum()      # scored against the corrected mask: all its pixels agree
    j = ids[0]
    old = before.columns[members[0].name]
    assert np.array_equal(col.cms[col.row(j)], old.cms[old.row(j)])
    assert Comparison(after).scores_table() is not None
    # Unchanged corrections: a cache hit.
    seen.clear()
    predict(cr.apply_corrections(ds, store), members, ens, ids, device="cpu", progress=lambda d, t: seen.append((d, t)))
    assert not seen


def test_clean_export_writes_corrected_masks_and_new_labels(demo_npz, tmp_path, store):
    from seglib.review.export import export_clean
    ds = open_dataset(demo_npz)
    i, gone = ds.labeled_ids[2], ds.labeled_ids[0]
    fixed = _painted(ds, i)
    cr.save_correction(ds, i, fixed, store=store)
    u = ds.unlabeled_ids[1]
    new = np.zeros(ds.image(u).shape[:2], np.uint8)
    new[:8] = 3
    cr.save_correction(ds, u, new, store=store)
    view = cr.apply_corrections(ds, store)
    doc = export_clean(view, tmp_path / "clean.npz", [gone, ds.unlabeled_ids[0]])
    assert sorted(doc["corrected"]) == sorted([i, u])
    out = open_dataset(tmp_path / "clean.npz")
    assert len(out.labeled_ids) == len(ds.labeled_ids)            # one left out, one new label
    assert len(out.unlabeled_ids) == len(ds.unlabeled_ids) - 2
    assert np.array_equal(out.mask(ds.labeled_ids[1]), fixed)      # row 2 moved up by the excluded row 0
    assert np.array_equal(out.mask(out.labeled_ids[-1]), new)
    assert np.array_equal(out.image(out.labeled_ids[-1]), ds.image(u))


def test_clean_export_of_a_colour_folder_writes_colours(tmp_path, store):
    from seglib.review.export import export_clean
    root = tmp_path / "colour"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    colours = np.array([(0, 0, 0), (255, 0, 0), (0, 255, 0)], np.uint8)
    for k in range(4):
        Image.fromarray(np.full((20, 30, 3), 40 * k, np.uint8)).save(root / "images" / f"a{k}.png")
        ids = np.zeros((20, 30), np.uint8)
        ids[5:10, k: 20] = 1
        ids[15:] = 2
        if k < 3:
            Image.fromarray(colours[ids]).save(root / "masks" / f"a{k}.png")
    ds = open_dataset(root)
    compute_stats(ds)
    fixed = ds.mask("a0").copy()
    fixed[:3] = 2
    cr.save_correction(ds, "a0", fixed, store=store)
    label = np.ones((20, 30), np.uint8)
    cr.save_correction(ds, "a3", label, store=store)
    export_clean(cr.apply_corrections(ds, store), tmp_path / "clean", [])
    out = open_dataset(tmp_path / "clean")
    assert out.encoding == "rgb" and out.is_labeled("a3")
    assert np.array_equal(out.mask("a0"), fixed) and np.array_equal(out.mask("a3"), label)
    written = np.asarray(Image.open(tmp_path / "clean" / "masks" / "a0.png"))
    assert written.ndim == 3 and tuple(written[0, 0]) == ds.class_map.by_id(2).rgb


def test_detectors_measure_only_the_corrected_masks_again(demo, store, monkeypatch):
    from seglib.outliers import detect, features
    stats = compute_stats(demo)
    base = features.compute_features(demo, list(stats.ids))
    i = demo.labeled_ids[4]
    fixed = demo.mask(i).copy()
    fixed[:, :] = 0                      # a blank label: the empty-mask detector must see it
    cr.save_correction(demo, i, fixed, store=store)
    view = cr.apply_corrections(demo, store)
    read: list[str] = []
    real = features._measure_one
    monkeypatch.setattr(features, "_measure_one", lambda ds, image_id: (read.append(image_id), real(ds, image_id))[1])
    patched = features.compute_features(view, list(stats.ids))
    assert read == []                    # no image decoded again: the files' features were at hand
    k = patched.ids.index(i)
    assert patched.mask_hash[k] != base.mask_hash[k] and patched.n_values[k] == 1
    others = [r for r in range(len(base.ids)) if r != k]
    assert np.array_equal(patched.mask_hash[others], base.mask_hash[others])
    assert np.array_equal(patched.thumb, base.thumb)
    flags = detect(view, compute_stats(view), use_cache=False)
    assert i in set(flags["image_id"])
