"""The training loop, top to bottom: setup, data, model, loss, optimiser, (resume), epochs.

>>> from seglib.train import TrainConfig, train
>>> result = train(TrainConfig(data="data/demo/mars_demo.npz", epochs=20), run_dir="checkpoints/unet")
>>> result["best_epoch"], result["val"]["miou"]

The same function runs in one process (CLI, the app's background thread) and in each process of
``torchrun --nproc_per_node=N`` (DDP: gradients averaged, validation confusion matrices summed,
only rank 0 writes). The caller watches and cancels through callbacks; nothing here imports
streamlit.
"""
from __future__ import annotations

import copy
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..metrics import SCORE_KEYS, ConfusionMatrix, scores
from ..models import ModelError, ModelSpec, build_model
from ..tiling import InferencePlan, inference_plan
from ..words import plural
from . import distributed
from .callbacks import Callbacks
from .config import ConfigError, TrainConfig
from .data import TrainData, make_loaders, prepare_data
from .runs import RunFolder, checkpoints_dir, new_run_name


class TrainingError(RuntimeError):
    """Training stopped on a fault (NaN loss, a model that cannot run on the data, ...)."""


def make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay, nesterov=True)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_scheduler(cfg: TrainConfig, optimizer, steps_per_epoch: int):
    """(scheduler, steps per call): "step" schedules advance every batch, the rest every epoch."""
    total = max(1, cfg.epochs * steps_per_epoch)
    if cfg.scheduler == "plateau":
        # Halve the rate after a third of the early-stopping patience without progress.
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=cfg.monitor_mode, factor=0.5,
                                                          patience=max(1, cfg.patience // 3)), "epoch"
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total, eta_min=cfg.lr * 0.01), "step"
    if cfg.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total), "step"
    return None, "none"


def amp_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """Mixed precision on CUDA: bf16 where the GPU has it (no loss scaling needed), else fp16."""
    if cfg.amp == "off" or (cfg.amp == "auto" and device.type != "cuda"):
        return None
    if cfg.amp == "fp16" or (cfg.amp == "auto" and not torch.cuda.is_bf16_supported()):
        return torch.float16
    return torch.bfloat16


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _improved(value, best, mode: str) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return best is None or (value > best if mode == "max" else value < best)


def train(cfg: TrainConfig, run_dir: str | Path | None = None, callbacks=(), resume: bool = False) -> dict:
    """Train (or resume) one run. Returns {"run", "status", "epochs", "best_epoch", "best", "val"}
    where "val" holds the best epoch's validation scores (the keys of seglib.metrics.scores).

    Raises ConfigError / ModelError / TrainingError (the run folder then says "failed" and why)."""
    callbacks = Callbacks(callbacks)
    run = RunFolder(run_dir) if run_dir else RunFolder(checkpoints_dir() / new_run_name(cfg.arch, cfg.encoder))
    if resume:
        cfg = _config_for_resume(run, cfg)
    cfg.validate()
    proc = distributed.setup(cfg.device)
    main = proc.is_main
    log = run.log if main else (lambda _msg: None)

    def fail(status: str, error: str) -> None:
        if main:
            run.write_status(status, error=error)
            log(f"{status}: {error}")

    try:
        result = _train(cfg, run, proc, callbacks, resume, log)
    except (ConfigError, ModelError, TrainingError) as e:
        fail("failed", str(e))
        callbacks.on_train_end({"status": "failed", "error": str(e), "run": str(run.path)})
        raise
    except Exception as e:  # out of memory, an unreadable image, a bug: record it, then re-raise
        msg = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        if isinstance(e, torch.OutOfMemoryError):
            msg = f"out of memory on {proc.device} ({msg}); lower the batch size or image size"
        fail("failed", msg)
        callbacks.on_train_end({"status": "failed", "error": msg, "run": str(run.path)})
        raise
    finally:
        distributed.cleanup(proc)
    callbacks.on_train_end(result)
    return result


def _config_for_resume(run: RunFolder, given: TrainConfig) -> TrainConfig:
    """The run's own config (same split, model, loss); ``given`` sets the new total of epochs
    and the device."""
    cfg = TrainConfig.from_dict(run.read_config())
    cfg.epochs = given.epochs
    cfg.device = given.device
    return cfg


