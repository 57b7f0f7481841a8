"""The training Dataset: a torch Dataset over a SegDataset's labeled ids plus an albumentations
pipeline, returning float image tensors (C, H, W) in [0, 1] and long mask tensors (H, W).

>>> train = SegTorchDataset(open_dataset("mars.npz"), transform=load_pipeline("light"), seed=0)
>>> image, mask = train[0]          # float32 (1, 64, 128), int64 (64, 128); 255 = unknown pixel
>>> loader = DataLoader(train, batch_size=32, sampler=make_sampler(stats, train.ids), num_workers=2)
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from ..augment.registry import ALREADY_GREY, NOT_FOR_GREY, quiet
from .dataset import DatasetError, SegDataset

__all__ = ["SegTorchDataset"]


class SegTorchDataset(Dataset):
    """Args:
        ds: the dataset; only labeled pairs are served.
        ids: which image ids (default ``ds.labeled_ids``); unlabeled ids raise ValueError.
        transform: an ``A.Compose`` (or anything called as ``t(image=, mask=)``), or None.
        prepare: ``(image, mask) -> (image, mask)`` applied before ``transform``: the training
            input policy (a random crop, a resize; see ``seglib.train.inputs``), or None.
        seed: seeds the pipeline; each DataLoader worker reseeds from torch's per-worker seed,
            so workers draw different augmentations and a seeded DataLoader repeats exactly.
    Shape:
        image: float32 (C, H, W), C = 1 for grayscale, 3 for RGB; values / 255.
        mask: int64 (H, W) class ids; pixels of unknown colour are 255 (use ignore_index=255).
    """

    def __init__(self, ds: SegDataset, ids: Sequence[str] | None = None, transform=None, seed: int | None = None,
                 prepare=None):
        self.ds = ds
        self.prepare = prepare
        self.ids = list(ds.labeled_ids if ids is None else ids)
        unlabeled = [i for i in self.ids if i not in ds or not ds.is_labeled(i)]
        if unlabeled:
            raise ValueError(f"{len(unlabeled)} ids have no mask or are not in {ds.source}, e.g. {unlabeled[0]!r}")
        self.transform = transform
        self._seeded_worker: int | None = None
        if transform is not None and hasattr(transform, "set_random_seed"):
            transform.set_random_seed(seed)

    def __len__(self) -> int:
        return len(self.ids)

    def _reseed_in_worker(self) -> None:
        """Forked workers start with copies of one RNG state: give each its own stream."""
        info = get_worker_info()
        if info is None or self._seeded_worker == info.id or not hasattr(self.transform, "set_random_seed"):
            return
        self.transform.set_random_seed(info.seed % 2**32)
        self._seeded_worker = info.id

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_id = self.ids[index]
        image, mask, problems = self.ds.load_pair(image_id)
        if image is None or mask is None:
            why = "; ".join(f"{p.file}: {p.problem}" for p in problems) or "no mask"
            raise DatasetError(f"image {image_id!r} cannot be used for training ({why})")
        if self.prepare is not None:  # crop (or resize) first, then augment: the pipeline sees what trains
            image, mask = self.prepare(image, mask)
        if self.transform is not None:
            self._reseed_in_worker()
            with quiet(NOT_FOR_GREY, ALREADY_GREY):  # per sample; check_pipeline reports them once
                out = self.transform(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        return _image_tensor(image), torch.from_numpy(np.ascontiguousarray(mask, dtype=np.int64))


def _image_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W) or (H, W, C) (or float in [0, 1] after a normalising transform) -> float32 (C, H, W)."""
    arr = image[None] if image.ndim == 2 else np.moveaxis(image, -1, 0)
    # Arrays from PIL are read-only; torch would warn. float32 makes the one copy we need anyway.
    t = torch.from_numpy(np.require(arr, requirements=("C",)).astype(np.float32))
    return t.div_(255.0) if image.dtype == np.uint8 else t
