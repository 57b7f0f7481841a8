"""seglib.predict and the evaluate/predict commands on the two tiny runs of ``trained_runs``:
ensembles, TTA, metrics against NumPy and smp.metrics, the disk cache and its invalidation,
label quality, the learned map, exports, the CLI contract and one-line checkpoint errors."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from seglib.cli import main as cli_main
from seglib.data import open_dataset
from seglib.predict import (
    Comparison,
    Ensemble,
    dataset_layout,
    embedding_projection,
    fit_weights,
    label_quality,
    masks_zip,
    open_members,
    predict,
    shared_val_ids,
    write_masks,
)
from seglib.predict.ensemble import simplex_grid
from seglib.predict.export import id_path
from seglib.predict.infer import forward_probs
from seglib.predict.members import Member

SCORE_KEYS = {"miou", "miou_no_bg", "pixel_accuracy", "mean_pixel_accuracy", "dice", "per_class_iou"}
CLASSES = ["background", "soil", "bedrock", "sand", "big rock"]


@pytest.fixture(scope="module")
def ds(demo_npz):
    return open_dataset(demo_npz)


@pytest.fixture(scope="module")
def layout(ds):
    return dataset_layout(ds)


@pytest.fixture(scope="module")
def members(trained_runs, layout):
    found, problems = open_members([trained_runs["unet"], trained_runs["segformer"]], layout)
    assert problems == []
    return found


@pytest.fixture(scope="module")
def some_ids(ds):
    """16 labeled and 4 unlabeled images: enough for every code path, quick on a CPU."""
    return ds.labeled_ids[:16] + ds.unlabeled_ids[:4]


@pytest.fixture(scope="module")
def pred(ds, members, some_ids):
    """Both runs, their mean and vote ensembles on ``some_ids`` (predicted once, not cached)."""
    ensembles = [Ensemble("mean", ("unet", "segformer")), Ensemble("vote", ("unet", "segformer"))]
    return predict(ds, members, ensembles, some_ids, device="cpu", use_cache=False)


@pytest.fixture(scope="module")
def small_npz(tmp_path_factory, demo_npz):
    """make(n, n_test) -> an npz of the first rows of the demo (Kaggle layout)."""
    def make(n: int, n_test: int):
        path = tmp_path_factory.mktemp("small") / f"small-{n}-{n_test}.npz"
        with np.load(demo_npz) as z:
            arrays = {"training_set": z["training_set"][:n], "class_map": z["class_map"]}
            if n_test:
                arrays["test_set"] = z["test_set"][:n_test]
        np.savez(path, **arrays)
        return path
    return make


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = cli_main([*args, "--quiet"])
    out = capsys.readouterr()
    return code, out.out, out.err


# --- ensembles and TTA -------------------------------------------------------------------------
def test_an_ensemble_of_identical_models_equals_the_model(ds, layout, trained_runs, some_ids):
    twins, problems = open_members([trained_runs["unet"], trained_runs["unet"]], layout)
    assert problems == [] and len({m.name for m in twins}) == 2      # same folder twice: two names
    names = tuple(m.name for m in twins)
    ensembles = [Ensemble("mean", names), Ensemble("weighted", names, (0.2, 0.8)), Ensemble("vote", names)]
    pred = predict(ds, twins, ensembles, some_ids, device="cpu", use_cache=False)
    single = pred.columns[names[0]]
    for ens in ensembles:
        col = pred.columns[ens.name]
        assert col.ids == single.ids
        assert np.array_equal(col.masks, single.masks), ens.kind
        assert np.array_equal(col.cms, single.cms)
        if ens.kind != "vote":  # a vote's confidence is the share of members that agree: 1 here
            assert np.abs(col.confidence.astype(int) - single.confidence.astype(int)).max() <= 1
        else:
            assert (col.confidence == 255).all()


class _Pointwise(torch.nn.Module):
    """A 1x1 convolution: what it does to a pixel does not depend on where the pixel is."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(1, 5, 1)

    def forward(self, x):
        return self.conv(x)


class _LeftBiased(_Pointwise):
    def forward(self, x):
        ramp = torch.linspace(0, 3, x.shape[-1])
        return self.conv(x) + ramp * torch.arange(5.0)[:, None, None]


def test_tta_of_a_flip_symmetric_model_changes_nothing():
    images = torch.rand(3, 1, 16, 24)
    model = _Pointwise().eval()
    assert torch.allclose(forward_probs(model, images, tta=True), forward_probs(model, images), atol=1e-6)
    biased = _LeftBiased().eval()  # a model that does care where a pixel is: TTA must change it
    assert not torch.allclose(forward_probs(biased, images, tta=True), forward_probs(biased, images), atol=1e-3)
    p = forward_probs(biased, images, tta=True)
    assert torch.allclose(p.sum(1), torch.ones(3, 16, 24), atol=1e-5)


