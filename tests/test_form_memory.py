"""The Train form's remembered values (seglib.train.form_memory): per dataset, in the data folder,
and a damaged file or a value JSON cannot hold never loses what was there."""
from __future__ import annotations

import numpy as np
import pytest

from seglib import paths
from seglib.train import form_memory


def test_values_are_kept_per_dataset():
    assert form_memory.recall("/data/a.npz") == {}
    form_memory.remember("/data/a.npz", {"arch": "FPN", "epochs": 7, "loss_terms": ["ce", "dice"]})
    form_memory.remember("/data/b", {"arch": "Unet"})
    form_memory.remember("/data/a.npz", {"arch": "PAN", "epochs": 7, "loss_terms": ["ce", "dice"]})
    assert form_memory.recall("/data/a.npz") == {"arch": "PAN", "epochs": 7, "loss_terms": ["ce", "dice"]}
    assert form_memory.recall("/data/b") == {"arch": "Unet"}
    assert (paths.data_dir() / form_memory.FILE).exists()


def test_a_bad_value_or_a_damaged_file_loses_nothing_else():
    form_memory.remember("/data/a.npz", {"epochs": 7})
    with pytest.raises(TypeError):
        form_memory.remember("/data/a.npz", {"epochs": np.int64(8)})
    assert form_memory.recall("/data/a.npz") == {"epochs": 7}
    (paths.data_dir() / form_memory.FILE).write_text("{not json")
    assert form_memory.recall("/data/a.npz") == {}  # the form starts from its defaults
    form_memory.remember("/data/a.npz", {"epochs": 9})
    assert form_memory.recall("/data/a.npz") == {"epochs": 9}
