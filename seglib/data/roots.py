"""Dataset roots: the folders under which the app may open (or write) anything.

The app serves whoever can reach its port, so a path typed in the sidebar or put in the URL
(``?dataset=/etc``) must not open arbitrary folders of the machine. Every path the app opens is
resolved (symlinks, ``..``) and must lie under one of :func:`allowed_roots`:

- ``$SEGLIB_DATASET_ROOTS``: folders separated by ``os.pathsep`` (``:`` on Linux), or
- by default the data folder, the working directory and the user's home.

The data folder (``$SEGLIB_DATA_DIR``) is always allowed: the demo, uploads and exports live
there. The command line is not restricted: whoever runs it already has a shell.

>>> check_allowed("~/data/camvid")          # the resolved Path, or raises PathNotAllowed
"""
from __future__ import annotations

import os
from pathlib import Path

from .. import paths
from .dataset import DatasetError

ENV = "SEGLIB_DATASET_ROOTS"


class PathNotAllowed(DatasetError):
    """A path outside every dataset root. The message names the path and the roots."""


def _resolve(path: str | os.PathLike) -> Path:
    # strict=False: a missing path is still checked (and then reported missing by the opener).
    try:
        return Path(path).expanduser().resolve()
    except (OSError, RuntimeError, ValueError) as e:  # a link loop, a NUL byte, an unknown ~user
        raise PathNotAllowed(f"{str(path)!r} is not a usable path ({e})") from None


def allowed_roots() -> list[Path]:
    """The resolved dataset roots, in order, none inside another: ``$SEGLIB_DATASET_ROOTS`` (or
    the working directory and the home folder) plus the data folder."""
    env = os.environ.get(ENV, "").strip()
    given = [p for p in env.split(os.pathsep) if p.strip()] if env else [Path.cwd(), Path.home()]
    roots = list(dict.fromkeys(_resolve(p) for p in [*given, paths.data_dir()]))
    # A root inside another adds nothing (and would only lengthen the refusal message).
    return [r for r in roots if not any(r != o and r.is_relative_to(o) for o in roots)]


def check_allowed(path: str | os.PathLike, roots: list[Path] | None = None) -> Path:
    """The resolved ``path`` if it lies under a dataset root; else raise :class:`PathNotAllowed`.

    Containment is checked on real paths (``Path.is_relative_to`` after ``resolve``), so
    ``root/../etc``, a link inside a root that points outside it, and a sibling folder that
    merely starts with a root's name (``/data-private`` next to ``/data``) are all refused."""
    roots = roots if roots is not None else allowed_roots()
    real = _resolve(path)
    if any(real.is_relative_to(r) for r in roots):
        return real
    shown = str(path) if str(real) == str(path) else f"{path} (resolves to {real})"
    raise PathNotAllowed(f"{shown} is outside the dataset roots: {', '.join(map(str, roots))}. "
                         f"Ask whoever runs the app to add its folder to {ENV}.")