def test_tta_through_predict_is_cached_apart(ds, members, some_ids):
    ids = some_ids[:6]
    plain = predict(ds, members[:1], [], ids, device="cpu")
    flipped = predict(ds, members[:1], [], ids, tta=True, device="cpu")
    assert flipped.cached == [] and flipped.columns["unet"].info["tta"] is True
    assert predict(ds, members[:1], [], ids, tta=True, device="cpu").cached == ["unet"]
    assert plain.columns["unet"].masks.shape == flipped.columns["unet"].masks.shape


def test_fit_weights_finds_the_better_member_and_prefers_equal_weights_on_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 4000)
    good = np.eye(3)[y] * 0.9 + 0.05
    noise = rng.dirichlet(np.ones(3), 4000)
    weights, score = fit_weights([noise, good], y, [0, 1, 2])
    assert weights[1] > weights[0] and score == pytest.approx(1.0)
    weights, _ = fit_weights([good, good], y, [0, 1, 2])
    assert weights == pytest.approx((0.5, 0.5))
    grid = simplex_grid(3)
    assert np.allclose(grid.sum(1), 1) and len(grid) <= 300 and np.allclose(grid[0], 1 / 3)


def test_weighted_ensemble_is_fitted_on_the_shared_validation_split(ds, members):
    val = shared_val_ids(members, ds)
    assert val and set(val) <= set(ds.labeled_ids)
    ens = Ensemble("weighted", ("unet", "segformer"))
    pred = predict(ds, members, [ens], val[:8], device="cpu")
    fitted = pred.ensembles[0]
    assert fitted.weights is not None and sum(fitted.weights) == pytest.approx(1.0)
    assert fitted.fit_info["n_images"] == len(val)
    assert pred.columns["weighted ensemble"].info["weights"] == pytest.approx(list(fitted.weights))


def test_fitted_weights_are_scored_cross_fitted_and_exported_fitted_on_all(ds, members):
    """Each half of the fitting images is predicted with the weights the other half chose; without
    cross-fitting (export, new images) every image takes the weights fitted on all of them."""
    from seglib.predict.ensemble import combine

    val = shared_val_ids(members, ds)
    assert len(val) >= 4
    ids = val[:6] + [i for i in ds.labeled_ids if i not in val][:2]      # two images never fitted on
    ens = Ensemble("weighted", ("unet", "segformer"))
    pred = predict(ds, members, [ens], ids, device="cpu", use_cache=False)
    fitted = pred.ensembles[0]
    cf = fitted.crossfit
    assert cf is not None and len(cf.folds) == 2
    assert sorted(i for f in cf.folds for i in f) == sorted(val)                 # every fitting image, once
    assert not set(cf.folds[0]) & set(cf.folds[1])
    assert fitted.fit_info["folds"] == 2
    assert pred.columns["weighted ensemble"].info["crossfit"]["folds"] == 2
    # Fold weights differ from the weights fitted on all, when forced: check the per-image choice.
    lopsided = replace_crossfit(fitted, ((1.0, 0.0), (0.0, 1.0)))
    col = predict(ds, members, [lopsided], ids, device="cpu", use_cache=False).columns["weighted ensemble"]
    singles = predict(ds, members, [], ids, device="cpu", use_cache=False).columns
    for image_id in ids:
        want = lopsided.crossfit.weights_for(image_id)
        if want == (1.0, 0.0):
            assert np.array_equal(col.mask(image_id), singles["unet"].mask(image_id))
        elif want == (0.0, 1.0):
            assert np.array_equal(col.mask(image_id), singles["segformer"].mask(image_id))
        else:   # never fitted on: the weights fitted on all
            assert image_id not in val
    # combine() without ids (or predict(crossfit=False)) uses the weights fitted on all
    plain = predict(ds, members, [lopsided], ids, device="cpu", use_cache=False, crossfit=False)
    assert plain.ensembles[0].crossfit is None and "crossfit" not in plain.columns["weighted ensemble"].info
    probs = [torch.rand(2, 5, 4, 4), torch.rand(2, 5, 4, 4)]
    assert torch.equal(combine(lopsided, probs)[0], combine(replace_crossfit(lopsided, None), probs)[0])


def replace_crossfit(ens, fold_weights):
    from dataclasses import replace

    from seglib.predict import CrossFit

    if fold_weights is None:
        return replace(ens, crossfit=None)
    return replace(ens, crossfit=CrossFit(ens.crossfit.folds, fold_weights))


