"""Open a run folder's model for inference, with one-line errors for anything wrong with it."""
from __future__ import annotations

from pathlib import Path

import torch

from ..models import ModelError, ModelSpec, build_model
from .config import TrainConfig
from .runs import CheckpointError, RunFolder, load_weights


def run_spec(run: RunFolder) -> tuple[ModelSpec, TrainConfig]:
    """The model spec and config a run folder records."""
    try:
        cfg = TrainConfig.from_dict(run.read_config())
    except ValueError as e:
        raise CheckpointError(f"{run.file('config.json')}: {e}") from None
    model = cfg.resolved.get("model")
    if not model:
        raise CheckpointError(f"{run.file('config.json')}: no model recorded (the run never started)")
    return ModelSpec(**model), cfg


def load_model(run_dir: str | Path, which: str = "best", device: str | torch.device = "cpu"):
    """(model in eval mode, TrainConfig). ``which``: "best" or "last".

    Raises CheckpointError with one line: missing or damaged files, a truncated weights file,
    weights that do not fit the recorded architecture."""
    run = RunFolder(run_dir)
    if not run.path.is_dir():
        raise CheckpointError(f"{run.path}: no such run folder")
    spec, cfg = run_spec(run)
    path = run.weights_path(which)
    tensors, _ = load_weights(path)
    try:
        model = build_model(spec)
        model.set_normalization(cfg.resolved.get("normalization"))  # the pretrained encoder's, as trained
    except ModelError as e:
        raise CheckpointError(f"{run.path}: {e}") from None
    try:
        model.net.load_state_dict(tensors)
    except RuntimeError as e:
        first = next((ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln or "Missing" in ln), str(e))
        raise CheckpointError(f"{path}: weights do not fit {spec.label} with {spec.in_channels} channel(s) and "
                              f"{spec.num_classes} classes ({first[:160]})") from None
    return model.to(device).eval(), cfg


def check_fits(cfg: TrainConfig, in_channels: int, num_classes: int, class_names: list[str] | None = None,
               source: str = "the dataset") -> None:
    """Raise CheckpointError when a run cannot predict this dataset (other channels or classes)."""
    spec = ModelSpec(**cfg.resolved["model"])
    if spec.in_channels != in_channels:
        raise CheckpointError(f"model {spec.label} takes {spec.in_channels} channel(s); {source} has {in_channels}")
    if spec.num_classes != num_classes:
        # The class map's own count and names: num_classes is a model's output size (at least 2, gaps included).
        has = (f"{len(class_names)} ({', '.join(list(class_names)[:6])}{', ...' if len(class_names) > 6 else ''})"
               if class_names is not None else str(num_classes))
        raise CheckpointError(f"model {spec.label} predicts {spec.num_classes} classes; {source} has {has}")
    trained = [c["name"] for c in cfg.resolved.get("class_map", [])]
    if class_names is not None and trained and trained != list(class_names):
        raise CheckpointError(f"model {spec.label} was trained on classes {trained}; {source} has {list(class_names)}")
