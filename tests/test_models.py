"""seglib.models: every architecture builds offline and takes a training step at 64x128 and at an
odd size (or is refused with its reason); encoder weights load from a local file."""
from __future__ import annotations

import pytest
import torch

from seglib.models import (
    ARCHITECTURES,
    ModelError,
    ModelSpec,
    build_model,
    catalog,
    combination_problem,
    load_encoder_weights,
    padded_size,
    problem,
)

LIGHT_ENCODER = {"Segformer": "mit_b0", "DPT": "tu-vit_tiny_patch16_224"}


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_every_architecture_takes_a_training_step(arch):
    torch.manual_seed(0)
    spec = ModelSpec(arch, LIGHT_ENCODER.get(arch, "resnet18"), in_channels=1, num_classes=5)
    model = build_model(spec).train()
    for hw in [(64, 128), (61, 99)]:  # the Mars size, and an odd one that needs padding
        model.zero_grad()
        x = torch.rand(2, 1, *hw)
        y = torch.randint(0, 5, (2, *hw))
        out = model(x)
        assert out.shape == (2, 5, *hw)
        loss = torch.nn.functional.cross_entropy(out, y)
        loss.backward()
        assert torch.isfinite(loss)
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)


def test_padded_sizes_follow_each_architecture():
    assert padded_size("Unet", 64, 128) == (64, 128)
    assert padded_size("Unet", 61, 99) == (64, 128)
    assert padded_size("PAN", 64, 128) == (128, 128)  # PAN pools its 1/16 map three more times


def test_invalid_pairs_are_refused_with_a_reason():
    assert "ViT" in combination_problem("DPT", "resnet18")
    assert "Mix Transformer" in combination_problem("UnetPlusPlus", "mit_b0")
    assert "pyramid" in combination_problem("Unet", "tu-vit_tiny_patch16_224")
    with pytest.raises(ModelError, match="Mix Transformer"):
        build_model(ModelSpec("Linknet", "mit_b0", 3, 2))
    assert "unknown architecture" in problem(ModelSpec("Unet3000", "resnet18", 1, 2))
    assert "cannot be built" in problem(ModelSpec("Unet", "no_such_encoder", 1, 2))
    rows = catalog()
    assert {r["arch"] for r in rows} == set(ARCHITECTURES)
    assert all(r["reason"] for r in rows if not r["ok"])


def test_rgb_and_many_classes():
    model = build_model(ModelSpec("FPN", "mobilenet_v2", in_channels=3, num_classes=12)).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 100, 140)).shape == (1, 12, 100, 140)


def test_encoder_weights_from_a_local_file(tmp_path):
    from safetensors.torch import save_file

    donor = build_model(ModelSpec("Unet", "resnet18", 3, 2))
    path = tmp_path / "enc.safetensors"
    save_file({f"encoder.{k}": v.contiguous() for k, v in donor.net.encoder.state_dict().items()}, str(path))
    grey = build_model(ModelSpec("Unet", "resnet18", 1, 5), encoder_weights=path)
    # The RGB first convolution is summed into one grey channel; every other layer is copied.
    assert torch.allclose(grey.net.encoder.conv1.weight, donor.net.encoder.conv1.weight.sum(1, keepdim=True))
    assert torch.equal(grey.net.encoder.layer4[1].conv2.weight, donor.net.encoder.layer4[1].conv2.weight)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not weights")
    with pytest.raises(ModelError, match="cannot read weights"):
        load_encoder_weights(grey.net.encoder, bad)
    with pytest.raises(ModelError, match="no such weights file"):
        build_model(ModelSpec("Unet", "resnet18", 1, 5), encoder_weights=tmp_path / "missing.pth")