# --- metrics -------------------------------------------------------------------------------------
def test_metrics_match_numpy_and_smp(ds, pred):
    import segmentation_models_pytorch as smp

    cmp = Comparison(pred)
    labeled = cmp.labeled_ids
    assert len(labeled) == 16 and cmp.has_labels
    for name in cmp.names:
        pred = np.stack([cmp.mask(name, i) for i in labeled]).astype(np.int64)
        true = np.stack([ds.mask(i) for i in labeled]).astype(np.int64)
        s = cmp.scores(name)
        assert set(s) == SCORE_KEYS and list(s["per_class_iou"]) == CLASSES
        # NumPy, from the masks themselves
        iou = {}
        for c, cname in enumerate(CLASSES):
            inter = np.sum((pred == c) & (true == c))
            union = np.sum((pred == c) | (true == c))
            iou[cname] = inter / union if union else None
            assert s["per_class_iou"][cname] == (pytest.approx(iou[cname]) if union else None)
        assert s["pixel_accuracy"] == pytest.approx(np.mean(pred == true))
        assert s["miou"] == pytest.approx(np.mean([v for v in iou.values() if v is not None]))
        # smp.metrics, dataset-wide (micro over images) and per image
        tp, fp, fn, tn = smp.metrics.get_stats(torch.from_numpy(pred), torch.from_numpy(true), mode="multiclass",
                                               num_classes=5)
        per_class = (tp.sum(0) / (tp + fp + fn).sum(0).clamp_min(1)).numpy()
        present = (tp + fp + fn).sum(0).numpy() > 0
        got = np.array([s["per_class_iou"][c] if s["per_class_iou"][c] is not None else np.nan for c in CLASSES])
        assert np.allclose(got[present], per_class[present])
        per_image = smp.metrics.iou_score(tp, fp, fn, tn, reduction="none").numpy()
        mine = cmp.image_scores(name)["iou"][[cmp.ids.index(i) for i in labeled]]
        defined = (tp + fp + fn).numpy() > 0
        assert np.allclose(mine[defined], per_image[defined]) and np.isnan(mine[~defined]).all()


def test_numpy_confusions_match_seglib_metrics():
    from seglib.metrics import per_image_confusion as torch_confusion
    from seglib.predict.column import per_image_confusion

    gen = torch.Generator().manual_seed(0)
    pred, true = torch.randint(0, 5, (6, 9, 7), generator=gen), torch.randint(0, 5, (6, 9, 7), generator=gen)
    true[:, :2] = 255   # unknown pixels: never counted in a matrix, always in the predicted counts
    cms, counts = per_image_confusion(pred.to(torch.uint8).numpy().reshape(6, -1),
                                      true.to(torch.uint8).numpy().reshape(6, -1), 5)
    assert np.array_equal(cms, torch_confusion(pred, true, 5).numpy())
    assert np.array_equal(counts, np.stack([np.bincount(m.ravel(), minlength=5) for m in pred.numpy()]))


def test_tables_confusions_and_agreement(ds, pred, some_ids):
    cmp = Comparison(pred)
    table = cmp.per_image()
    assert list(table.index) == some_ids and table["labeled"].sum() == 16
    assert {"mIoU · unet", "IoU sand · segformer", "confidence · vote ensemble", "agreement"} <= set(table.columns)
    assert table.loc[ds.unlabeled_ids[0], "mIoU · unet"] != table.loc[ds.unlabeled_ids[0], "mIoU · unet"]  # NaN
    beats = cmp.beats("segformer", "unet")
    assert len(beats) == 16 and beats.is_monotonic_decreasing
    cm = cmp.confusion("unet")
    assert cm.sum() == sum(int((ds.mask(i) < 5).sum()) for i in cmp.labeled_ids)
    t, p = np.unravel_index(np.argmax(cm - np.diag(np.diag(cm))), cm.shape)  # the biggest confusion
    top = cmp.top_confusions("unet", int(t), int(p), n=3)
    first = top.iloc[0]
    truth, pred = ds.mask(first.image_id), cmp.mask("unet", first.image_id)
    assert first.pixels == np.sum((truth == t) & (pred == p)) and top["pixels"].is_monotonic_decreasing
    agree = cmp.agreement()
    one = some_ids[-1]
    assert agree[-1] == pytest.approx(np.mean(cmp.mask("unet", one) == cmp.mask("segformer", one)))
    assert cmp.disagreement("unet", "segformer").iloc[0] == pytest.approx(1 - agree.min())
    assert cmp.ranking("least_agreement", "unet").iloc[0] == pytest.approx(agree.min())
    worst, best = cmp.ranking("worst", "unet"), cmp.ranking("best", "unet")
    assert worst.is_monotonic_increasing and best.is_monotonic_decreasing and len(worst) == 16
    shares = cmp.class_shares()
    assert list(shares.columns) == ["ground truth", "unet", "segformer", "mean ensemble", "vote ensemble"]
    assert np.allclose(shares.sum(axis=0), 1)
    scores = cmp.scores_table()
    assert list(scores.index) == cmp.names and "IoU big rock" in scores.columns



