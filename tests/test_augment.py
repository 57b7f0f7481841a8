"""seglib.augment: registry, building, determinism, serialisation round trips, checks."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from seglib.augment import (
    TRANSFORMS,
    PipelineError,
    build_compose,
    check_pipeline,
    default_steps,
    list_pipelines,
    load_pipeline,
    names,
    new_step,
    pick_images,
    preview,
    save_pipeline,
    steps_from_compose,
    to_json,
    to_python,
)
from seglib.augment.registry import IGNORE_INDEX, NOT_VALID_ARGS, SHIFT_SCALE_ROTATE, default_params, quiet

HW = (64, 128)


@pytest.fixture
def pair():
    """A textured grey image and a blocky mask with values {0, 5, 9} (linear blending of
    them yields ids outside the set)."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, HW, dtype=np.uint8)
    mask = np.zeros(HW, np.uint8)
    mask[8:40, 16:90] = 5
    mask[36:, 70:] = 9
    return img, mask


def _same(rows_a, rows_b) -> bool:
    return all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
               for ra, rb in zip(rows_a, rows_b, strict=True) for a, b in zip(ra, rb, strict=True))


@pytest.mark.parametrize("name", names())
def test_every_offered_transform_builds_with_its_defaults(name, pair):
    step = new_step(name, HW)
    compose = build_compose([{**step, "p": 1.0}], seed=0)
    img, mask = pair
    if TRANSFORMS[name].needs_rgb:
        img = np.repeat(img[..., None], 3, axis=2)
    out = compose(image=img, mask=mask)
    assert out["mask"].dtype == np.uint8


@pytest.mark.parametrize("name", names(spatial=True))
def test_spatial_transforms_never_invent_mask_values(name, pair):
    img, mask = pair
    compose = build_compose([{**new_step(name, HW), "p": 1.0}], seed=1)
    for _ in range(6):
        out = compose(image=img, mask=mask)
        assert set(np.unique(out["mask"])) <= {0, 5, 9, IGNORE_INDEX}  # borders from outside: ignored, no class


@pytest.mark.parametrize("name", ["Affine", "ElasticTransform", "Resize"])
def test_linear_mask_interpolation_is_caught(name, pair):
    step = new_step(name, HW)
    step["params"].update(mask_interpolation=1)
    if name == "Affine":
        step["params"].update(rotate=(-30.0, 30.0), scale=(0.7, 1.3))
    if name == "ElasticTransform":
        step["params"].update(alpha=200.0, sigma=8.0)
    if name == "Resize":
        step["params"].update(height=37, width=91)
    found = check_pipeline([step], [pair])
    assert any(f.level == "error" and "interpolation" in f.message for f in found)


def test_pixel_transforms_leave_the_mask_alone(pair):
    img, mask = pair
    steps = [{**new_step(n, HW), "p": 1.0} for n in names(spatial=False) if not TRANSFORMS[n].needs_rgb]
    out = build_compose(steps, seed=0)(image=img, mask=mask)
    assert np.array_equal(out["mask"], mask) and not np.array_equal(out["image"], img)


def test_same_seed_same_pixels_other_seed_other_pixels(pair):
    steps = [new_step("HorizontalFlip", HW),
             new_step("Affine", HW) | {"params": default_params("Affine", HW) | {"rotate": (-40.0, 40.0)}},
             new_step("GaussNoise", HW)]
    a = preview(build_compose(steps), [pair] * 3, draws=4, seed=7)
    b = preview(build_compose(steps), [pair] * 3, draws=4, seed=7)
    c = preview(build_compose(steps), [pair] * 3, draws=4, seed=8)
    assert _same(a, b) and not _same(a, c)


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_save_load_round_trip_gives_identical_draws(fmt, pair):
    steps = [new_step(n, HW) for n in ["HorizontalFlip", "Affine", "ElasticTransform", "CLAHE", "GaussNoise",
                                        "RandomBrightnessContrast", "CoarseDropout"]]
    compose = build_compose(steps)
    path = save_pipeline("round", compose, fmt)
    assert path.suffix == f".{fmt}" and list_pipelines() == ["round"]
    loaded = load_pipeline("round")
    by_path = load_pipeline(str(path))
    direct = preview(build_compose(steps), [pair] * 2, draws=5, seed=3)
    assert _same(direct, preview(loaded, [pair] * 2, draws=5, seed=3))
    assert _same(direct, preview(by_path, [pair] * 2, draws=5, seed=3))


@pytest.mark.parametrize("name", names())
def test_to_dict_from_dict_and_steps_round_trip(name, pair):
    import albumentations as A
    img, mask = pair
    if TRANSFORMS[name].needs_rgb:
        img = np.repeat(img[..., None], 3, axis=2)
    compose = build_compose([{**new_step(name, HW), "p": 0.8}])
    with quiet(SHIFT_SCALE_ROTATE, NOT_VALID_ARGS):  # albumentations' own round trip is noisy
        again = A.from_dict(A.to_dict(compose))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ours is not: the steps hold only arguments the class takes
        rebuilt = build_compose(steps_from_compose(compose))
    ref = preview(compose, [(img, mask)], draws=4, seed=11)
    assert _same(ref, preview(again, [(img, mask)], draws=4, seed=11))
    assert _same(ref, preview(rebuilt, [(img, mask)], draws=4, seed=11))


