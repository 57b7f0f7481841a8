"""One background training job: the mutable record the manager keeps (:class:`JobRecord`), the
immutable :class:`JobSnapshot` readers get, the engine hooks that fill the record from the
training thread (:class:`JobCallback`), and the time left. Nothing here imports streamlit."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .callbacks import Callback
from .config import TrainConfig
from .runs import RunFolder

ACTIVE = ("queued", "running")
FINISHED = ("done", "stopped_early", "cancelled", "failed")
PREVIEW_IMAGES = 8          # validation images kept for the live strip
MAX_STEP_POINTS = 5000      # per-step loss points kept per job (every 10th step is reported)


@dataclass(frozen=True)
class JobSnapshot:
    """One job at one moment: plain values, safe to hold after the job moves on. ``history`` and
    ``steps`` are tuples of dicts shared with the manager: read them, do not change them."""

    id: str
    name: str                   # the run folder's name
    run_dir: str
    status: str                 # queued | running | done | stopped_early | cancelled | failed
    phase: str                  # what a running job is doing: "preparing", "training", "validating"
    arch: str
    encoder: str
    loss_formula: str
    monitor: str                # the metric that picks the best epoch
    resume: bool
    submitted: float
    started: float | None
    finished: float | None
    queue_position: int | None  # 1 = next to start
    epoch: int                  # epoch in progress (or last finished)
    epochs: int
    step: int
    steps: int                  # steps per epoch (0 until training starts)
    global_step: int
    total_steps: int
    loss: float | None          # latest training loss reported
    lr: float | None
    images_per_s: float | None
    latest: dict | None         # the last finished epoch's history record
    history: tuple = ()         # history records so far (a resumed run's earlier epochs included)
    steps_log: tuple = ()       # {"global_step", "epoch" (fractional), "loss", "lr"} every 10 steps
    eta_s: float | None = None
    error: str | None = None
    traceback: str | None = None
    device: str | None = None
    cancel_requested: bool = False
    preview: dict | None = None  # {"images" uint8 (N,H,W[,3]), "masks", "predictions" uint8 (N,H,W), "ids", "epoch"}
    class_map: list = field(default_factory=list)
    processes: int = 1           # > 1: a torchrun child process group, followed through the run folder
    kind: str = "train"          # "train": one run; "quality": K fold runs, then scoring (seglib.quality)
    fold: int = 0                # a quality job: the fold in progress (0-based; == folds while scoring)
    folds: int = 0               # a quality job: K

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def progress(self) -> float:
        """0..1 over the whole run (epochs already done before a resume count as done)."""
        if self.status in ("done", "stopped_early"):
            return 1.0
        within = self.global_step / self.total_steps if self.total_steps else 0.0
        if self.kind == "quality" and self.folds:   # each fold a share, scoring the last sliver
            done = min(self.fold, self.folds) + (within if self.fold < self.folds else 0.0)
            return min(1.0, done / (self.folds + 0.1))
        return within

    @property
    def elapsed_s(self) -> float | None:
        if self.started is None:
            return None
        return (self.finished or time.time()) - self.started

    @property
    def best(self) -> tuple[int, float | None]:
        """(best epoch, its monitored value) from the history; (0, None) before the first epoch."""
        if not self.history:
            return 0, None
        epoch = self.history[-1].get("best_epoch") or 0
        for r in self.history:
            if r["epoch"] == epoch:
                return epoch, r.get(self.monitor)
        return epoch, None


@dataclass
class JobRecord:
    """The mutable record behind a snapshot; every field is read and written under the lock."""

    id: str
    run: RunFolder
    config: TrainConfig
    resume: bool
    submitted: float = field(default_factory=time.time)
    status: str = "queued"
    phase: str = ""
    started: float | None = None
    finished: float | None = None
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    steps: int = 0
    global_step: int = 0
    total_steps: int = 0
    loss: float | None = None
    lr: float | None = None
    images_per_s: float | None = None
    history: list = field(default_factory=list)
    steps_log: list = field(default_factory=list)
    error: str | None = None
    traceback: str | None = None
    device: str | None = None
    preview: dict | None = None
    class_map: list = field(default_factory=list)
    end_error: str | None = None    # the engine's own wording of a failure (on_train_end)
    callbacks: list = field(default_factory=list)  # the caller's, run before the manager's own
    cancel: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    processes: int = 1                 # > 1: torchrun processes (seglib.train.process_jobs)
    adopted: dict | None = None        # job.json of a process job found again after an app restart
    kind: str = "train"                # "quality": cross-validated label scores (JobManager.submit_quality)
    folds: int = 0
    fold: int = 0
    fold_started: float | None = None  # when the fold in progress started (time left across folds)
    run_fold: object = None            # the fold's run folder (Path) while it trains


def training_started(job: JobRecord, info: dict, class_map: list) -> None:
    """Copy the engine's train-start report (device, epochs, steps, where it starts) into the
    record; the caller holds the manager's lock."""
    job.phase, job.device = "training", info["device"]
    job.epochs, job.steps = info["epochs"], info["steps_per_epoch"]
    job.epoch = info["start_epoch"] - 1
    job.total_steps = info["epochs"] * info["steps_per_epoch"]
    job.global_step = job.epoch * info["steps_per_epoch"]
    job.class_map = class_map