def _train(cfg: TrainConfig, run: RunFolder, proc, callbacks: Callbacks, resume: bool, log) -> dict:
    # ---- setup ---------------------------------------------------------------------------
    seed_everything(cfg.seed)
    device = proc.device
    dtype = amp_dtype(cfg, device)
    log(f"{'resuming' if resume else 'starting'} {cfg.arch}/{cfg.encoder} on {device} (rank {proc.rank}/{proc.world}, "
        f"amp {dtype or 'off'})")

    if not resume:
        _weights_available(cfg)  # before minutes of loading data: weights not in the cache fail now

    # ---- data: split, class bookkeeping, sampler weights ---------------------------------
    data: TrainData = prepare_data(cfg, log)
    transform = None
    if cfg.aug:
        from ..augment import load_pipeline

        transform = load_pipeline(cfg.aug, seed=cfg.seed)
    spec = ModelSpec(cfg.arch, cfg.encoder, data.in_channels, data.num_classes)
    train_loader, val_loader, sampler = make_loaders(data, cfg, transform, device, spec.info.needs_batch_of_two,
                                                     proc.rank, proc.world)
    steps_per_epoch = len(train_loader) if not cfg.max_steps_per_epoch else min(len(train_loader),
                                                                                cfg.max_steps_per_epoch)
    if steps_per_epoch == 0:
        raise ConfigError(f"batch_size {cfg.batch_size} leaves no full batch from {len(data.train_ids)} "
                          "training images (this architecture drops incomplete batches); lower it")
    log(f"data: {len(data.train_ids)} train / {len(data.val_ids)} val images, {len(data.excluded_ids)} left out "
        f"by review, {data.in_channels} channel(s), {data.num_classes} classes, sampler {cfg.sampler} "
        f"{cfg.resolved.get('sampler_classes')}")

    # ---- model, loss, optimiser, schedule -------------------------------------------------
    seed_everything(cfg.seed)  # the same initial weights whatever the data preparation drew
    if resume:  # the last weights replace the starting ones: no need for them (nor their cache) again
        model = build_model(spec)
        model.set_normalization(cfg.resolved.get("normalization"))
    else:
        model = build_model(spec, cfg.encoder_weights)
        cfg.resolved.update(_starting_weights(cfg, model))
    model = model.to(device)
    _check_runs(model, data, device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)  # faster convolutions on tensor cores
    from ..losses import build_loss

    loss_fn = build_loss(cfg.loss_config(), data.num_classes, data.scored, data.background,
                         data.train_pixels).to(device)
    optimizer = make_optimizer(cfg, model.parameters())
    scheduler, sched_every = make_scheduler(cfg, optimizer, steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)

    # ---- resume: weights, optimiser, schedule, history ------------------------------------
    start_epoch, history, best, best_epoch = 1, [], None, 0
    if resume:
        start_epoch, history, best, best_epoch = _restore(run, model, optimizer, scheduler, cfg, log)
    cfg.resolved.update({"device": str(device), "amp": str(dtype).replace("torch.", "") if dtype else "off",
                         "world_size": proc.world, "model": spec.to_dict(), "steps_per_epoch": steps_per_epoch})
    if proc.is_main:
        run.write_config(cfg.to_dict())
        run.write_status("running", epoch=start_epoch - 1, epochs=cfg.epochs, error=None)
    train_model = model
    if proc.world > 1:
        ids = [device.index] if device.type == "cuda" else None
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    callbacks.on_train_start({"run": str(run.path), "config": cfg.to_dict(), "steps_per_epoch": steps_per_epoch,
                              "start_epoch": start_epoch, "epochs": cfg.epochs, "device": str(device)})

    # Validation sees whole images as inference will: by windows of the training crop, resized, or whole.
    val_plan = inference_plan(cfg)
    log(f"validation: {val_plan.why}")

    # ---- the epochs ---------------------------------------------------------------------------
    status, global_step = "done", (start_epoch - 1) * steps_per_epoch
    for epoch in range(start_epoch, cfg.epochs + 1):
        t0 = time.perf_counter()
        sampler.set_epoch(epoch)
        if transform is not None:
            transform.set_random_seed(cfg.seed * 1000 + epoch * 10 + proc.rank)  # each epoch its own draws
        train_model.train()
        loss_sum, seen, cancelled = torch.zeros((), device=device), 0, False
        for step, (images, masks) in enumerate(train_loader, start=1):
            if step > steps_per_epoch:
                break
            images = images.to(device, non_blocking=True)
            masks = masks.to(device, non_blocking=True)
            if device.type == "cuda":
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                loss = loss_fn(train_model(images), masks)
            if not torch.isfinite(loss):
                raise TrainingError(f"loss became {loss.item()} at epoch {epoch}, step {step} "
                                    f"(lr {optimizer.param_groups[0]['lr']:.2e}); lower the learning rate "
                                    "or check the masks")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip > 0:
                scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            if sched_every == "step":
                scheduler.step()
            global_step += 1
            loss_sum += loss.detach() * len(images)
            seen += len(images)
            if step % 10 == 0 or step == steps_per_epoch:  # .item() syncs the GPU: not every step
                callbacks.on_step_end({"epoch": epoch, "epochs": cfg.epochs, "step": step, "steps": steps_per_epoch,
                                       "global_step": global_step, "total_steps": cfg.epochs * steps_per_epoch,
                                       "loss": loss.item(), "lr": optimizer.param_groups[0]["lr"],
                                       "images_per_s": seen * proc.world / (time.perf_counter() - t0)})
            if distributed.any_rank(callbacks.should_stop(), proc):
                cancelled = True
                break
        train_time = time.perf_counter() - t0
        totals = distributed.all_reduce_sum(torch.stack([loss_sum.double(), torch.tensor(float(seen), device=device,
                                                                                          dtype=torch.float64)]), proc)
        train_loss = (totals[0] / totals[1]).item() if totals[1] > 0 else float("nan")
        if cancelled:
            status = "cancelled"
            if proc.is_main:
                run.save_weights("last", model.net.state_dict(), epoch - 1, {})
                log(f"cancelled during epoch {epoch} after {plural(global_step, 'step')}; last weights kept")
            break

        # ---- validation: one confusion matrix over the whole split ------------------------
        val = evaluate(model, val_loader, loss_fn, data, device, dtype, proc, callbacks, val_plan, cfg.batch_size)
        lr = optimizer.param_groups[0]["lr"]
        record = {"epoch": epoch, "epochs": cfg.epochs, "train_loss": train_loss, **val, "lr": lr,
                  "time": time.perf_counter() - t0, "train_time": train_time,
                  "images_per_s": totals[1].item() / train_time if train_time > 0 else 0.0}
        monitored = record.get(cfg.monitor)
        improved = _improved(monitored, best, cfg.monitor_mode)
        if improved:
            best, best_epoch = monitored, epoch
        record["best_epoch"] = best_epoch
        history.append(record)
        if sched_every == "epoch":
            scheduler.step(monitored if monitored is not None and not math.isnan(monitored) else 0.0)
        if proc.is_main:
            metrics = {k: record[k] for k in SCORE_KEYS if k in record}
            if improved:
                run.save_weights("best", model.net.state_dict(), epoch, metrics)
            run.save_weights("last", model.net.state_dict(), epoch, metrics)
            run.save_state(optimizer, scheduler, {"epoch": epoch, "best": best, "best_epoch": best_epoch,
                                                  "global_step": global_step})
            run.write_history(history)
            run.write_status("running", epoch=epoch, epochs=cfg.epochs)
            log(f"epoch {epoch}/{cfg.epochs}: train loss {train_loss:.4f}, val loss {record['val_loss']:.4f}, "
                f"{cfg.monitor} {monitored:.4f}{' (best)' if improved else ''}, {record['images_per_s']:.1f} img/s")
        callbacks.on_epoch_end(record)
        if cfg.patience and epoch - best_epoch >= cfg.patience:
            status = "stopped_early"
            log(f"early stop: no better {cfg.monitor} for {plural(cfg.patience, 'epoch')} "
                f"(best {best:.4f} at {best_epoch})")
            break

    agreed = distributed.weights_agree(model, proc)
    if not agreed:
        raise TrainingError("ranks ended with different weights (DistributedDataParallel out of sync)")
    best_record = next((r for r in history if r["epoch"] == best_epoch), history[-1] if history else {})
    result = {"run": str(run.path), "status": status, "epochs": history[-1]["epoch"] if history else 0,
              "best_epoch": best_epoch, "best": best, "monitor": cfg.monitor, "world_size": proc.world,
              "val": {k: best_record[k] for k in SCORE_KEYS if k in best_record}}
    if proc.is_main:
        run.write_status("done" if status in ("done", "stopped_early") else status, epoch=result["epochs"],
                         best_epoch=best_epoch, best=best, ended_as=status)
    return result


