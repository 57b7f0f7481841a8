"""Tiled inference blends in float32 bands and may hand back float16 (issue 16: ~73 bytes a pixel
held while predicting a big image); the results stay the float32 blend's within tolerance. The
Compare page's pass holds no more for more images (issue 22)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from seglib import tiling
from seglib.tiling import gaussian_weight, sliding_window, window_starts


def _reference(forward, images, window, overlap=tiling.OVERLAP, sigma=tiling.SIGMA):
    """The whole-image float32 blend: every window weighted into one map, divided by the summed weights."""
    b, _, h, w = images.shape
    wh, ww = min(window, h), min(window, w)
    weight = gaussian_weight(wh, ww, sigma)
    out, norm = None, torch.zeros(h, w)
    for i in range(b):
        for y in window_starts(h, wh, overlap):
            for x in window_starts(w, ww, overlap):
                p = forward(images[i : i + 1, :, y : y + wh, x : x + ww])[0] * weight
                out = torch.zeros(b, p.shape[0], h, w) if out is None else out
                out[i, :, y : y + wh, x : x + ww] += p
                if i == 0:
                    norm[y : y + wh, x : x + ww] += weight
    return out / norm


def _forward(x: torch.Tensor) -> torch.Tensor:
    """A position-sensitive stand-in for a model: softmax over 4 mixes of the channels and a ramp."""
    ramp = torch.linspace(0, 3, x.shape[-1])[None, None, None]
    logits = torch.cat([x * 4, x[:, :1] * ramp - x[:, 1:2] * 2], 1)[:, :4]
    return torch.softmax(logits * 3, 1)


def test_banded_float16_blend_equals_float32_blend():
    torch.manual_seed(0)
    images = torch.rand(2, 3, 300, 437)
    want = _reference(_forward, images, 96)
    got32 = sliding_window(_forward, images, 96, batch=5)
    got16 = sliding_window(_forward, images, 96, batch=7, out_dtype=torch.float16)
    assert got16.dtype == torch.float16 and got32.dtype == torch.float32
    assert torch.allclose(got32, want, atol=1e-5)
    assert (got16.float() - want).abs().max() < 1e-3
    assert torch.allclose(got16.float().sum(1), torch.ones(2, 300, 437), atol=3e-3)


def test_tall_narrow_and_one_row_of_windows():
    torch.manual_seed(1)
    for shape, window in (((1, 3, 500, 90), 128), ((3, 3, 100, 400), 128), ((1, 3, 256, 256), 64)):
        images = torch.rand(*shape)
        want = _reference(_forward, images, window, overlap=0.5)
        got = sliding_window(_forward, images, window, overlap=0.5, batch=3, out_dtype=torch.float16)
        assert (got.float() - want).abs().max() < 1e-3, shape


def test_windows_go_in_batches_through_one_buffer():
    seen = []

    def forward(x):
        seen.append(x.shape[0])
        return _forward(x)

    images = torch.rand(1, 3, 1024, 512)
    k, h, w = 4, 1024, 512
    out = sliding_window(forward, images, 128, batch=8, out_dtype=torch.float16)
    assert out.dtype == torch.float16 and out.shape == (1, k, h, w)
    assert max(seen) <= 8 and sum(seen) == len(window_starts(h, 128)) * len(window_starts(w, 128))


def test_gaussian_weight_is_cached_and_unchanged():
    a = gaussian_weight(64, 48)
    b = gaussian_weight(64, 48)
    assert torch.equal(a, b) and a[32, 24] == a.max() and a.min() > 0
    assert tiling._axis_weight(64, tiling.SIGMA) is tiling._axis_weight(64, tiling.SIGMA)


def test_reuse_freed_memory_nests_and_restores():
    with tiling.reuse_freed_memory():
        with tiling.reuse_freed_memory():
            assert tiling._HEAP["users"] in (0, 2)   # 0 where there is no glibc: nothing changes
        x = torch.ones(1 << 20)
        del x
    assert tiling._HEAP["users"] == 0


# ---- a Compare pass over several big images (issue 22) ---------------------------------------

PHOTO = (192, 288)      # H, W: 12 windows of 96 each
WINDOW = 96


def _photo_folder(root, n: int):
    """n smooth RGB photos of PHOTO with 3-class masks (each different), as a folder dataset."""
    import cv2
    from PIL import Image

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    h, w = PHOTO
    for k in range(n):
        rng = np.random.default_rng(k)
        field = cv2.resize(rng.uniform(0, 1, (4, 5)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
        mask = np.digitize(field, [0.4, 0.7]).astype(np.uint8)
        image = np.clip(rng.uniform(30, 220, (3, 3))[mask] * (0.8 + 0.4 * field[..., None]), 0, 255)
        Image.fromarray(image.astype(np.uint8)).save(root / "images" / f"p{k:02d}.png")
        Image.fromarray(mask).save(root / "masks" / f"p{k:02d}.png")
    (root / "classes.json").write_text(json.dumps([{"id": 0, "name": "a"}, {"id": 1, "name": "b"},
                                                   {"id": 2, "name": "c"}]))
    return root


def _crop_run(path, data, ids, seed: int):
    """A U-Net/mobilenet_v2 run folder (random weights) that trained on WINDOW-px crops of ``data``."""
    from seglib.data import open_dataset
    from seglib.models import ModelSpec, build_model
    from seglib.train.config import TrainConfig
    from seglib.train.runs import RunFolder

    classes = [{"id": c.id, "name": c.name, "color": c.color, "ignore": False} for c in open_dataset(data).class_map]
    spec = ModelSpec("Unet", "mobilenet_v2", 3, len(classes))
    cfg = TrainConfig(data=str(data), arch="Unet", encoder="mobilenet_v2", val_ids=list(ids),
                      resolved={"model": spec.to_dict(), "in_channels": 3, "num_classes": len(classes),
                                "class_map": classes, "input": {"mode": "crop", "size": WINDOW, "why": "test"}})
    run = RunFolder(path)
    run.path.mkdir(parents=True)
    run.write_config(cfg.to_dict())
    torch.manual_seed(seed)
    run.save_weights("best", build_model(spec).net.state_dict(), 1, {})
    return run.path


@pytest.fixture(scope="module")
def photos_and_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    data = _photo_folder(root / "data", 13)
    ids = [f"p{k:02d}" for k in range(13)]
    return data, [_crop_run(root / f"run{s}", data, ids, s) for s in range(2)]


def _traced_pass(ds, members, ids) -> tuple[float, object]:
    """Peak MB NumPy and Python allocate in the Compare page's pass over ``ids`` (predict with the
    disk cache, two runs and their mean ensemble, then the per-image table)."""
    import tracemalloc

    from seglib.predict import Comparison, Ensemble, dataset_layout, predict

    tracemalloc.start()
    try:
        cmp = Comparison(predict(ds, members, [Ensemble("mean", tuple(m.name for m in members))], ids,
                                 device="cpu", layout=dataset_layout(ds)))
        cmp.per_image()
        return tracemalloc.get_traced_memory()[1] / 2**20, cmp
    finally:
        tracemalloc.stop()


# 13 small photos through two U-Nets: ~10 s on 2 cores
def test_a_compare_pass_holds_no_more_for_more_images(photos_and_runs, tmp_path, monkeypatch):
    """Memory of a pass is bounded by its largest image, not by how many there are (issue 22):
    the columns' masks and maps go to their files as they are made, the per-image table reads
    them back one image at a time. Before, 9 images took 3x the peak of 3 (masks and maps of
    every image held, then copied whole, the agreement computed over all pixels at once)."""
    from seglib.data import open_dataset
    from seglib.predict import dataset_layout, infer, open_members
    from seglib.predict.prob_cache import PROBS

    data, runs = photos_and_runs
    # One photo per forward call, as a big photo is (small ones share a call up to this budget)
    monkeypatch.setattr(infer, "CPU_FORWARD_PIXELS", PHOTO[0] * PHOTO[1])
    ds = open_dataset(data)
    members, problems = open_members(runs, dataset_layout(ds))
    assert not problems
    peaks = {}
    # 3 images already keep as many in flight as any pass (the batch and the next one read ahead)
    for n, ids in (("warm-up", ds.ids[:1]), (3, ds.ids[1:4]), (9, ds.ids[4:13])):
        monkeypatch.setenv("SEGLIB_CACHE_DIR", str(tmp_path / f"cache-{n}"))
        PROBS.clear()
        peaks[n], cmp = _traced_pass(ds, members, ids)
        assert cmp.ids == ids and np.isfinite(cmp.scores_table().to_numpy()).all()
    PROBS.clear()
    h, w = PHOTO
    print({k: f"{v:.1f} MB" for k, v in peaks.items()}, f"one mask: {h * w / 2**20:.2f} MB")
    assert peaks[9] < 1.3 * peaks[3], peaks