def test_one_images_class_table_and_pixel_shares(ds, pred, some_ids):
    cmp = Comparison(pred)
    image = cmp.labeled_ids[0]
    table = cmp.image_class_table(image)
    assert list(table.index) == cmp.names and list(table.columns)[0] == "mIoU"
    truth, unet = ds.mask(image), cmp.mask("unet", image)
    for c in cmp.layout.scored:   # IoU by hand; NaN where the class is in neither mask
        inter, union = np.sum((truth == c) & (unet == c)), np.sum((truth == c) | (unet == c))
        got = table.loc["unet", cmp.layout.class_names[c]]
        assert np.isnan(got) if union == 0 else got == pytest.approx(inter / union)
    row = cmp.ids.index(image)
    assert table.loc["unet", "mIoU"] == pytest.approx(cmp.image_scores("unet")["miou"][row])
    assert cmp.default_order() == "a_beats_b"
    assert cmp.image_disagreement("unet", "segformer", image) == pytest.approx(
        np.mean(unet != cmp.mask("segformer", image)))


def test_best_cells_never_shade_a_zero_or_beat_a_class_nobody_predicted():
    from seglib.predict import best_cells

    table = pd.DataFrame({"mIoU": [0.9, 0.7], "sand": [np.nan, 0.0], "soil": [0.5, 0.6], "rock": [0.0, 0.0]},
                         index=["a", "b"])
    best = best_cells(table)
    assert best["mIoU"].tolist() == [True, False] and best["soil"].tolist() == [False, True]
    assert not best["sand"].any() and not best["rock"].any()

# --- the cache -----------------------------------------------------------------------------------
def test_cache_reopens_without_models_and_retraining_invalidates(ds, layout, trained_runs, tmp_path, monkeypatch,
                                                                  some_ids):
    runs = {k: tmp_path / k for k in ("unet", "segformer")}
    for k, path in runs.items():
        shutil.copytree(trained_runs[k], path)
    members, _ = open_members(list(runs.values()), layout)
    ens = [Ensemble("mean", ("unet", "segformer"))]
    first = predict(ds, members, ens, some_ids, device="cpu")
    assert first.cached == []

    def no_loading(self, device="cpu"):
        raise AssertionError(f"{self.name} loaded although cached")

    with monkeypatch.context() as m:
        m.setattr(Member, "load", no_loading)
        again = predict(ds, members, ens, some_ids, device="cpu")
    assert again.cached == ["unet", "segformer", "mean ensemble"]
    assert np.array_equal(again.columns["mean ensemble"].masks, first.columns["mean ensemble"].masks)

    # "Retraining": new weights in the U-Net run (here: the same bytes, written again later).
    weights = runs["unet"] / "best.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data)
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    members, _ = open_members(list(runs.values()), layout)
    after = predict(ds, members, ens, some_ids, device="cpu")
    assert after.cached == ["segformer"]                 # the U-Net and the ensemble it joins: predicted again
    # Another image set (another split) reuses every image predicted before and predicts only the others.
    with monkeypatch.context() as m:
        m.setattr(Member, "load", no_loading)
        subset = predict(ds, members, ens, some_ids[:5], device="cpu")
    assert sorted(subset.cached) == ["mean ensemble", "segformer", "unet"]
    assert subset.columns["unet"].ids == some_ids[:5]
    assert np.array_equal(subset.columns["unet"].mask(some_ids[3]), after.columns["unet"].mask(some_ids[3]))
    more = [i for i in ds.labeled_ids if i not in some_ids][:3]
    seen = []
    wider = predict(ds, members, ens, more + some_ids, device="cpu", progress=lambda done, total: seen.append(total))
    assert set(seen) == {3} and wider.cached == []                 # only the 3 new images went through the models
    assert wider.columns["mean ensemble"].ids == more + some_ids
    assert np.array_equal(wider.columns["mean ensemble"].cms[len(more):], after.columns["mean ensemble"].cms)
    fresh = predict(ds, members, ens, more, device="cpu", use_cache=False)
    assert np.array_equal(wider.columns["unet"].mask(more[1]), fresh.columns["unet"].mask(more[1]))


