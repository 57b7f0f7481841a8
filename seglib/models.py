"""The model registry: every smp architecture, a choice of encoders, the shape rules, and one
factory that builds any of them offline.

Shape rules, measured on smp 0.6 (see tests/test_models.py):
- encoders reduce the input 32 times, so H and W are padded up to a multiple of 32 and the
  output is cropped back: every architecture trains on 64x128 and on odd sizes;
- PAN's pyramid attention pools its 1/16 feature map three more times: sides under 128 fail;
- DPT needs a timm ViT encoder and, for sizes other than its pretraining size, timm's
  ``dynamic_img_size``; its decoder upsamples 16x16 patches twice, so 32 stays the multiple;
- DeepLabV3/V3+ and UPerNet pool to 1x1 before a batch norm: a training batch of one crashes
  them, so the loader drops a last incomplete batch (``needs_batch_of_two``).

>>> spec = ModelSpec("Unet", "resnet18", in_channels=1, num_classes=5)
>>> problem(spec) is None
True
>>> model = build_model(spec)        # SegmentationModel: pads, runs smp, crops back
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ArchInfo:
    smp_name: str
    summary: str
    multiple: int = 32
    min_side: int = 32
    needs_batch_of_two: bool = False


ARCHITECTURES: dict[str, ArchInfo] = {
    "Unet": ArchInfo("Unet", "U-Net: encoder-decoder with skip connections; the strong default"),
    "UnetPlusPlus": ArchInfo("UnetPlusPlus", "U-Net++: nested dense skip connections; slower, sharper"),
    "MAnet": ArchInfo("MAnet", "Multi-scale attention net"),
    "Linknet": ArchInfo("Linknet", "LinkNet: light decoder that adds encoder features"),
    "FPN": ArchInfo("FPN", "Feature pyramid network; output at 1/4, upsampled"),
    "PSPNet": ArchInfo("PSPNet", "Pyramid scene parsing: global context by pooling"),
    "PAN": ArchInfo("PAN", "Pyramid attention network", min_side=128),
    "DeepLabV3": ArchInfo("DeepLabV3", "Atrous spatial pyramid pooling", needs_batch_of_two=True),
    "DeepLabV3Plus": ArchInfo("DeepLabV3Plus", "DeepLabV3 with a decoder for sharper edges", needs_batch_of_two=True),
    "UPerNet": ArchInfo("UPerNet", "Unified perceptual parsing (pyramid pooling + FPN)", needs_batch_of_two=True),
    "Segformer": ArchInfo("Segformer", "SegFormer: all-MLP decoder; best with Mix Transformer (mit_b*) encoders"),
    "DPT": ArchInfo("DPT", "Dense prediction transformer: needs a timm ViT encoder (tu-vit_*)"),
}

# Encoders offered by default: fast to build offline and sensible on small data. Any other smp
# encoder name, or a timm model as "tu-<name>", can be typed in.
ENCODERS: dict[str, str] = {
    "resnet18": "ResNet-18, 11M parameters",
    "resnet34": "ResNet-34, 21M",
    "resnet50": "ResNet-50, 23M",
    "mobilenet_v2": "MobileNetV2, 2M: fast on a CPU",
    "efficientnet-b0": "EfficientNet-B0, 4M",
    "efficientnet-b2": "EfficientNet-B2, 8M",
    "mit_b0": "Mix Transformer B0 (SegFormer), 3M",
    "mit_b1": "Mix Transformer B1 (SegFormer), 13M",
    "mit_b2": "Mix Transformer B2 (SegFormer), 24M",
    "mobileone_s0": "MobileOne S0, 4M",
    "tu-convnext_atto": "ConvNeXt-Atto from timm, 3M",
    "tu-vit_tiny_patch16_224": "ViT-Tiny/16 from timm, 5M: for DPT only",
}

DEFAULT_ARCH, DEFAULT_ENCODER = "Unet", "resnet18"


class ModelError(ValueError):
    """A model that cannot be built or loaded; the message says why in one line."""


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model (stored in a run's config.json)."""

    arch: str = DEFAULT_ARCH
    encoder: str = DEFAULT_ENCODER
    in_channels: int = 3
    num_classes: int = 2

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def info(self) -> ArchInfo:
        return ARCHITECTURES[self.arch]

    @property
    def label(self) -> str:
        return f"{self.arch}/{self.encoder}"


