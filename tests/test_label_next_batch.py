"""Label next on a new batch of images kept in another folder than the labeled dataset: the
folder's images join it as unlabeled (ids FOLDER_NAME/<name>), in the library, `seglib label-next
--unlabeled`, the Label page's "New images in another folder" and a training config; a mask saved
for one makes it labeled; an .npz or a missing folder is refused in one line."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from seglib.data import DatasetError, open_dataset


def test_a_batch_folder_joins_as_unlabeled_images(labeled_and_batch):
    from seglib.edit.label_next import candidates, label_next

    root, batch = labeled_and_batch
    alone, joined = open_dataset(root), open_dataset(root, [batch])
    new = ["batch-7/day2/n3", "batch-7/n1", "batch-7/n2"]
    assert sorted(set(joined.all_ids) - set(alone.all_ids)) == new
    assert all(not joined.is_labeled(i) for i in new) and len(joined.labeled_ids) == 6
    assert joined.image(new[0]).shape == (32, 64, 3)
    assert joined.fingerprint() != alone.fingerprint(), "caches keyed on the dataset tell them apart"
    assert sorted(candidates(joined)) == new and candidates(alone) == []
    queue = label_next(joined, [], strategy="kcenter")
    assert sorted(queue.image_id) == new


def test_a_saved_mask_labels_a_batch_image(labeled_and_batch, tmp_path):
    from seglib.review import ReviewStore
    from seglib.review.corrections import apply_corrections, save_correction

    root, batch = labeled_and_batch
    ds = open_dataset(root, [batch])
    store = ReviewStore(f"sqlite:///{tmp_path / 'review.db'}")
    try:
        save_correction(ds, "batch-7/n1", np.ones((32, 64), np.uint8), store=store)
        corrected = apply_corrections(open_dataset(root, [batch]), store)
    finally:
        store.close()
    assert corrected.is_labeled("batch-7/n1") and (corrected.mask("batch-7/n1") == 1).all()
    assert len(corrected.labeled_ids) == 7


def test_refusals_name_the_path(labeled_and_batch, demo_npz, tmp_path):
    root, batch = labeled_and_batch
    with pytest.raises(DatasetError, match="not a folder of unlabeled images"):
        open_dataset(root, [tmp_path / "nowhere"])
    with pytest.raises(DatasetError, match="folder dataset, not an .npz"):
        open_dataset(demo_npz, [batch])


def test_cli_ranks_the_batch(labeled_and_batch, tmp_path):
    root, batch = labeled_and_batch
    env = dict(os.environ, HF_HUB_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1", SEGLIB_DATA_DIR=str(tmp_path / "d"))
    out = subprocess.run([sys.executable, "-m", "seglib", "label-next", str(root), "--unlabeled", str(batch),
                          "--strategy", "random", "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["candidates"] == 3 and all(r["image_id"].startswith("batch-7/") for r in doc["images"])
    nothing = subprocess.run([sys.executable, "-m", "seglib", "label-next", str(root), "--strategy", "random"],
                             capture_output=True, text=True, env=env, timeout=300)
    assert nothing.returncode == 1 and "every image is labeled" in nothing.stderr


def test_training_reads_the_batch_folder(labeled_and_batch):
    from seglib.train import TrainConfig
    from seglib.train.data import usable_images

    root, batch = labeled_and_batch
    cfg = TrainConfig.quick(data=str(root), unlabeled=[str(batch)], original_masks=True)
    ds = usable_images(cfg, log=lambda *_: None)[0]
    assert "batch-7/n2" in ds.all_ids
