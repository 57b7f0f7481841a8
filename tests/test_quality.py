"""Out-of-fold label quality (seglib.quality): folds, reuse, scoring, the region checks, the CLI."""
from __future__ import annotations

import json
import time

import cv2
import numpy as np
import pytest

from seglib.cli import main
from seglib.data import open_dataset
from seglib.data.demo import clean_terrain
from seglib.quality import assign_folds, cross_validate, find_regions, load_scores, plan_folds, score_labels
from seglib.quality.inject import KINDS, inject_errors
from seglib.train import TrainConfig
from seglib.train.config import ConfigError

# --- folds -----------------------------------------------------------------------------------------

def test_folds_cover_every_image_once_balanced_and_stratified():
    rng = np.random.default_rng(0)
    ids = [f"{i:03d}" for i in range(103)]
    presence = np.ones((103, 3), bool)
    presence[:, 2] = False
    presence[rng.choice(103, 10, replace=False), 2] = True          # a rare class in 10 images
    folds = assign_folds(ids, presence, 5, seed=1)
    assert sorted(folds) == ids and set(folds.values()) == set(range(5))
    sizes = np.bincount(list(folds.values()))
    assert sizes.max() - sizes.min() <= 1
    rare = [folds[ids[i]] for i in np.flatnonzero(presence[:, 2])]
    assert set(rare) == set(range(5))                                # the rare class is in every fold
    assert folds == assign_folds(ids, presence, 5, seed=1)           # seeded
    assert folds != assign_folds(ids, presence, 5, seed=2)


def test_fewer_images_than_folds_says_so():
    with pytest.raises(ConfigError, match="3 usable labeled images for 5 folds"):
        assign_folds(["a", "b", "c"], np.ones((3, 2), bool), 5)


def test_folds_by_group_keep_each_group_in_one_fold_and_even_out_sizes():
    rng = np.random.default_rng(0)
    groups = [f"tile {g}" for g in rng.integers(0, 14, 120)]       # 14 groups of uneven size
    ids = [f"{g}/{i:03d}" for i, g in enumerate(groups)]
    presence = np.ones((120, 2), bool)
    presence[:, 1] = [g in ("tile 3", "tile 7", "tile 11") for g in groups]   # a class in 3 groups only
    folds = assign_folds(ids, presence, 3, seed=1, groups=groups)
    assert sorted(folds) == sorted(ids)
    for g in set(groups):
        assert len({folds[i] for i, gi in zip(ids, groups, strict=True) if gi == g}) == 1, g
    sizes = np.bincount(list(folds.values()), minlength=3)
    assert sizes.min() > 0 and sizes.max() - sizes.min() <= max(np.unique(groups, return_counts=True)[1])
    rare = {folds[i] for i, gi in zip(ids, groups, strict=True) if gi in ("tile 3", "tile 7", "tile 11")}
    assert rare == {0, 1, 2}                                          # the rare class's groups spread out
    with pytest.raises(ConfigError, match="2 groups of images for 3 folds"):
        assign_folds(ids[:4], presence[:4], 3, groups=["a", "a", "b", "b"])


def test_plan_folds_follows_split_by_folder(tmp_path):
    """Crops cut from one tile sit in that tile's folder: with --split-by folder no fold model
    trains on a crop of a tile it scores."""
    from PIL import Image

    images, masks = clean_terrain(18, seed=4)
    for k in range(18):
        tile = tmp_path / "data" / "images" / f"tile{k % 4}"
        (tmp_path / "data" / "masks" / f"tile{k % 4}").mkdir(parents=True, exist_ok=True)
        tile.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[k]).save(tile / f"c{k:02d}.png")
        Image.fromarray(masks[k]).save(tmp_path / "data" / "masks" / f"tile{k % 4}" / f"c{k:02d}.png")
    plans = plan_folds(_cfg(str(tmp_path / "data"), split_by="folder"), tmp_path / "out", 3, log=lambda m: None)
    for p in plans:
        seen = {i.split("/")[0] for i in p.config.train_ids}
        assert not seen & {i.split("/")[0] for i in p.config.val_ids}, p.fold
    assert sorted(i for p in plans for i in p.config.val_ids) == sorted(f"tile{k % 4}/c{k:02d}" for k in range(18))
    with pytest.raises(ConfigError, match="4 groups of images for 5 folds"):
        plan_folds(_cfg(str(tmp_path / "data"), split_by="folder"), tmp_path / "out", 5, log=lambda m: None)


# --- region checks on one image ---------------------------------------------------------------------