def _is_vit(encoder: str) -> bool:
    return encoder.startswith("tu-") and any(k in encoder for k in ("vit", "deit", "eva", "beit"))


def known_encoder(encoder: str) -> bool:
    if encoder.startswith("tu-"):
        import timm

        return bool(timm.list_models(encoder[3:])) or bool(timm.list_models(encoder[3:].split(".")[0]))
    import segmentation_models_pytorch as smp

    return encoder in smp.encoders.get_encoder_names()


def combination_problem(arch: str, encoder: str) -> str | None:
    """Why this architecture cannot use this encoder (smp's rules, known without building),
    or None. ``problem`` also builds the model to catch what the rules miss."""
    if arch not in ARCHITECTURES:
        return f"unknown architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}"
    if arch == "DPT" and not _is_vit(encoder):
        return "DPT needs a timm ViT encoder such as tu-vit_tiny_patch16_224"
    if arch != "DPT" and _is_vit(encoder):
        return f"{encoder} gives one feature scale; {arch} needs a pyramid (use DPT for ViT encoders)"
    if arch in ("UnetPlusPlus", "Linknet") and encoder.startswith("mit_"):
        return f"smp's {arch} does not support Mix Transformer encoders (mit_*)"
    return None


def padded_size(arch: str, height: int, width: int) -> tuple[int, int]:
    """The input size the architecture runs at for an image of ``height`` x ``width``."""
    info = ARCHITECTURES[arch]

    def side(n: int) -> int:
        return max(info.min_side, math.ceil(n / info.multiple) * info.multiple)

    return side(height), side(width)


