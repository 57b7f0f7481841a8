"""Run folders as table rows: what a runs table shows (status, model, loss, best score, epochs,
time) and the histories its curves overlay. Reads JSON only; never loads weights.

>>> rows = summaries("checkpoints")                    # newest first
>>> mine = [r for r in rows if belongs_to(r, fingerprint, "data/demo.npz")]
"""
from __future__ import annotations

import os
from pathlib import Path

from .liveness import process_alive
from .runs import CONFIG, HISTORY, STATUS, CheckpointError, RunFolder, list_runs


def summarize(run: RunFolder) -> dict:
    """One row: name, path, status, arch, encoder, loss, monitor, best, best_epoch, epoch (last
    finished), epochs, time_s (training + validation, summed over epochs and resumes),
    images_per_s, started, finished, error, data, fingerprint, device, n_train, n_val."""
    try:
        cfg = run.read_config()
    except CheckpointError as e:
        cfg = {"error": str(e)}
    status = run.read_status()
    history = run.read_history()
    state = status.get("status", "unknown")
    if state == "running" and not process_alive(status.get("pid"), status.get("host")):
        state = "interrupted"  # died after the last manager start; resume works the same
    monitor = cfg.get("monitor", "miou")
    best_epoch = history[-1].get("best_epoch", 0) if history else 0
    best = next((r.get(monitor) for r in history if r["epoch"] == best_epoch), None)
    resolved = cfg.get("resolved", {})
    speeds = [r["images_per_s"] for r in history if r.get("images_per_s")]
    return {
        "name": run.name, "path": str(run.path), "status": state, "arch": cfg.get("arch"),
        "encoder": cfg.get("encoder"), "loss": cfg.get("loss"), "monitor": monitor, "best": best,
        "best_epoch": best_epoch or None, "epoch": history[-1]["epoch"] if history else 0,
        "epochs": cfg.get("epochs"), "time_s": sum(r.get("time", 0.0) for r in history),
        "images_per_s": sum(speeds) / len(speeds) if speeds else None,
        "started": status.get("started"), "finished": status.get("finished"),
        "error": status.get("error") or cfg.get("error"), "data": cfg.get("data"),
        "fingerprint": resolved.get("dataset_fingerprint"), "device": resolved.get("device"),
        "n_train": resolved.get("n_train"), "n_val": resolved.get("n_val"),
    }


def summaries(root: str | os.PathLike | None = None) -> list[dict]:
    """A row per run folder under ``root`` (default ``checkpoints_dir()``), newest first."""
    return [summarize(run) for run in list_runs(root)]


def signature(root: str | os.PathLike | None = None) -> tuple:
    """Changes whenever a run is added, removed or writes its config, status or history: a
    cheap cache key for :func:`summaries` (a stat per file, no reading)."""
    out = []
    for run in list_runs(root):
        stamps = []
        for name in (CONFIG, STATUS, HISTORY):
            try:
                stamps.append(run.file(name).stat().st_mtime_ns)
            except OSError:
                stamps.append(0)
        out.append((run.name, *stamps))
    return tuple(out)


def belongs_to(row: dict, fingerprint: str | None, data: str | os.PathLike | None) -> bool:
    """Whether a run trained on this dataset: the same path (even if files changed since), or
    the same fingerprint (the same files, opened by another path)."""
    if fingerprint and row.get("fingerprint") == fingerprint:
        return True
    if not data or not row.get("data"):
        return False
    return Path(row["data"]).expanduser().resolve() == Path(data).expanduser().resolve()