def _scene() -> np.ndarray:
    truth = np.zeros((96, 128), np.int64)
    truth[20:60, 30:80] = 1
    truth[65:90, 90:120] = 2
    return truth


def _probs(truth: np.ndarray, k: int = 3, sure: float = 0.95) -> np.ndarray:
    p = np.full((k, *truth.shape), (1 - sure) / (k - 1), np.float32)
    for c in range(k):
        p[c][truth == c] = sure
    return p


def test_regions_find_each_kind_and_nothing_on_a_right_label():
    truth = _scene()
    p = _probs(truth)
    clean = find_regions(truth, p, [0, 1, 2], background=0)
    assert clean.findings == []
    assert all(abs(v) < 0.3 for v in clean.edge.offsets.values()) and np.hypot(*clean.edge.shift) < 0.3

    dropped = truth.copy()
    dropped[65:90, 90:120] = 0
    (f,) = find_regions(dropped, p, [0, 1, 2], background=0).findings
    assert (f.kind, f.label_class, f.model_class, f.pixels) == ("dropped", 0, 2, 750)

    swapped = truth.copy()
    swapped[20:60, 30:80] = 2
    (f,) = find_regions(swapped, p, [0, 1, 2], background=0).findings
    assert (f.kind, f.label_class, f.model_class, f.pixels) == ("swapped", 2, 1, 2000)
    assert f.mask(truth.shape).sum() == 2000 and f.mask(truth.shape)[30, 40]

    grown = np.where(cv2.dilate((truth == 1).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0, 1, truth)
    edge = find_regions(grown, p, [0, 1, 2], background=0).edge
    assert 2.5 <= edge.offsets[1] <= 3.5 and edge.coverage[1] > 0.9 and abs(edge.offsets[2]) < 0.5

    moved = np.roll(np.roll(truth, 2, 0), 3, 1)
    dy, dx = find_regions(moved, p, [0, 1, 2], background=0).edge.shift
    assert 1.5 <= dy <= 2.5 and 2.5 <= dx <= 3.5


def test_unscored_pixels_are_never_findings():
    truth = _scene()
    label = truth.copy()
    label[65:90, 90:120] = 255          # unknown there: whatever the model says, not an error
    assert find_regions(label, _probs(truth), [0, 1, 2], background=0).findings == []


def test_injected_errors_are_of_their_kind_and_disjoint():
    _, masks = clean_terrain(120, seed=0)
    noisy, truth = inject_errors(masks, share=0.05, seed=0)
    touched = [i for v in truth.values() for i in v]
    assert set(truth) == set(KINDS) and all(len(v) == 6 for v in truth.values())
    assert len(set(touched)) == len(touched)
    assert all((noisy[i] != masks[i]).any() for i in touched)
    assert all((noisy[i] == masks[i]).all() for i in range(120) if i not in set(touched))


# --- the whole pass on a tiny dataset ---------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    images, masks = clean_terrain(36, seed=3)
    noisy, truth = inject_errors(masks, share=0.06, seed=0, kinds=("swapped", "shifted"))
    path = tmp_path_factory.mktemp("quality") / "tiny.npz"
    np.savez(path, images=images, masks=noisy)
    return str(path), truth


def _cfg(data: str, **kw) -> TrainConfig:
    return TrainConfig.quick(data, epochs=1, max_steps_per_epoch=2, batch_size=4, device="cpu", **kw)


@pytest.fixture(scope="module")
def folds_out(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("folds")
    results = cross_validate(_cfg(tiny[0]), out, 3, log=lambda m: None)
    assert [r["action"] for r in results] == ["train"] * 3 and all(r["status"] == "done" for r in results)
    return out


def test_every_labeled_image_is_scored_once_by_a_model_that_never_trained_on_it(tiny, folds_out):
    ds = open_dataset(tiny[0])
    scores = score_labels(ds, folds_out, device="cpu")
    assert sorted(scores.table.image_id) == sorted(ds.labeled_ids) and not scores.unscored
    configs = [json.loads((folds_out / f"fold-{f + 1}-of-3" / "config.json").read_text()) for f in range(3)]
    for row in scores.table.itertuples():
        cfg = configs[row.fold]
        assert row.image_id in cfg["val_ids"] and row.image_id not in cfg["train_ids"]
    assert scores.table.score.between(0, 1).all() and scores.table.score.is_monotonic_decreasing
    doc = scores.to_json()
    assert set(doc) >= {"folds", "runs", "images"} and doc["folds"] == 3
    assert set(doc["images"][0]) >= {"image_id", "score", "quality", "issue_pixels", "reasons"}


def test_a_second_call_trains_nothing_and_scores_from_the_file(tiny, folds_out, monkeypatch):
    plans = plan_folds(_cfg(tiny[0]), folds_out, 3, log=lambda m: None)
    assert [p.action for p in plans] == ["reuse"] * 3
    ds = open_dataset(tiny[0])
    first = score_labels(ds, folds_out, device="cpu")
    import seglib.quality.score as score_module
    monkeypatch.setattr(score_module, "probs_batches", lambda *a, **k: pytest.fail("predicted again"))
    again = score_labels(ds, folds_out, device="cpu")
    assert again.table.image_id.tolist() == first.table.image_id.tolist()
    assert np.allclose(again.table.score, first.table.score)
    assert load_scores(folds_out) is not None


def test_other_options_retrain_and_keep_the_old_run_aside(tiny, folds_out):
    plans = plan_folds(_cfg(tiny[0], lr=5e-3), folds_out, 3, log=lambda m: None)
    assert [p.action for p in plans] == ["train"] * 3
    assert "other options" in plans[0].why


def test_an_unfinished_fold_is_resumed(tiny, tmp_path):
    out = tmp_path / "q"
    cfg = _cfg(tiny[0])
    calls = {"n": 0}
    results = cross_validate(cfg, out, 3, log=lambda m: None,
                             should_stop=lambda: (calls.__setitem__("n", calls["n"] + 1) or calls["n"] > 1))
    assert [r["status"] for r in results] == ["done", "cancelled"]
    (out / "fold-1-of-3" / "status.json").write_text(json.dumps({"status": "interrupted"}))
    plans = plan_folds(cfg, out, 3, log=lambda m: None)
    assert [p.action for p in plans] == ["resume", "train", "train"]


def test_cli_quality_json_and_refusals(tiny, folds_out, capsys):
    args = ["quality", tiny[0], "--folds", "3", "--out", str(folds_out), "--epochs", "1", "--max-steps-per-epoch",
            "2", "--batch-size", "4", "--device", "cpu", "--encoder", "mobilenet_v2", "--lr", "0.002",
            "--patience", "0", "--quiet", "--json"]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["folds"] == 3 and len(doc["images"]) == 36
    assert all(len(r) == 36 for r in [doc["images"]])
    assert main(["quality", tiny[0], "--folds", "50", "--out", str(folds_out / "x"), "--quiet"]) == 1
    assert "36 usable labeled images for 50 folds" in capsys.readouterr().err


def test_a_quality_job_trains_the_folds_scores_and_goes_on_after_a_cancel(tiny, tmp_path):
    from seglib.train.jobs import JobManager

    jobs = JobManager(tmp_path / "checkpoints")
    out = tmp_path / "checkpoints" / "quality" / "tiny"
    try:
        first = jobs.submit_quality(_cfg(tiny[0]), out, folds=2)
        snap = jobs.snapshot(first)
        assert snap.kind == "quality" and snap.folds == 2
        deadline = time.monotonic() + 120
        while jobs.snapshot(first).global_step < 1 and time.monotonic() < deadline:   # inside fold 1
            time.sleep(0.05)
        jobs.cancel(first)
        assert jobs.wait(first, 120).status == "cancelled"
        assert not (out / "label_scores.json").exists()
        again = jobs.submit_quality(_cfg(tiny[0]), out, folds=2)
        done = jobs.wait(again, 300)
        assert done.status == "done", done.error
        assert done.progress == 1.0 and done.fold == 2
        assert len(load_scores(out).table) == 36
    finally:
        jobs.shutdown()
    with pytest.raises(ConfigError, match="for 50 folds"):
        JobManager(tmp_path / "other").submit_quality(_cfg(tiny[0]), out, folds=50)


def test_folds_train_side_by_side_one_per_device_and_are_reused_after(tiny, tmp_path):
    import threading

    out = tmp_path / "q"
    cfg = _cfg(tiny[0])
    threads, lines = set(), []
    results = cross_validate(cfg, out, 3, log=lines.append, devices=["cpu", "cpu"],
                             on_fold=lambda plan: threads.add(threading.current_thread().name))
    assert sorted(r["fold"] for r in results) == [0, 1, 2] and all(r["status"] == "done" for r in results)
    assert len(threads) == 2, "two folds at once, each on a free device"
    assert sum("(cpu)" in m for m in lines) == 3
    assert [p.action for p in plan_folds(cfg, out, 3, log=lambda m: None)] == ["reuse"] * 3
    ds = open_dataset(tiny[0])
    assert sorted(score_labels(ds, out, device="cpu").table.image_id) == sorted(ds.labeled_ids)
