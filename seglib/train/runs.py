"""Run folders: what one training leaves on disk, written so that a kill never leaves half a file.

    checkpoints/<run>/
      config.json          TrainConfig with resolved values (split, class map, excluded ids)
      status.json          running | done | cancelled | failed | interrupted, error, times, epoch
      history.jsonl        one JSON object per epoch: losses, lr, speed, validation metrics
      log.txt              what happened, in words
      best.safetensors     weights of the best epoch (on the monitored metric)
      last.safetensors     weights after the last finished epoch
      last.state.safetensors + last.state.json   optimiser and scheduler state, for resuming

Every file is written to a temporary name in the same folder and renamed over the old one, so
a reader sees the previous complete file or the new complete file. Weights are safetensors and
everything else JSON: opening a run never unpickles anything.
"""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import torch

from ..atomic import atomic_write

CONFIG, STATUS, HISTORY, LOG = "config.json", "status.json", "history.jsonl", "log.txt"
BEST, LAST = "best.safetensors", "last.safetensors"
STATE_TENSORS, STATE_JSON = "last.state.safetensors", "last.state.json"
STATUSES = ("queued", "running", "done", "cancelled", "failed", "interrupted")


class CheckpointError(Exception):
    """A run folder or weights file that cannot be used; the message is one line naming the file."""


def checkpoints_dir() -> Path:
    """``$SEGLIB_CHECKPOINTS``, else ``./checkpoints`` (the app points it at the repository's)."""
    return Path(os.environ.get("SEGLIB_CHECKPOINTS") or "checkpoints").expanduser()


def new_run_name(arch: str, encoder: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{arch}-{encoder}".replace("/", "_")


def write_json(path: Path, obj) -> None:
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1, default=_jsonable)

    atomic_write(path, write)


def _jsonable(v):
    if hasattr(v, "item"):
        return v.item()
    if hasattr(v, "tolist"):
        return v.tolist()
    return str(v)


def save_weights(state: dict[str, torch.Tensor], path: Path, metadata: dict | None = None) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    meta = {k: json.dumps(v, default=_jsonable) for k, v in (metadata or {}).items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def load_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, metadata) or CheckpointError naming the file."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = {k: json.loads(v) for k, v in (f.metadata() or {}).items()}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for a bad header
        size = path.stat().st_size
        raise CheckpointError(f"{path}: truncated or not a safetensors file ({size} bytes; "
                              f"{str(e).splitlines()[0][:120]})") from None
    return tensors, meta


class RunFolder:
    """One training run's folder. Only rank 0 of a distributed run writes through it."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser()

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    def file(self, name: str) -> Path:
        return self.path / name

    def exists(self) -> bool:
        return self.file(CONFIG).is_file()

    # --- config and status ---------------------------------------------------------------
    def write_config(self, config: dict) -> None:
        write_json(self.file(CONFIG), config)

    def read_config(self) -> dict:
        return self._read_json(CONFIG)

    def write_status(self, status: str, **extra) -> None:
        old = self.read_status() if self.file(STATUS).exists() else {}
        now = time.time()
        # pid and host let a later process tell a live run from one whose process died.
        new = {**old, **extra, "status": status, "updated": now, "pid": os.getpid(), "host": socket.gethostname()}
        new.setdefault("started", now)
        if status in ("done", "cancelled", "failed"):
            new["finished"] = now
        write_json(self.file(STATUS), new)

    def read_status(self) -> dict:
        try:
            return self._read_json(STATUS)
        except CheckpointError:
            return {"status": "interrupted" if self.file(HISTORY).exists() else "unknown"}

    def _read_json(self, name: str) -> dict:
        path = self.file(name)
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise CheckpointError(f"{path}: missing (not a run folder?)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{path}: damaged JSON ({e})") from None

    # --- history and log -----------------------------------------------------------------
    def write_history(self, records: list[dict]) -> None:
        text = "".join(json.dumps(r, default=_jsonable) + "\n" for r in records)
        atomic_write(self.file(HISTORY), lambda tmp: Path(tmp).write_text(text))

    def read_history(self) -> list[dict]:
        path = self.file(HISTORY)
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break  # only possible for a file written by hand; keep what precedes
        return out

    def log(self, message: str) -> None:
        """Append one line (a lost last line on a kill is acceptable for a log)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.file(LOG), "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    def read_log(self) -> str:
        path = self.file(LOG)
        return path.read_text() if path.exists() else ""

    # --- weights and resumable state -----------------------------------------------------
    def save_weights(self, which: str, state: dict[str, torch.Tensor], epoch: int, metrics: dict) -> None:
        save_weights(state, self.file(BEST if which == "best" else LAST), {"epoch": epoch, "metrics": metrics})

    def weights_path(self, which: str = "best") -> Path:
        path = self.file(BEST if which == "best" else LAST)
        if which == "best" and not path.exists() and self.file(LAST).exists():
            return self.file(LAST)  # a run cancelled before its first validation
        return path

    def save_state(self, optimizer: torch.optim.Optimizer, scheduler, info: dict) -> None:
        """Optimiser tensors in safetensors, everything else in JSON (written last: a reader
        that finds the JSON finds the tensors it names)."""
        tensors, opt_json = flatten_optimizer(optimizer.state_dict())
        save_weights(tensors, self.file(STATE_TENSORS))
        sched = scheduler.state_dict() if scheduler is not None else None
        write_json(self.file(STATE_JSON), {**info, "optimizer": opt_json, "scheduler": sched})

    def load_state(self) -> tuple[dict, dict]:
        """(optimizer state dict, info with 'scheduler') for resuming."""
        info = self._read_json(STATE_JSON)
        tensors, _ = load_weights(self.file(STATE_TENSORS))
        return unflatten_optimizer(tensors, info.pop("optimizer")), info


def flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state dict into named tensors and a JSON-able rest."""
    tensors, rest = {}, {"param_groups": state["param_groups"], "state": {}}
    for pid, slots in state["state"].items():
        rest["state"][str(pid)] = {}
        for key, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{pid}.{key}"] = value
                rest["state"][str(pid)][key] = {"tensor": f"{pid}.{key}"}
            else:
                rest["state"][str(pid)][key] = value
    return tensors, rest


def unflatten_optimizer(tensors: dict[str, torch.Tensor], rest: dict) -> dict:
    state = {}
    for pid, slots in rest["state"].items():
        state[int(pid)] = {k: tensors[v["tensor"]] if isinstance(v, dict) and "tensor" in v else v
                           for k, v in slots.items()}
    return {"state": state, "param_groups": rest["param_groups"]}


def list_runs(root: str | os.PathLike | None = None) -> list[RunFolder]:
    """Run folders under ``root`` (default :func:`checkpoints_dir`), newest first."""
    root = Path(root) if root else checkpoints_dir()
    if not root.is_dir():
        return []
    runs = [RunFolder(p) for p in root.iterdir() if p.is_dir() and (p / CONFIG).is_file()]
    return sorted(runs, key=lambda r: r.file(CONFIG).stat().st_mtime, reverse=True)