def test_saved_file_is_albumentations_own_format():
    import albumentations as A
    path = save_pipeline("plain", [new_step("VerticalFlip", HW)])
    doc = json.loads(path.read_text())
    assert doc["transform"]["transforms"][0]["__class_fullname__"] == "VerticalFlip"
    assert isinstance(A.load(str(path)), A.Compose)


def test_rotate90_on_non_square_and_rgb_transforms_on_grey_are_flagged(pair):
    found = check_pipeline([new_step("RandomRotate90", HW), new_step("HueSaturationValue", HW)], [pair])
    msgs = {f.transform: f for f in found}
    assert msgs["RandomRotate90"].level == "error" and "64x128" in msgs["RandomRotate90"].message
    assert "RGB" in msgs["HueSaturationValue"].message
    square = (pair[0][:, :64], pair[1][:, :64])
    assert not [f for f in check_pipeline([new_step("RandomRotate90", HW)], [square]) if f.level == "error"]


def test_mixed_output_sizes_are_flagged(pair):
    steps = [{"name": "RandomCrop", "params": {"height": 32, "width": 32}, "p": 0.5}]
    assert any(f.transform == "pipeline" for f in check_pipeline(steps, [pair]))


def test_a_crop_larger_than_the_image_names_the_transform(pair):
    steps = [{"name": "RandomCrop", "params": {"height": 128, "width": 256}, "p": 1.0}]
    found = check_pipeline(steps, [pair])
    assert found[0].level == "error" and found[0].transform == "RandomCrop"
    with pytest.raises(PipelineError, match="RandomCrop"):
        preview(build_compose(steps), [pair], draws=1)


def test_bad_names_and_files_give_clear_errors(tmp_path):
    with pytest.raises(PipelineError, match="no saved pipeline"):
        load_pipeline("nope")
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(PipelineError, match="broken.json"):
        load_pipeline(bad)
    with pytest.raises(PipelineError, match="pipeline name"):
        save_pipeline("../escape", [new_step("VerticalFlip", HW)])
    with pytest.raises(PipelineError, match="NoSuchTransform"):
        build_compose([{"name": "NoSuchTransform", "params": {}, "p": 1}])
    with pytest.raises(PipelineError, match="GaussNoise"):
        build_compose([{"name": "GaussNoise", "params": {"std_range": (0.9, 0.1)}, "p": 1}])


def test_python_code_builds_the_same_pipeline(pair):
    steps = [new_step("HorizontalFlip", HW), {**new_step("Affine", HW), "p": 0.7}]
    steps[1]["params"].update(rotate=(-15.0, 15.0), border_mode=2)
    code = to_python(steps, seed=5)
    assert ("A.Affine(translate_percent=(0.0, 0.0), rotate=(-15.0, 15.0), border_mode=cv2.BORDER_REFLECT, "
            "fill_mask=255, p=0.7)") in code
    ns: dict = {}
    exec(code, ns)  # the code a user copies must run as is
    assert _same(preview(ns["pipeline"], [pair], 4, seed=5), preview(build_compose(steps), [pair], 4, seed=5))


def test_default_pipeline_and_its_json_load_back(pair):
    import albumentations as A
    steps = default_steps(HW)
    assert [s["name"] for s in steps] == ["HorizontalFlip", "Affine", "RandomBrightnessContrast"]
    assert steps[1]["params"]["rotate"] == (-15.0, 15.0)
    assert check_pipeline(steps, [pair]) == []  # a safe start: nothing to warn about
    doc = json.loads(to_json(steps))
    assert [t["__class_fullname__"] for t in doc["transform"]["transforms"]] == [s["name"] for s in steps]
    again = steps_from_compose(A.from_dict(doc))
    assert again[1]["params"]["rotate"] == (-15.0, 15.0)


def test_pick_images_is_seeded_ordered_and_bounded():
    ids = [f"{i:05d}" for i in range(50)]
    a = pick_images(ids, 8, seed=3)
    assert a == pick_images(ids, 8, seed=3) and a != pick_images(ids, 8, seed=4)
    assert len(set(a)) == 8 and a == sorted(a)
    assert pick_images(ids[:3], 8) == ids[:3]



# --- borders brought in by spatial steps: the ignore index, never class 0 ------------------------
def _rotated_default(hw):
    """The default pipeline with its Affine always on, turning 30 degrees and shifting by a fifth."""
    steps = default_steps(hw)
    affine = next(s for s in steps if s["name"] == "Affine")
    affine["p"] = 1.0
    affine["params"].update(rotate=(30.0, 30.0), translate_percent=(0.2, 0.2))
    return steps


