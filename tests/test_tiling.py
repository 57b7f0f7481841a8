"""Full-resolution inference by sliding windows (seglib.tiling) and validation without padding:
windows and weights, the run's input policy as an inference plan, exactness on one window, no
seams, bounded batches, and a U-Net trained on crops of synthetic 1500x1200 images that
predicts them whole-image-equivalently by tiles (training validation, predict, evaluate --tile)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from seglib import tiling
from seglib.cli import main as cli_main
from seglib.data import open_dataset
from seglib.predict import dataset_layout, embedding_projection, label_quality, open_members, predict
from seglib.predict.infer import forward_probs, iter_batches
from seglib.tiling import InferencePlan, gaussian_weight, inference_plan, sliding_window, window_starts
from seglib.train.config import TrainConfig
from seglib.train.data import size_batches

H, W = 1200, 1500


class _Pointwise(torch.nn.Module):
    """A 1x1 convolution: a pixel's output does not depend on where the pixel is, so any
    correct blend of windows gives exactly the whole image's output."""

    def __init__(self, channels: int = 3, classes: int = 4):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(channels, classes, 1)
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        return self.conv(x)


class _Context(torch.nn.Module):
    """3x3 convolutions and a pooled global term: the output depends on the whole input."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 4, 3, padding=1)

    def forward(self, x):
        f = torch.relu(self.a(x))
        return self.b(f) + f.mean((2, 3), keepdim=True)[:, :4]


class _WindowRamp(_Pointwise):
    """Logits that depend on the position inside the input (a ramp left to right): stitched
    windows without blending would jump at every window border."""

    def forward(self, x):
        ramp = torch.linspace(0, 4, x.shape[-1])
        return self.conv(x) + ramp * torch.arange(4.0)[:, None, None]


def _softmax(model):
    return lambda x: torch.softmax(model(x), 1)


# ---- windows, weights, plans -------------------------------------------------------------

@pytest.mark.parametrize("length,window,overlap", [(1500, 256, 0.25), (1200, 512, 0.5), (513, 512, 0.25),
                                                   (100, 256, 0.25), (1000, 128, 0.0), (1024, 512, 0.25)])
def test_windows_cover_the_image_and_overlap_as_asked(length, window, overlap):
    starts = window_starts(length, window, overlap)
    assert starts[0] == 0
    if length <= window:
        assert starts == [0]
        return
    assert starts[-1] + window == length                       # the last window ends at the border
    gaps = np.diff(starts)
    assert (gaps > 0).all() and (gaps <= int(window * (1 - overlap))).all()   # at least the overlap asked


def test_gaussian_weight_is_highest_at_the_centre_and_never_zero():
    w = gaussian_weight(64, 96)
    assert w.shape == (64, 96) and float(w.min()) > 0 and float(w.max()) == pytest.approx(1.0, abs=1e-3)
    assert torch.allclose(w, w.flip(0)) and torch.allclose(w, w.flip(1))   # symmetric
    assert float(w[32, 48]) > float(w[32, 80]) > float(w[32, 95])           # falls off to the edges


def test_inference_plan_follows_the_run_and_the_tile_flag():
    old = {"resolved": {"model": {}}}                                   # before input policies: whole images
    assert inference_plan(old).mode == "full" and inference_plan({}).mode == "full"
    crop = {"resolved": {"input": {"mode": "crop", "size": 256, "why": "auto"}}}
    assert (inference_plan(crop).mode, inference_plan(crop).size) == ("tile", 256)
    resize = {"resolved": {"input": {"mode": "resize", "size": 384}}}
    assert (inference_plan(resize).mode, inference_plan(resize).size) == ("resize", 384)
    assert inference_plan({"resolved": {"input": {"mode": "full", "size": None}}}).mode == "full"
    assert (inference_plan(crop, tile=512).mode, inference_plan(crop, tile=512).size) == ("tile", 512)
    assert inference_plan(crop, tile=0).mode == "full"                  # --tile 0: whole images
    cfg = TrainConfig(resolved={"input": {"mode": "crop", "size": 128}})  # a TrainConfig works too
    assert inference_plan(cfg).size == 128 and inference_plan(cfg).key() != inference_plan(crop).key()
    with pytest.raises(ValueError):
        inference_plan(crop, tile=-1)
    plan = inference_plan(crop)
    assert plan.window(200, 300) == (200, 256) and plan.window(256, 256) is None
    assert plan.images_per_batch(1200, 1500, 16) == 1 and plan.images_per_batch(64, 128, 16) == 16


# ---- exactness and seams -----------------------------------------------------------------

def test_an_image_that_fits_one_window_is_the_plain_forward_pass():
    model = _Context().eval()
    images = torch.rand(3, 3, 200, 240)
    with torch.no_grad():
        plain = forward_probs(model, images)
        plans = (InferencePlan("tile", 256), InferencePlan("tile", 240), InferencePlan(), InferencePlan("resize", 240))
        for plan in plans:
            assert torch.equal(forward_probs(model, images, plan=plan), plain), plan
        assert torch.equal(forward_probs(model, images, tta=True, plan=InferencePlan("tile", 256)),
                           forward_probs(model, images, tta=True))


def test_tiles_of_a_pointwise_model_equal_the_whole_image_exactly():
    model = _Pointwise().eval()
    images = torch.rand(1, 3, H, W)
    small = images[..., :500, :700]
    with torch.no_grad():
        whole, whole_small = forward_probs(model, images), forward_probs(model, small)
        model.shapes.clear()
        tiled = forward_probs(model, images, plan=InferencePlan("tile", 256), window_batch=8)
        shapes = list(model.shapes)
        flipped = forward_probs(model, small, tta=True, plan=InferencePlan("tile", 256, overlap=0.5))
    assert tiled.shape == whole.shape == (1, 4, H, W)
    assert (tiled - whole).abs().max() < 1e-5 and (flipped - whole_small).abs().max() < 1e-5
    # windows went 8 at a time, each 256 x 256: memory bounded by the window batch
    assert {s[2:] for s in shapes} == {(256, 256)} and max(s[0] for s in shapes) == 8
    assert sum(s[0] for s in shapes) == len(window_starts(H, 256)) * len(window_starts(W, 256))


def test_blending_leaves_no_seams():
    model = _WindowRamp().eval()
    image = torch.full((1, 3, 300, 1000), 0.5)
    with torch.no_grad():
        blended = sliding_window(_softmax(model), image, 200, overlap=0.25)
        hard = sliding_window(_softmax(model), image, 200, overlap=0.25, sigma=1e6)   # flat weights: averaging
        inside = float(_softmax(model)(image[..., :200]).diff(dim=-1).abs().max())   # steepest step in a window
    assert torch.allclose(blended.sum(1), torch.ones(1, 300, 1000), atol=1e-5)
    assert float(blended.diff(dim=-1).abs().max()) < 3 * inside                 # smooth: no jump at a border
    assert float(hard.diff(dim=-1).abs().max()) > 20 * inside                    # what flat weights would leave


def test_full_plan_tiles_images_beyond_the_safety_limit(monkeypatch):
    monkeypatch.setattr(tiling, "SAFETY_WINDOW", 256)
    monkeypatch.setattr(tiling, "SAFETY_PIXELS", 4 * 256 * 256)
    model = _Pointwise().eval()
    with torch.no_grad():
        forward_probs(model, torch.rand(1, 3, 500, 500))          # under the limit: one whole pass
        assert model.shapes == [(1, 3, 500, 500)]
        model.shapes.clear()
        out = forward_probs(model, torch.rand(1, 3, 600, 700), window_batch=4)
    assert out.shape == (1, 4, 600, 700) and {s[2:] for s in model.shapes} == {(256, 256)}


def test_resize_plan_predicts_a_reduced_image_and_answers_at_full_size():
    model = _Pointwise().eval()
    with torch.no_grad():
        out = forward_probs(model, torch.rand(1, 3, H, W), plan=InferencePlan("resize", 300))
    assert model.shapes == [(1, 3, 240, 300)]                   # longest side 300, aspect kept
    assert out.shape == (1, 4, H, W) and torch.allclose(out.sum(1), torch.ones(1, H, W), atol=1e-5)


# ---- batches: one size each, never padded, big images alone ------------------------------

class _Stats:
    def __init__(self, shapes: dict[str, tuple[int, int]]):
        self.ids = list(shapes)
        self.shape = np.array([[h, w, 3] for h, w in shapes.values()], np.int32)


def test_validation_batches_hold_one_size_and_big_images_go_alone():
    shapes = {"a": (64, 128), "b": (64, 128), "big1": (H, W), "c": (80, 80), "d": (64, 128), "big2": (H, W)}
    stats = _Stats(shapes)
    ids = list(shapes) + ["unknown"]
    batches = size_batches(ids, stats, 2, inference_plan({"resolved": {"input": {"mode": "crop", "size": 256}}}))
    assert sorted(k for b in batches for k in b) == list(range(len(ids)))    # every image once
    for b in batches:
        assert len({shapes.get(ids[k], ("?", k)) for k in b}) == 1          # one size: nothing to pad
    assert batches[0] == [0, 1]                                              # the first image leads
    assert [0, 1] in batches and [3] in batches and [4] in batches and [2] in batches and [5] in batches
    whole = size_batches(ids, stats, 8, InferencePlan())                     # whole images: by size only
    assert [0, 1, 4] in whole and [2, 5] in whole


def test_iter_batches_keep_big_images_apart(tmp_path):
    ds = _write_dataset(tmp_path / "mixed", [(H, W), (H, W)] + [(64, 128)] * 6 + [(H, W)], seed=3)
    ids = sorted(ds.ids, key=lambda i: int(i[3:]))
    got = list(iter_batches(ds, ids, batch_size=4, channels=3))
    assert [i for b in got for i in b.ids] == ids
    sizes = [tuple(b.images.shape[-2:]) for b in got]
    assert all(len(b.ids) == 1 for b, s in zip(got, sizes, strict=True) if s == (H, W))   # 1.8 Mpx each: alone
    assert any(len(b.ids) == 4 for b in got)                                       # small ones still batch


# ---- trained models on big images -----------------------------------------------------------

def _scene(rng, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image with three classes a model learns in a few steps: noisy grey ground (0),
    reddish discs (1), greenish striped rectangles (2); shapes scale with the image."""
    mask = np.zeros((h, w), np.uint8)
    yy, xx = np.mgrid[:h, :w]
    k = min(h, w) / 1200
    for _ in range(12):
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(30, 110) * k
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 1
    for _ in range(8):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        mask[y0 : y0 + int(rng.integers(40, 200) * k), x0 : x0 + int(rng.integers(40, 240) * k)] = 2
    colours = np.array([[110, 110, 110], [190, 70, 60], [70, 170, 80]], np.float32)
    image = colours[mask] + rng.normal(0, 18, (h, w, 3))
    image[mask == 2] += 25 * ((xx[mask == 2] // 6) % 2)[:, None]
    return np.clip(image, 0, 255).astype(np.uint8), mask


def _write_dataset(root, shapes, seed: int = 0):
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k, (h, w) in enumerate(shapes):
        image, mask = _scene(rng, h, w)
        Image.fromarray(image).save(root / "images" / f"img{k}.png")
        Image.fromarray(mask).save(root / "masks" / f"img{k}.png")
    (root / "classes.json").write_text(json.dumps([{"id": 0, "name": "ground"}, {"id": 1, "name": "disc"},
                                                   {"id": 2, "name": "stripes"}]))
    return open_dataset(root)


class _TinyNet(torch.nn.Module):
    """A small encoder-decoder (two stride-2 stages, about 40 px of context): cheap enough to
    train and to run on whole 1500x1200 images in a test, and its output depends on context,
    so windows can differ from the whole image where a window cuts that context."""

    def __init__(self, classes: int = 3):
        super().__init__()
        torch.manual_seed(0)
        conv = torch.nn.Conv2d
        self.a, self.b, self.c = conv(3, 8, 3, padding=1), conv(8, 16, 3, 2, 1), conv(16, 16, 3, 2, 1)
        self.up, self.out = conv(16 + 8, 8, 3, padding=1), conv(8, classes, 1)

    def forward(self, x):
        a = torch.relu(self.a(x))
        deep = torch.relu(self.c(torch.relu(self.b(a))))
        deep = torch.nn.functional.interpolate(deep, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.out(torch.relu(self.up(torch.cat([deep, a], 1))))


def test_tiled_prediction_of_a_trained_model_agrees_with_the_whole_image():
    rng = np.random.default_rng(1)
    scenes = [_scene(rng, H, W) for _ in range(3)]
    images = [torch.from_numpy(i).permute(2, 0, 1).float().div(255) for i, _ in scenes]
    masks = [torch.from_numpy(m.astype(np.int64)) for _, m in scenes]
    model = _TinyNet()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(30):      # 128-px crops of the first two images, as a crop-trained run learns
        xs, ys = [], []
        for _ in range(6):
            k = int(torch.randint(2, (1,), generator=gen))
            y, x = (int(torch.randint(n - 128, (1,), generator=gen)) for n in (H, W))
            xs.append(images[k][:, y : y + 128, x : x + 128])
            ys.append(masks[k][y : y + 128, x : x + 128])
        loss = torch.nn.functional.cross_entropy(model(torch.stack(xs)), torch.stack(ys))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    plan = inference_plan({"resolved": {"input": {"mode": "crop", "size": 128}}})
    with torch.no_grad():
        whole = forward_probs(model, images[2][None]).argmax(1)[0]
        tiled = forward_probs(model, images[2][None], plan=plan, window_batch=32).argmax(1)[0]
    accuracy = float((whole == masks[2]).float().mean())
    agree = float((tiled == whole).float().mean())
    print(f"accuracy {accuracy:.4f}, tiled agrees with whole on {agree:.4%}")
    assert accuracy > 0.9, accuracy                     # a trained model, not a constant one
    assert agree >= 0.99, agree


class _Seen:
    """Callbacks that keep what validation showed."""

    def __init__(self):
        self.strip = None

    def on_validation_batch(self, images, masks, predictions, ids):
        self.strip = (tuple(images.shape), tuple(predictions.shape), list(ids))

    def __getattr__(self, name):          # every other hook: nothing to do
        return lambda *a, **k: None


VAL_SHAPES = [(400, 500), (400, 500), (300, 360)]


@pytest.fixture(scope="module")
def big_run(tmp_path_factory):
    """(dataset, run folder, result, callbacks): a U-Net-sized FPN trained for two steps on 128-px
    crops (for plumbing, not quality), validated on whole images of two sizes larger than a window."""
    import os

    root = tmp_path_factory.mktemp("big")
    ds = _write_dataset(root / "data", VAL_SHAPES + [(256, 320)] * 16)
    old = os.environ.get("SEGLIB_DATA_DIR")
    os.environ["SEGLIB_DATA_DIR"] = str(root / "seglib-data")
    from seglib.train import TrainConfig, train

    seen = _Seen()
    try:
        cfg = TrainConfig(data=str(root / "data"), arch="FPN", encoder="resnet18", input_mode="crop", input_size=128,
                          train_ids=[f"img{k}" for k in range(3, 19)], val_ids=["img0", "img2", "img1"], epochs=1,
                          batch_size=8, lr=3e-3, sampler="uniform", loss="ce", patience=0, seed=0)
        result = train(cfg, run_dir=root / "run", callbacks=[seen])
    finally:
        if old is None:
            os.environ.pop("SEGLIB_DATA_DIR", None)
        else:
            os.environ["SEGLIB_DATA_DIR"] = old
    return ds, root / "run", result, seen


def test_training_validates_whole_images_by_tiles_one_size_per_batch(big_run):
    ds, run, result, seen = big_run
    config = json.loads((run / "config.json").read_text())
    assert config["resolved"]["input"]["mode"] == "crop" and inference_plan(config).size == 128
    assert 0 <= result["val"]["pixel_accuracy"] <= 1
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    scored = np.asarray(history[-1]["confusion"]).sum()
    assert scored == sum(h * w for h, w in VAL_SHAPES)         # every pixel of every image, none of padding
    images, preds, ids = seen.strip
    assert ids == ["img0"] and images == (1, 3, 400, 500) and preds == (1, 400, 500)   # tiled images go alone


def test_predict_follows_the_run_plan_and_tile_overrides_it(big_run):
    ds, run, *_ = big_run
    members, problems = open_members([run], dataset_layout(ds))
    assert problems == []
    ids = ["img0", "img2"]
    tiled = predict(ds, members, [], ids, device="cpu", batch_size=8)
    whole = predict(ds, members, [], ids, device="cpu", batch_size=8, tile=0)
    assert whole.cached == []                                   # another plan: predicted again, cached apart
    col_t, col_w = tiled.columns["run"], whole.columns["run"]
    assert col_t.info["inference"]["mode"] == "tile" and col_w.info["inference"]["mode"] == "full"
    for i in ids:
        _, truth, _ = ds.load_pair(i)
        assert col_t.mask(i).shape == col_w.mask(i).shape == truth.shape      # each image at its own size


def test_evaluate_tile_flag_label_quality_and_the_learned_map(big_run, capsys):
    ds, run, *_ = big_run
    code = cli_main(["evaluate", "--checkpoint", str(run), "--data", str(ds.source), "--split", "val",
                     "--tile", "256", "--json", "--quiet"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["runs"]["run"]["inference"] == {"mode": "tile", "size": 256, "overlap": 0.25,
                                                             "why": "windows of 256 px (given)"}
    assert cli_main(["evaluate", "--checkpoint", str(run), "--data", str(ds.source), "--tile", "8", "--quiet"]) == 1
    assert "--tile 8" in capsys.readouterr().err
    member = open_members([run], dataset_layout(ds))[0][0]
    proj = embedding_projection(ds, member, ["img0", "img1", "img2", "img3"], device="cpu", use_cache=False)
    assert np.isfinite(proj.to_numpy()).all()
    lq = label_quality(ds, member, device="cpu", use_cache=False)
    assert lq.shapes == {"img0": (400, 500), "img1": (400, 500), "img2": (300, 360)}


# ---- memory of a pass (issue 22) ---------------------------------------------------------------

def test_uint8_images_are_made_float_window_by_window_with_the_same_probabilities():
    model = _Pointwise()
    images = torch.randint(0, 256, (2, 3, 300, 420), dtype=torch.uint8)
    for plan in (InferencePlan("tile", 128), InferencePlan(), InferencePlan("resize", 200)):
        model.shapes.clear()
        with torch.no_grad():
            got = forward_probs(model, images, plan=plan, window_batch=3)
            want = forward_probs(model, images.float().div_(255.0), plan=plan, window_batch=3)
        assert torch.equal(got, want), plan
    with torch.no_grad():
        forward_probs(model, images, plan=InferencePlan("tile", 128), window_batch=3)
    assert max(s[0] for s in model.shapes) == 3    # windows went in threes, no float copy of the image


def test_a_cpu_forward_call_sees_at_most_the_pixel_budget(tmp_path):
    """The page's batch size (16) is a number of windows for a GPU; on a CPU 16 windows of 512
    peaked at +1.8 GB for a U-Net/resnet18 (issue 22): a call holds CPU_FORWARD_PIXELS at most,
    windows or whole images alike, and the images come as uint8 with uint8 masks."""
    from seglib.predict import infer
    from seglib.predict.run import probs_batches

    ds = _write_dataset(tmp_path / "d", [(600, 700), (600, 700), (96, 128), (96, 128), (96, 128)], seed=2)
    layout = dataset_layout(ds)
    model = _Pointwise(3, layout.num_classes)
    budget = infer.CPU_FORWARD_PIXELS
    for plan, window in ((InferencePlan("tile", 512), 512 * 512), (InferencePlan(), None)):
        model.shapes.clear()
        got = list(probs_batches(ds, {"m": model}, ds.ids, layout, False, 16, torch.device("cpu"),
                                 plans={"m": plan}))
        assert sorted(i for b, _ in got for i in b.ids) == sorted(ds.ids)
        assert all(b.images.dtype == torch.uint8 and b.masks.dtype == torch.uint8 for b, _ in got)
        assert max(s[0] * s[2] * s[3] for s in model.shapes) <= budget
        if window:
            assert max(s[0] for s in model.shapes) == budget // window == 2
    assert infer.per_call("cpu", 16, 512 * 512) == 2 and infer.per_call("meta", 16, 512 * 512) == 16
