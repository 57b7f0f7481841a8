"""Tiled inference blends in float32 bands and may hand back float16 (issue 16: ~73 bytes a pixel
held while predicting a big image); the results stay the float32 blend's within tolerance."""
from __future__ import annotations

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
