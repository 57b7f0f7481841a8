"""Training: configuration, the engine (a loop that reads top to bottom), run folders,
callbacks and checkpoint loading.

>>> from seglib.train import TrainConfig, train, load_model
>>> result = train(TrainConfig(data="data/demo/mars_demo.npz"), run_dir="checkpoints/unet")
>>> model, config = load_model("checkpoints/unet")        # best weights, on the CPU
"""
from .callbacks import Callback, Callbacks, ProgressBar
from .config import ConfigError, TrainConfig
from .engine import TrainingError, evaluate, train
from .load import check_fits, load_model
from .runs import CheckpointError, RunFolder, checkpoints_dir, list_runs, new_run_name

__all__ = ["Callback", "Callbacks", "ProgressBar", "ConfigError", "TrainConfig", "TrainingError", "evaluate",
           "train", "check_fits", "load_model", "CheckpointError", "RunFolder", "checkpoints_dir", "list_runs",
           "new_run_name"]