# --- label quality and the learned map -------------------------------------------------------------
def test_label_quality_ranks_the_runs_own_validation_images(ds, members, tmp_path):
    from seglib.review import ReviewStore, dataset_key, flag_detections

    unet = members[0]
    lq = label_quality(ds, unet, device="cpu")
    val = [i for i in unet.val_ids if i in set(ds.labeled_ids)]
    assert sorted(lq.table["image_id"]) == sorted(val)
    assert lq.table["score"].is_monotonic_decreasing
    assert {"image_id", "detector", "reason", "score", "quality", "issue_share", "suggested"} <= set(lq.table.columns)
    first = lq.table.iloc[0]
    issues = lq.issues(first.image_id)
    assert issues.shape == ds.mask(first.image_id).shape and issues.mean() == pytest.approx(first.issue_share)
    again = label_quality(ds, unet, device="cpu")
    pd.testing.assert_frame_equal(again.table[lq.table.columns], lq.table, check_dtype=False)
    store = ReviewStore()
    try:
        n = flag_detections(store, dataset_key(ds), lq.table.head(3))
        assert n == 3 and set(store.states(dataset_key(ds))) == set(lq.table.head(3)["image_id"])
        assert (store.decisions(dataset_key(ds))["detector"] == "label_quality").all()
    finally:
        store.close()


def test_label_quality_of_big_images_runs_cleanlab_on_reduced_probabilities(ds, members, monkeypatch):
    """Images larger than CLEANLAB_SIDE: cleanlab sees block-averaged probabilities (bounded
    memory whatever the photos' size); the issue map comes back at the image's size."""
    import seglib.predict.quality as quality

    seen = []
    real = quality._issues
    monkeypatch.setattr(quality, "_issues", lambda labels, probs: (seen.append(probs.shape), real(labels, probs))[1])
    monkeypatch.setattr(quality, "CLEANLAB_SIDE", 32)     # the demo's 64x128 as if it were big
    lq = label_quality(ds, members[0], device="cpu", use_cache=False)
    assert seen and all(shape[-2:] == (16, 32) for shape in seen)   # a factor of 4 on both sides
    first = lq.table.iloc[0]
    issues = lq.issues(first.image_id)
    assert issues.shape == ds.mask(first.image_id).shape
    assert issues.mean() == pytest.approx(first.issue_share)         # whole 4x4 blocks


def test_suggestions_are_labels_far_below_the_others_on_a_log_scale():
    from seglib.predict.quality import suggest

    rng = np.random.default_rng(0)
    quality = np.exp(rng.normal(np.log(0.08), 0.3, 60))    # softmin qualities of fine labels: all small
    quality[[5, 17]] = [0.002, 0.004]                      # two labels the model contradicts outright
    assert list(np.flatnonzero(suggest(quality))) == [5, 17]
    assert not suggest(quality[:8]).any()                  # too few images for a baseline


def test_embedding_projection_places_every_image(ds, members):
    ids = ds.ids[:24]
    proj = embedding_projection(ds, members[1], ids, device="cpu")
    assert list(proj.index) == ids and list(proj.columns) == ["pc1", "pc2"] and proj.notna().all().all()
    assert proj.std().min() > 0
    pd.testing.assert_frame_equal(embedding_projection(ds, members[1], ids, device="cpu"), proj)


# --- exports ---------------------------------------------------------------------------------------
def test_masks_are_written_as_pngs_by_id_and_zipped(ds, pred, some_ids, tmp_path):
    import io
    import zipfile

    col = pred.columns["unet"]
    doc = write_masks(col, tmp_path / "out", class_map=ds.class_map, colour=True, npz=True)
    test_id = ds.unlabeled_ids[0]
    assert test_id.startswith("test/") and (tmp_path / "out" / f"{test_id}.png").is_file()
    png = np.asarray(Image.open(tmp_path / "out" / f"{test_id}.png"))
    assert png.dtype == np.uint8 and np.array_equal(png, col.mask(test_id))
    assert np.asarray(Image.open(tmp_path / "out" / "colour" / f"{test_id}.png")).shape[-1] == 3
    with np.load(doc["npz"]) as z:
        assert list(z["ids"]) == some_ids and np.array_equal(z["masks"][3], col.mask(some_ids[3]))
    names = zipfile.ZipFile(io.BytesIO(masks_zip(col))).namelist()
    assert f"{test_id}.png" in names and len(names) == len(some_ids)
    # The download of an npz dataset's masks holds the masks.npz the page promises, as the folder does.
    zipped = zipfile.ZipFile(io.BytesIO(masks_zip(col, npz=True)))
    assert "masks.npz" in zipped.namelist() and len(zipped.namelist()) == len(some_ids) + 1
    with np.load(io.BytesIO(zipped.read("masks.npz"))) as z:
        assert list(z["ids"]) == some_ids and np.array_equal(z["masks"][3], col.mask(some_ids[3]))
    with pytest.raises(ValueError):
        id_path(tmp_path, "../escape")