@torch.no_grad()
def evaluate(model: nn.Module, loader, loss_fn, data: TrainData, device, dtype, proc, callbacks=None,
             plan: InferencePlan | None = None, window_batch: int = 16) -> dict:
    """Validation loss and the scores of one confusion matrix summed over every batch (and rank).

    Images are predicted whole at their own size, as inference will see them (``plan``, from
    the run's input policy: windows of the training crop blended smoothly, ``window_batch`` at
    a time, or a resize and back; default whole images). The prediction is the argmax of the
    blended probabilities; the loss is taken on the logits blended the same way (for an image
    that fits one window: exactly the model's logits)."""
    model.eval()
    plan = plan or InferencePlan()
    k = data.num_classes
    cm = ConfusionMatrix(k)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    n = 0

    def forward(x: torch.Tensor) -> torch.Tensor:
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = model(x)
        logits = logits.float()
        return torch.cat([logits, torch.softmax(logits, 1)], 1)   # blended together, split after

    first = next(iter(loader.batch_sampler), None) if getattr(loader, "batch_sampler", None) is not None else None
    for b, (images, masks) in enumerate(loader):
        images, masks = images.to(device, non_blocking=True), masks.to(device, non_blocking=True)
        both = plan.run(forward, images, window_batch)
        logits, probs = both[:, :k], both[:, k:]
        loss_sum += loss_fn(logits, masks).double() * len(images)
        n += len(images)
        pred = probs.argmax(1)
        cm.update(pred, masks)
        if b == 0 and callbacks is not None and proc.is_main:
            ids = [loader.dataset.ids[i] for i in first] if first is not None else loader.dataset.ids[: len(images)]
            callbacks.on_validation_batch(images.float().cpu(), masks.cpu(), pred.cpu(), ids)
    matrix = cm.matrix if cm.matrix is not None else torch.zeros(k, k, dtype=torch.long, device=device)
    totals = distributed.all_reduce_sum(torch.cat([matrix.double().flatten(), loss_sum.reshape(1),
                                                   torch.tensor([float(n)], device=device, dtype=torch.float64)]), proc)
    matrix = totals[: k * k].reshape(k, k).cpu().numpy()
    val_loss = (totals[-2] / totals[-1]).item() if totals[-1] > 0 else float("nan")
    return {"val_loss": val_loss, **scores(matrix, data.class_names, data.scored, data.background),
            "confusion": matrix.astype(np.int64).tolist()}


