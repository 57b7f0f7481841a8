"""The training configuration: one dataclass with commented defaults (nanoGPT style).

Defaults follow what won in the reports this tool grew from: U-Net, focal (gamma 2) + dice,
images holding the rarest class drawn three times as often, a seeded stratified 90/10 split,
early stopping on validation mIoU. ``TrainConfig.quick()`` finishes in about a minute on a CPU.

Fields left at "auto" (device, workers, amp, sampler_classes) are resolved when training starts
and the resolved values are what ``config.json`` in the run folder records.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from ..losses import LossConfig
from ..models import DEFAULT_ARCH, DEFAULT_ENCODER
from .inputs import INPUT_MODES, check_size
from .split import SPLIT_BY

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("plateau", "cosine", "onecycle", "none")
MONITORS = ("miou", "miou_no_bg", "dice", "pixel_accuracy", "val_loss")
SAMPLERS = ("uniform", "oversample", "presence")


class ConfigError(ValueError):
    """A configuration that cannot train; the message names the field and why."""


@dataclass
class TrainConfig:
    # --- data ---------------------------------------------------------------------------
    data: str = ""                        # dataset folder or .npz
    unlabeled: list[str] | None = None    # folders of new images joining it (their masks saved in the review store)
    val_fraction: float = 0.1             # stratified by the rarest class each image holds
    split_by: str = "image"               # image | folder (first folder of the id) | overlap (images sharing pixels)
    train_ids: list[str] | None = None    # given splits override val_fraction
    val_ids: list[str] | None = None
    leave_out_excluded: bool = True       # images marked "exclude" in the review store
    original_masks: bool = False          # True: the files' masks, not the review store's corrected ones
    aug: str | None = None                # a saved pipeline name or an A.save file; None = no augmentation
    sampler: str = "oversample"           # uniform | oversample | presence (seglib.sampling)
    sampler_classes: list[int] | None = None  # None = the rarest scored class
    sampler_factor: float = 3.0           # oversample: draw those images this many times as often
    input_mode: str = "auto"              # auto | crop | resize | full: what a step sees of an image (inputs.py)
    input_size: int = 512                 # crop: the square's side (a multiple of 32); resize: the longer side
    rare_crop_share: float = 1 / 3        # crop: share of crops centred on a pixel of the rarest scored class
    # --- model --------------------------------------------------------------------------
    arch: str = DEFAULT_ARCH
    encoder: str = DEFAULT_ENCODER
    encoder_weights: str | None = None    # None = random; a name smp lists ("imagenet", from the HF cache); or a file
    # --- loss ---------------------------------------------------------------------------
    loss: str = "focal+dice"              # a formula of seglib.losses terms, e.g. "ce+0.5*dice"
    focal_gamma: float = 2.0
    tversky_alpha: float = 0.3
    tversky_beta: float = 0.7
    class_weights: str = "none"           # none | inverse | median | manual
    manual_class_weights: list[float] = field(default_factory=list)
    exclude_background: bool = False      # losses and the monitored mIoU leave class 0 out
    # --- optimisation -------------------------------------------------------------------
    epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"              # adamw | adam | sgd (momentum 0.9)
    scheduler: str = "plateau"            # plateau (on the monitored metric) | cosine | onecycle | none
    grad_clip: float = 1.0                # max gradient norm; 0 = off
    monitor: str = "miou"                 # metric for the best checkpoint, plateau and early stopping
    patience: int = 8                     # epochs without improvement before stopping; 0 = never
    max_steps_per_epoch: int = 0          # 0 = a full pass; small values for quick checks
    # --- machine ------------------------------------------------------------------------
    device: str = "auto"                  # auto (cuda, then mps, then cpu) | cpu | cuda | cuda:1 | mps
    amp: str = "auto"                     # auto (on CUDA) | off | bf16 | fp16
    workers: int = -1                     # DataLoader workers; -1 = auto (0 on CPU, up to 8 on CUDA)
    seed: int = 0
    # --- set when training starts (recorded in config.json) ----------------------------
    resolved: dict = field(default_factory=dict)

    # ------------------------------------------------------------------------------------
    @classmethod
    def quick(cls, data: str = "", **overrides) -> TrainConfig:
        """About a minute on a 2-core CPU for the 64x128 demo: a light encoder, few short epochs."""
        base = dict(data=data, encoder="mobilenet_v2", epochs=4, batch_size=16, max_steps_per_epoch=40,
                    lr=2e-3, patience=0)
        return cls(**{**base, **overrides})

    @property
    def monitor_mode(self) -> str:
        return "min" if self.monitor == "val_loss" else "max"

    def loss_config(self) -> LossConfig:
        return LossConfig(self.loss, gamma=self.focal_gamma, tversky_alpha=self.tversky_alpha,
                          tversky_beta=self.tversky_beta, class_weighting=self.class_weights,
                          manual_weights=list(self.manual_class_weights), exclude_background=self.exclude_background)

    def validate(self) -> None:
        """Raise ConfigError on the first field that cannot work."""
        checks = [
            (self.optimizer in OPTIMIZERS, "optimizer", f"choose from {', '.join(OPTIMIZERS)}"),
            (self.scheduler in SCHEDULERS, "scheduler", f"choose from {', '.join(SCHEDULERS)}"),
            (self.monitor in MONITORS, "monitor", f"choose from {', '.join(MONITORS)}"),
            (self.sampler in SAMPLERS, "sampler", f"choose from {', '.join(SAMPLERS)}"),
            (self.split_by in SPLIT_BY, "split_by", f"choose from {', '.join(SPLIT_BY)}"),
            (self.epochs >= 1, "epochs", "must be at least 1"),
            (self.batch_size >= 1, "batch_size", "must be at least 1"),
            (self.lr > 0, "lr", "must be positive"),
            (0 < self.val_fraction < 1 or self.val_ids is not None, "val_fraction", "must be between 0 and 1"),
            (self.amp in ("auto", "off", "bf16", "fp16"), "amp", "choose auto, off, bf16 or fp16"),
            (self.sampler_factor > 0, "sampler_factor", "must be positive"),
            (self.input_mode in INPUT_MODES, "input_mode", f"choose from {', '.join(INPUT_MODES)}"),
            (0 <= self.rare_crop_share <= 1, "rare_crop_share", "must be between 0 and 1"),
        ]
        for ok, name, why in checks:
            if not ok:
                raise ConfigError(f"{name} = {getattr(self, name)!r}: {why}")
        size_problem = check_size(self.input_mode, self.input_size)
        if size_problem:
            raise ConfigError(size_problem)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Unknown keys are refused with their names (a typo must not train silently)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(unknown)}")
        return cls(**d)
