"""The dataset-roots check for the app (see ``seglib.data.roots``): every path a person types,
puts in the URL, or picks from a run goes through :func:`allowed` before anything opens it."""
from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from seglib.data.roots import PathNotAllowed, check_allowed

__all__ = ["PathNotAllowed", "allowed", "check_allowed"]


def allowed(path: str | os.PathLike, where=st) -> Path | None:
    """The resolved ``path`` when it lies under a dataset root; otherwise show why (naming the
    roots) with ``where.error`` and return None, so the caller opens nothing."""
    try:
        return check_allowed(path)
    except PathNotAllowed as e:
        where.error(str(e), icon=":material/block:")
        return None


def checkpoints_folder(where=st) -> Path | None:
    """The checkpoints folder (``$SEGLIB_CHECKPOINTS``) if it lies under a dataset root, else
    None after showing the refusal: pages list and open runs only from an allowed folder."""
    from seglib.train.runs import checkpoints_dir  # lazy: importing seglib.train loads torch
    return allowed(checkpoints_dir(), where)


def run_dataset(run_path: str | os.PathLike, where=st) -> Path | None:
    """The dataset a run was trained on (its config's ``data``), resolved, if it lies under a
    dataset root; else None after showing why (a resumed run reopens it)."""
    from seglib.train.runs import CheckpointError, RunFolder
    try:
        data = RunFolder(run_path).read_config().get("data") or ""
    except CheckpointError as e:
        where.error(str(e))
        return None
    return allowed(data, where) if data else None