# --- the command line --------------------------------------------------------------------------------
def test_evaluate_json_contract(capsys, demo_npz, trained_runs, ds, members):
    code, out, err = run_cli(capsys, "evaluate", "--checkpoint", str(trained_runs["unet"]),
                             str(trained_runs["segformer"]), "--data", str(demo_npz), "--split", "val",
                             "--ensemble", "mean", "--json", "--device", "cpu")
    assert code == 0, err
    doc = json.loads(out)
    assert list(doc["models"]) == ["unet", "segformer", "ensemble"]
    for scores in doc["models"].values():
        assert set(scores) == SCORE_KEYS and list(scores["per_class_iou"]) == CLASSES
    assert doc["n_images"] == len(shared_val_ids(members, ds)) and doc["ensemble"]["weights"] == [0.5, 0.5]
    cmp = Comparison(predict(ds, members, [], shared_val_ids(members, ds), device="cpu"))
    assert doc["models"]["unet"]["miou"] == pytest.approx(cmp.scores("unet")["miou"])


def test_evaluate_scores_every_labeled_image_by_default(capsys, small_npz, trained_runs):
    small = small_npz(24, 3)
    code, out, err = run_cli(capsys, "evaluate", "--checkpoint", str(trained_runs["unet"]), "--data", str(small),
                             "--json", "--device", "cpu")
    assert code == 0, err
    doc = json.loads(out)
    assert list(doc["models"]) == ["unet"] and doc["n_images"] == 24 and doc["ensemble"] is None
    code, _, err = run_cli(capsys, "evaluate", "--checkpoint", str(trained_runs["unet"]), "--data", str(small),
                           "--split", "test")
    assert code == 1 and err.count("\n") == 1 and "unlabeled" in err


def test_predict_writes_pngs_colour_and_npz_in_input_order(capsys, tmp_path, small_npz, trained_runs):
    small = small_npz(10, 3)
    out = tmp_path / "pred"
    code, stdout, err = run_cli(capsys, "predict", "--checkpoint", str(trained_runs["unet"]),
                                str(trained_runs["segformer"]), "--data", str(small), "--out", str(out), "--colour",
                                "--ensemble", "vote", "--each", "--json", "--device", "cpu")
    assert code == 0, err
    doc = json.loads(stdout)
    ids = open_dataset(small).ids
    assert doc["column"] == "ensemble" and doc["n_images"] == 13 and doc["ensemble"]["kind"] == "vote"
    for i in ids:
        assert (out / f"{i}.png").is_file() and (out / "colour" / f"{i}.png").is_file()
    assert (out / "test" / "00000.png").is_file()
    with np.load(out / "masks.npz") as z:
        assert list(z["ids"]) == ids and z["masks"].shape == (13, 64, 128) and z["masks"].max() < 5
        assert np.array_equal(z["masks"][11], np.asarray(Image.open(out / f"{ids[11]}.png")))
    assert (out / "runs" / "unet" / "00003.png").is_file() and (out / "runs" / "segformer" / "00003.png").is_file()


def test_bad_checkpoints_give_one_line_and_the_others_still_run(capsys, tmp_path, small_npz, trained_runs):
    small = small_npz(12, 0)
    broken = tmp_path / "broken"
    shutil.copytree(trained_runs["unet"], broken)
    best = broken / "best.safetensors"
    best.write_bytes(best.read_bytes()[:5000])
    code, out, err = run_cli(capsys, "evaluate", "--checkpoint", str(broken), str(trained_runs["segformer"]),
                             "--data", str(small), "--json", "--device", "cpu")
    assert code == 0 and list(json.loads(out)["models"]) == ["segformer"]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "truncated" in lines[0] and "broken" in lines[0]

    code, out, err = run_cli(capsys, "evaluate", "--checkpoint", str(broken), "--data", str(small))
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1 and err.startswith("error: ")

    # Other classes: a 3-class dataset.
    three = tmp_path / "three.npz"
    images = np.random.default_rng(0).integers(0, 255, (6, 32, 32), dtype=np.uint8)
    masks = np.random.default_rng(1).integers(0, 3, (6, 32, 32), dtype=np.uint8)
    np.savez(three, images=images, masks=masks)
    code, _, err = run_cli(capsys, "predict", "--checkpoint", str(trained_runs["unet"]), "--data", str(three),
                           "--out", str(tmp_path / "o3"))
    assert code == 1 and len(err.strip().splitlines()) == 1 and "predicts 5 classes" in err
    # Other channels: RGB images.
    rgb = tmp_path / "rgb.npz"
    np.savez(rgb, images=np.zeros((4, 32, 32, 3), np.uint8), masks=np.zeros((4, 32, 32), np.uint8) + 4)
    code, _, err = run_cli(capsys, "evaluate", "--checkpoint", str(trained_runs["unet"]), "--data", str(rgb))
    assert code == 1 and len(err.strip().splitlines()) == 1 and "1 channel(s)" in err and "3" in err


def test_building_the_parser_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys; from seglib.cli import build_parser; build_parser(); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-1500:]



def test_one_labeled_column_steps_worst_first(ds, members, some_ids):
    cmp = Comparison(predict(ds, members[:1], [], some_ids, device="cpu"))
    assert cmp.default_order() == "worst"
    unlabeled = Comparison(predict(ds, members, [], ds.unlabeled_ids[:3], device="cpu"))
    assert unlabeled.default_order() == "least_agreement"