def _weights_available(cfg: TrainConfig) -> None:
    from .. import pretrained

    w = cfg.encoder_weights
    if not pretrained.is_random(w) and not pretrained.is_local_file(w):
        try:
            pretrained.require(cfg.encoder, str(w))
        except pretrained.WeightsError as e:
            raise ModelError(str(e)) from None


def _starting_weights(cfg: TrainConfig, model) -> dict:
    """What config.json records of the starting weights: name, repo, revision and sha256 of the
    file (seglib.pretrained.record), and the input normalisation the model applies."""
    from .. import pretrained

    try:
        rec = pretrained.record(cfg.encoder, cfg.encoder_weights)
    except pretrained.WeightsError as e:
        raise ModelError(str(e)) from None
    return {"encoder_weights": rec, "normalization": model.normalization}


def _check_runs(model: nn.Module, data: TrainData, device) -> None:
    """One forward pass at the size a training step sees (the crop, the resized first training
    image, or the whole first training image) before any epoch: a model that cannot run on this
    data fails here, with its reason, not after minutes of loading (nor in the memory of a
    whole photo when training takes crops of it)."""
    image = data.ds.image(data.train_ids[0])
    h, w = image.shape[:2]
    policy = data.input_plan or {"mode": "full"}
    if policy.get("mode") == "crop" and policy.get("size"):
        h = w = int(policy["size"])
    elif policy.get("mode") == "resize" and policy.get("size"):
        scale = int(policy["size"]) / max(h, w)
        h, w = max(1, round(h * scale)), max(1, round(w * scale))
    state = copy.deepcopy(model.state_dict())  # keep batch-norm statistics untouched
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(2, data.in_channels, h, w, device=device))
    except Exception as e:
        raise ModelError(f"{model.spec.label} cannot run on {h}x{w} images: "
                         f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    finally:
        model.load_state_dict(state)


def _restore(run: RunFolder, model, optimizer, scheduler, cfg: TrainConfig, log) -> tuple[int, list, float, int]:
    """Load the last weights, optimiser and schedule; the history continues from there."""
    from .runs import load_weights

    tensors, meta = load_weights(run.weights_path("last"))
    try:
        model.net.load_state_dict(tensors)
    except RuntimeError as e:
        raise ModelError(f"{run.weights_path('last')}: does not fit {model.spec.label} "
                         f"({str(e).splitlines()[0]})") from None
    history = run.read_history()
    epoch = int(meta.get("epoch", history[-1]["epoch"] if history else 0))
    history = [r for r in history if r["epoch"] <= epoch]
    best, best_epoch = None, 0
    try:
        opt_state, info = run.load_state()
        if int(info.get("epoch", -1)) == epoch:
            optimizer.load_state_dict(opt_state)
            if scheduler is not None and info.get("scheduler") and info["scheduler"].get("total_steps", None) in (
                    None, getattr(scheduler, "total_steps", None)):
                scheduler.load_state_dict(info["scheduler"])
            best, best_epoch = info.get("best"), int(info.get("best_epoch", 0))
    except Exception as e:  # weights alone still resume; say what was lost
        log(f"resume: optimiser state not restored ({e}); continuing with fresh optimiser state")
    if best is None and history:
        cands = [r for r in history if r.get(cfg.monitor) is not None]
        if cands:
            pick = (max if cfg.monitor_mode == "max" else min)(cands, key=lambda r: r[cfg.monitor])
            best, best_epoch = pick[cfg.monitor], pick["epoch"]
    log(f"resumed after epoch {epoch} (best {cfg.monitor} {best} at epoch {best_epoch})")
    return epoch + 1, history, best, best_epoch
