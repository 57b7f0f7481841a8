"""The last values a training form held, per dataset, in ``<data_dir>/train_form.json``: a
reload of the app's Train page or a new tab starts from them instead of the defaults.

>>> remember("/data/mars.npz", {"arch": "Unet", "epochs": 12})
>>> recall("/data/mars.npz")
{'arch': 'Unet', 'epochs': 12}

Plain JSON values under the dataset's key (``seglib.review.dataset_key``). Nothing here checks
them: the form keeps what it still offers and falls back to its defaults for the rest.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path

from .. import paths
from ..atomic import atomic_write_bytes

FILE = "train_form.json"
_lock = threading.Lock()  # one read-modify-write at a time within the process (the app's sessions)


def _path() -> Path:
    return paths.data_dir() / FILE


def _read_all() -> dict:
    try:
        data = json.loads(_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none yet, or damaged: start again rather than fail the page
        return {}
    return data if isinstance(data, dict) else {}


def recall(dataset: str) -> dict:
    """The values last remembered for ``dataset`` ({} when none)."""
    values = _read_all().get(str(dataset))
    return dict(values) if isinstance(values, dict) else {}


def remember(dataset: str, values: dict) -> None:
    """Keep ``values`` (JSON-serialisable) for ``dataset``, replacing what it had. Raises
    OSError when the data folder cannot be written."""
    text = json.dumps(values)  # refuse what JSON cannot hold before touching the file
    with _lock:
        data = _read_all()
        data[str(dataset)] = json.loads(text)
        atomic_write_bytes(_path(), json.dumps(data, indent=1).encode("utf-8"))