def test_pickers_start_with_the_best_finished_runs(trained_runs, layout, tmp_path):
    from seglib.predict import RunChoice, default_runs, run_choices
    from seglib.train import RunFolder

    root = tmp_path / "checkpoints"
    for name in ("unet", "segformer", "cancelled", "failed"):
        shutil.copytree(trained_runs["segformer" if name == "segformer" else "unet"], root / name)
    RunFolder(root / "cancelled").write_status("cancelled")
    RunFolder(root / "failed").write_status("failed", error="boom")
    rows = {r.name: r for r in run_choices(layout, root)}
    assert rows["cancelled"].status == "cancelled" and not rows["cancelled"].finished
    assert rows["unet"].finished and rows["unet"].miou is not None and "mIoU" in rows["unet"].label
    assert "cancelled" in rows["cancelled"].label
    picked = [os.path.basename(p) for p in default_runs(list(rows.values()))]
    assert sorted(picked) == ["segformer", "unet"]
    # best validation mIoU first
    assert picked[0] == max(("unet", "segformer"), key=lambda n: rows[n].miou)
    # nothing finished: the newest usable ones, rather than nothing
    only_cancelled = [RunChoice("a", "a", "a", None, "cancelled", 0.9), RunChoice("b", "b", "b", "no weights", "done")]
    assert default_runs(only_cancelled) == ["a"]


def test_a_new_ensemble_reuses_the_members_probabilities(ds, members, some_ids, monkeypatch):
    """Adding an ensemble (or fitting one) after a comparison runs no model again: the members'
    probabilities of the last passes are held in memory, and give bit-identical columns."""
    from seglib.predict import prob_cache

    monkeypatch.setattr(prob_cache.PROBS, "max_bytes", 64 * 2**20)
    prob_cache.PROBS.clear()
    names = ("unet", "segformer")
    first = predict(ds, members, [Ensemble("mean", names)], some_ids, device="cpu", use_cache=False)
    assert prob_cache.PROBS.nbytes > 0

    def no_forward(*args, **kwargs):
        raise AssertionError("a model ran although its probabilities were held")

    with monkeypatch.context() as m:
        m.setattr("seglib.predict.run.forward_probs", no_forward)
        again = predict(ds, members, [Ensemble("mean", names), Ensemble("vote", names)], some_ids, device="cpu",
                        use_cache=False)
    assert np.array_equal(again.columns["mean ensemble"].masks, first.columns["mean ensemble"].masks)
    assert np.array_equal(again.columns["unet"].confidence, first.columns["unet"].confidence)
    prob_cache.PROBS.clear()
    fresh = predict(ds, members, [Ensemble("vote", names)], some_ids, device="cpu", use_cache=False)
    assert np.array_equal(fresh.columns["vote ensemble"].masks, again.columns["vote ensemble"].masks)
    # the budget holds: a tiny one keeps nothing that does not fit
    small = prob_cache.ProbabilityCache(1000)
    small.put("x", False, ["a"], torch.zeros(1, 5, 64, 128, dtype=torch.float16))
    assert small.nbytes == 0 and small.get("x", False, ["a"]) is None