class SegmentationModel(nn.Module):
    """An smp model behind a pad-and-crop: any input size in, logits of the same size out.

    ``net`` is the plain smp model; checkpoints store its state dict, so a run's weights load
    into ``smp.create_model(...)`` as well."""

    def __init__(self, net: nn.Module, spec: ModelSpec, normalization: dict | None = None):
        super().__init__()
        self.net = net
        self.spec = spec
        self.set_normalization(normalization)

    def set_normalization(self, normalization: dict | None) -> None:
        """Inputs in [0, 1] are normalised with ``{"mean": [...], "std": [...]}`` (one value per
        channel: the pretrained encoder's own preprocessing) before the net sees them; None: as
        given (random or local weights). Not part of the weights: a run's config records it."""
        self.normalization = dict(normalization) if normalization else None
        mean = std = None
        if normalization:
            mean = torch.tensor(normalization["mean"], dtype=torch.float32).reshape(1, -1, 1, 1)
            std = torch.tensor(normalization["std"], dtype=torch.float32).reshape(1, -1, 1, 1)
            if mean.shape[1] != self.spec.in_channels or std.shape[1] != self.spec.in_channels:
                raise ModelError(f"normalisation for {mean.shape[1]} channel(s); {self.spec.label} takes "
                                 f"{self.spec.in_channels}")
        device = next(self.net.parameters()).device
        self.register_buffer("_mean", None if mean is None else mean.to(device), persistent=False)
        self.register_buffer("_std", None if std is None else std.to(device), persistent=False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as the encoder expects it (identity without normalisation)."""
        if self._mean is None:
            return x
        return (x - self._mean.to(x.dtype)) / self._std.to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(x)
        h, w = x.shape[-2:]
        ph, pw = padded_size(self.spec.arch, h, w)
        if (ph, pw) != (h, w):
            # Reflect keeps image statistics at the border; it needs the pad smaller than the side.
            mode = "reflect" if ph - h < h and pw - w < w else "replicate"
            x = F.pad(x, (0, pw - w, 0, ph - h), mode=mode)
        return self.net(x)[..., :h, :w]


def build_model(spec: ModelSpec, encoder_weights: str | Path | None = None) -> SegmentationModel:
    """Build ``spec`` with random weights, with encoder weights smp lists (``"imagenet"``, ...;
    from the Hugging Face cache only, see seglib.pretrained) and their normalisation, or with
    encoder weights from a local .safetensors/.pth file. Never uses the network. Raises
    ModelError with the reason (weights not in the cache: what to fetch, in one line)."""
    import segmentation_models_pytorch as smp

    from . import pretrained

    why = combination_problem(spec.arch, spec.encoder)
    if why:
        raise ModelError(why)
    if spec.in_channels < 1 or spec.num_classes < 1:
        raise ModelError(f"in_channels ({spec.in_channels}) and num_classes ({spec.num_classes}) must be >= 1")
    kwargs = {"dynamic_img_size": True} if spec.arch == "DPT" else {}
    name, weights, norm = spec.encoder, None, None
    hub = not pretrained.is_random(encoder_weights) and not pretrained.is_local_file(encoder_weights)
    if hub:
        try:
            src = pretrained.require(spec.encoder, str(encoder_weights))
            norm = pretrained.normalization(spec.encoder, src.name, spec.in_channels)
        except pretrained.WeightsError as e:
            raise ModelError(str(e)) from None
        name, weights, extra = pretrained.smp_arguments(src)
        kwargs.update(extra)
    try:
        net = smp.create_model(spec.arch, encoder_name=name, encoder_weights=weights,
                               in_channels=spec.in_channels, classes=spec.num_classes, **kwargs)
    except (ValueError, KeyError, RuntimeError, TypeError, AssertionError, OSError) as e:
        what = f"{spec.label} with {encoder_weights} weights" if hub else spec.label
        raise ModelError(f"{what} cannot be built: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if encoder_weights and not hub:
        load_encoder_weights(net.encoder, encoder_weights)
    return SegmentationModel(net, spec, norm)


def load_encoder_weights(encoder: nn.Module, path: str | Path) -> dict:
    """Load a local weights file into an encoder without running code from it.

    Keys may carry an ``encoder.`` prefix. A first convolution saved for 3 channels is summed
    into one channel for grayscale input (as smp does with pretrained weights). Returns
    {"loaded", "skipped"} counts; raises ModelError if nothing matches."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(f"{path}: no such weights file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state) if isinstance(state, dict) else state
    except Exception as e:
        raise ModelError(f"{path}: cannot read weights ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    own = encoder.state_dict()
    take, skipped = {}, 0
    for key, value in state.items():
        key = key.removeprefix("encoder.")
        if key not in own or not isinstance(value, torch.Tensor):
            skipped += 1
            continue
        if value.shape != own[key].shape and value.ndim == 4 and own[key].shape[1] == 1 and value.shape[1] == 3:
            value = value.sum(1, keepdim=True)
        if value.shape != own[key].shape:
            skipped += 1
            continue
        take[key] = value
    if not take:
        raise ModelError(f"{path}: no tensor matches the encoder's layers (wrong encoder?)")
    encoder.load_state_dict(take, strict=False)
    return {"loaded": len(take), "skipped": skipped}


def problem(spec: ModelSpec, height: int = 64, width: int = 128) -> str | None:
    """Why ``spec`` cannot train on images of this size, found by building it and running one
    training step's forward pass on a batch of two; None when it works."""
    try:
        model = build_model(spec)
        model.train()
        with torch.no_grad():
            out = model(torch.zeros(2, spec.in_channels, height, width))
    except ModelError as e:
        return str(e)
    except Exception as e:  # an smp/timm failure at run time: report its first line
        return f"{spec.label} fails on {height}x{width}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    if tuple(out.shape) != (2, spec.num_classes, height, width):
        return f"{spec.label} returned shape {tuple(out.shape)} for {height}x{width}"
    return None


def catalog() -> list[dict]:
    """Every offered (architecture, encoder) pair with ``ok`` and, when not, ``reason``
    (from the rules; :func:`problem` confirms one by building it)."""
    rows = []
    for arch, info in ARCHITECTURES.items():
        for enc in ENCODERS:
            why = combination_problem(arch, enc)
            rows.append({"arch": arch, "encoder": enc, "ok": why is None, "reason": why or "",
                         "multiple": info.multiple, "min_side": info.min_side,
                         "needs_batch_of_two": info.needs_batch_of_two})
    return rows