class JobCallback(Callback):
    """The engine's hooks for one job: copy what the page shows into the job record, holding
    ``lock`` (the manager's) only for the assignments."""

    def __init__(self, lock: threading.Lock, job: JobRecord):
        self.lock, self.job = lock, job

    def on_train_start(self, info):
        job = self.job
        earlier = [r for r in job.run.read_history() if r["epoch"] < info["start_epoch"]] if job.resume else []
        with self.lock:
            training_started(job, info, info["config"].get("resolved", {}).get("class_map", []))
            job.history = earlier

    def on_step_end(self, step):
        point = {"global_step": step["global_step"], "epoch": step["epoch"] - 1 + step["step"] / step["steps"],
                 "loss": step["loss"], "lr": step["lr"]}
        with self.lock:
            job = self.job
            job.phase = "validating" if step["step"] == step["steps"] else "training"
            job.epoch, job.step, job.steps = step["epoch"], step["step"], step["steps"]
            job.global_step, job.total_steps = step["global_step"], step["total_steps"]
            job.loss, job.lr, job.images_per_s = step["loss"], step["lr"], step["images_per_s"]
            job.steps_log.append(point)
            if len(job.steps_log) > MAX_STEP_POINTS:
                del job.steps_log[: len(job.steps_log) - MAX_STEP_POINTS]

    def on_validation_batch(self, images, masks, predictions, ids):
        preview = preview_arrays(images, masks, predictions, ids)
        with self.lock:
            self.job.preview = {**preview, "epoch": self.job.epoch}

    def on_epoch_end(self, record):
        with self.lock:
            self.job.history = [*self.job.history, record]  # a new list: snapshots keep the old one
            self.job.phase = "training"

    def on_train_end(self, result):
        with self.lock:
            self.job.end_error = result.get("error")

    def should_stop(self) -> bool:
        # No lock: an Event is thread-safe. Yield the GIL once per step so that a page's script
        # thread waiting for it gets a turn even while the data loader runs Python code.
        time.sleep(0)
        return self.job.cancel.is_set()


def preview_arrays(images, masks, predictions, ids, n: int = PREVIEW_IMAGES) -> dict:
    """The engine's validation batch (CPU tensors: float images in [0, 1], long masks with 255 for
    unknown pixels, long predictions) as uint8 arrays the viz helpers draw, first ``n`` only."""
    imgs = images[:n].clamp(0, 1).mul(255).round().to(dtype=torch.uint8).numpy()
    imgs = imgs[:, 0] if imgs.shape[1] == 1 else np.moveaxis(imgs[:, :3], 1, -1)
    out = {"images": np.ascontiguousarray(imgs), "masks": masks[:n].clamp(0, 255).to(dtype=torch.uint8).numpy(),
           "predictions": predictions[:n].clamp(0, 255).to(dtype=torch.uint8).numpy(), "ids": list(ids[:n])}
    for key in ("images", "masks", "predictions"):
        out[key].flags.writeable = False  # shared by every snapshot
    return out


def eta_seconds(job: JobRecord, now: float) -> float | None:
    """Seconds left: training steps left at the measured rate, plus the validations left at the
    mean validation time of the epochs so far. None until the rate is known."""
    if job.status != "running" or not job.images_per_s or not job.steps:
        return None
    step_s = job.config.batch_size / job.images_per_s
    steps_left = max(0, job.total_steps - job.global_step)
    val_times = [r["time"] - r["train_time"] for r in job.history[-3:] if "train_time" in r]
    val_s = sum(val_times) / len(val_times) if val_times else 0.0
    validations_left = max(0, job.epochs - len(job.history))
    left = steps_left * step_s + validations_left * val_s
    if job.kind == "quality" and job.fold < job.folds and job.fold_started is not None:
        # the folds after this one take as long as this one will have (the same data and steps)
        this_fold = (now - job.fold_started) + left
        left += (job.folds - job.fold - 1) * this_fold
    return left