def test_default_pipeline_fills_borders_with_the_ignore_index():
    import seglib.metrics

    assert IGNORE_INDEX == seglib.metrics.IGNORE_INDEX == 255  # what the losses and metrics skip
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)
    ones = np.ones((64, 96), np.uint8)
    out = build_compose(_rotated_default((64, 96)), seed=0)(image=img, mask=ones)["mask"]
    assert set(np.unique(out).tolist()) == {1, IGNORE_INDEX}   # not a single pixel of class 0
    assert out[0, 0] == IGNORE_INDEX and 0.05 < (out == IGNORE_INDEX).mean() < 0.6  # corners came from outside
    assert check_pipeline(_rotated_default((64, 96)), [(img, ones)]) == []  # ignored borders are no finding
    for name in ("Rotate", "ShiftScaleRotate", "Affine", "SafeRotate", "Perspective", "PadIfNeeded"):
        if name in TRANSFORMS:
            assert new_step(name, (64, 96))["params"]["fill_mask"] == IGNORE_INDEX, name


def test_a_class_id_as_border_fill_is_still_reported(pair):
    step = {**new_step("Affine", HW), "p": 1.0}
    step["params"].update(rotate=(30.0, 30.0), fill_mask=3)
    found = check_pipeline([step], [pair])
    assert any("fill_mask=3" in f.message and f"fill_mask to {IGNORE_INDEX}" in f.message for f in found)


def test_training_leaves_the_ignored_borders_out_of_losses_and_metrics():
    import torch

    from seglib.losses import LossConfig, build_loss
    from seglib.metrics import ConfusionMatrix

    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)
    out = build_compose(_rotated_default((64, 96)), seed=0)(image=img, mask=np.ones((64, 96), np.uint8))["mask"]
    target = torch.from_numpy(out.astype(np.int64))[None]
    border = torch.from_numpy(out == IGNORE_INDEX)
    assert border.any()
    cm = ConfusionMatrix(num_classes=2)
    cm.update(torch.zeros_like(target), target)          # every pixel predicted as class 0
    assert int(cm.matrix.sum()) == int((out == 1).sum())  # the border pixels are not counted
    for formula in ("ce", "focal+dice", "lovasz"):
        loss = build_loss(LossConfig(formula=formula), num_classes=2, scored=[0, 1])
        logits = torch.randn(1, 2, 64, 96, generator=torch.Generator().manual_seed(0))
        wild, inside = logits.clone(), logits.clone()
        wild.permute(0, 2, 3, 1)[0][border] = 50.0 * torch.randn(int(border.sum()), 2)
        inside.permute(0, 2, 3, 1)[0][~border] = 50.0 * torch.randn(int((~border).sum()), 2)
        assert torch.allclose(loss(logits, target), loss(wild, target)), formula  # borders change nothing...
        assert not torch.allclose(loss(logits, target), loss(inside, target)), formula  # ...the image does


# --- the page's preview pictures, drawn once per key ----------------------------------------------
def test_gallery_draws_once_per_key_and_shows_ignored_borders(demo_npz, monkeypatch):
    import io

    from PIL import Image

    import seglib.augment.pictures as pictures_module
    from seglib.data import open_dataset

    ds = open_dataset(demo_npz)
    ids = ds.labeled_ids[:2]
    steps = _rotated_default(ds.image(ids[0]).shape[:2])
    pictures_module.GALLERIES.clear()
    drawn = []
    real = pictures_module.preview
    monkeypatch.setattr(pictures_module, "preview", lambda *a, **k: drawn.append(1) or real(*a, **k))

    def pictures(**change):
        args = {"fingerprint": "fp", "ids": ids, "steps": steps, "draws": 2, "seed": 0, "opacity": 1.0} | change
        return pictures_module.gallery(ds, **args)

    g = pictures()
    assert [r.image_id for r in g.rows] == ids and all(len(r.draws) == 2 for r in g.rows) and not g.findings
    assert pictures() is g and len(drawn) == 1  # the same key: nothing drawn again

    def crop(image, mask):
        return image[:32, :32], mask[:32, :32]

    changes = [{"seed": 1}, {"opacity": 0.5}, {"fingerprint": "fp2"}, {"ids": ids[:1]}, {"draws": 3},
               {"steps": default_steps()}, {"prepare": crop, "policy": ("crop", 32)},
               {"prepare": crop, "policy": ("crop", 32, "another seed")}]
    for k, change in enumerate(changes, start=2):
        assert pictures(**change) is not g and len(drawn) == k, change  # each part of the key counts
    with pytest.raises(ValueError, match="policy"):
        pictures(prepare=crop, seed=9)

    # Opacity 1 paints the mask's colours as they are: a corner brought in by the rotation shows the
    # colour of ignored ids, not that of class 0.
    corner = tuple(np.asarray(Image.open(io.BytesIO(g.rows[0].draws[0][0])).convert("RGB"))[0, 0])
    lut = ds.class_map.lut()
    assert corner == tuple(lut[IGNORE_INDEX]) != tuple(lut[0])
    assert 0.05 < g.ignored_share < 0.6
    assert pictures(steps=default_steps()[:1]).ignored_share == 0  # a flip brings nothing in