# --- bounded memory of a pass (issue 22) ------------------------------------------------------------
def test_a_pass_larger_than_the_probability_budget_keeps_its_first_images():
    """Plain LRU keeps a pass's last images, and the next pass over the same images asks for the
    first ones first, pushing each out just before it is needed: the budget held, never a hit.
    A pass never pushes out what it put or read, so the next pass finds its first images."""
    from seglib.predict.prob_cache import ProbabilityCache

    one = torch.zeros(1, 5, 32, 32, dtype=torch.float16)
    size = one.numel() * one.element_size()
    probs = ProbabilityCache(4 * size + size // 2)     # room for 4 images
    ids = [f"i{k}" for k in range(8)]

    def a_pass():
        owner, hits = object(), []
        for i in ids:
            if probs.get("m", False, [i], owner) is not None:
                hits.append(i)
            else:
                probs.put("m", False, [i], one, owner)
        return hits

    assert a_pass() == [] and probs.nbytes == 4 * size
    assert a_pass() == ids[:4]
    assert a_pass() == ids[:4] and probs.nbytes == 4 * size
    other = object()           # a later pass over other images still replaces the old ones
    for i in ("w", "x", "y", "z"):
        probs.put("m", False, [i], one, other)
    assert probs.get("m", False, ["w", "x", "y", "z"]) is not None and probs.get("m", False, ["i0"]) is None


def test_columns_keep_pixels_on_disk_and_reopen_them_from_the_cache(ds, members, some_ids):
    """A column holds its per-image rows in memory and reads masks and maps back from its file,
    image by image; the cache stores that file beside the rows, and an entry whose pixel file
    is missing or cut short is predicted again, never an error."""
    from seglib.predict import run as run_mod

    ids = some_ids[:6]
    first = predict(ds, members, [Ensemble("mean", ("unet", "segformer"))], ids, device="cpu")
    col = first.columns["mean ensemble"]
    held = sum(getattr(col, k).nbytes for k in col.ARRAYS)
    assert col.pixels.size == col.masks.size + col.confidence.size + col.entropy.size
    assert held < col.masks.size // 4        # the rows are small, the pixels are not in memory
    assert np.array_equal(np.concatenate([col.mask(i).ravel() for i in ids]), col.masks)
    entry = next(iter(sorted((run_mod.cache_dir() / run_mod.NAMESPACE).glob("*.pixels"))))
    again = predict(ds, members, [Ensemble("mean", ("unet", "segformer"))], ids, device="cpu")
    assert set(again.cached) == set(again.names)
    for name in again.names:
        assert np.array_equal(again.columns[name].masks, first.columns[name].masks)
        assert np.array_equal(again.columns[name].entropy, first.columns[name].entropy)
    with open(entry, "r+b") as f:
        f.truncate(entry.stat().st_size - 1)
    third = predict(ds, members, [Ensemble("mean", ("unet", "segformer"))], ids, device="cpu")
    assert len(third.cached) == len(third.names) - 1      # that one column was predicted again
    for name in third.names:
        assert np.array_equal(third.columns[name].masks, first.columns[name].masks)


def test_maps_on_the_grid_and_banded_reduction_equal_the_whole_map(ds, members, some_ids, monkeypatch):
    """Confidence and entropy are computed only where a column keeps them (every stride-th
    pixel), band by band: the same as the whole image's maps subsampled (labels and confidence
    bit for bit; entropy to the last bit of float32, where vectorised and scalar logs differ)."""
    from seglib.predict import run as run_mod
    from seglib.predict.ensemble import combine, summarize

    gen = torch.Generator().manual_seed(0)
    probs = [torch.softmax(torch.randn(2, 5, 37, 50, generator=gen), 1) for _ in range(2)]
    def same(got, want, s):
        (labels, conf, ent), (all_labels, all_conf, all_ent) = got, want
        assert torch.equal(labels, all_labels) and torch.equal(conf, all_conf[:, ::s, ::s])
        assert torch.allclose(ent, all_ent[:, ::s, ::s], rtol=0, atol=1e-6)

    for s in (1, 3):
        same(summarize(probs[0], s), summarize(probs[0]), s)
        for kind in ("mean", "vote"):
            ens = Ensemble(kind, ("a", "b"))
            same(combine(ens, probs, None, s), combine(ens, probs), s)
    ids = some_ids[:4]
    whole = predict(ds, members, [Ensemble("vote", ("unet", "segformer"))], ids, device="cpu", use_cache=False)
    monkeypatch.setattr(run_mod, "REDUCE_PIXELS", 128 * 10)         # bands of 9 rows (whole strides of 3)
    monkeypatch.setattr("seglib.predict.column.MAP_SIDE", 50)       # maps of every 3rd pixel
    banded = predict(ds, members, [Ensemble("vote", ("unet", "segformer"))], ids, device="cpu", use_cache=False)
    for name in whole.names:
        a, b = whole.columns[name], banded.columns[name]
        assert np.array_equal(a.masks, b.masks) and np.array_equal(a.cms, b.cms)
        for i in ids:
            assert b.confidence_map(i).shape == (22, 43)
            assert np.array_equal(b.confidence_map(i), a.confidence_map(i)[::3, ::3])
            assert np.abs(b.entropy_map(i) - a.entropy_map(i)[::3, ::3]).max() <= 1 / 255 + 1e-6


def test_cleanlab_probabilities_are_averaged_band_by_band(monkeypatch):
    import torch.nn.functional as F

    import seglib.predict.quality as quality

    gen = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(2, 4, 150, 211, generator=gen), 1).half()
    labels = torch.randint(0, 6, (2, 150, 211), generator=gen, dtype=torch.uint8)   # 4, 5: unknown
    monkeypatch.setattr(quality, "CLEANLAB_SIDE", 32)
    monkeypatch.setattr(quality, "POOL_PIXELS", 211 * 20)        # bands of 14 rows: whole blocks of 7
    pooled, small = quality.reduce_for_cleanlab(probs, labels)
    assert torch.equal(pooled, F.avg_pool2d(probs.float(), 7, 7, ceil_mode=True))
    corner = labels[:, ::7, ::7].long()
    assert torch.equal(small, torch.where(corner < 4, corner, probs.float().max(1)[1][:, ::7, ::7]))
