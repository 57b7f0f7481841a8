"""seglib.data.torch_dataset: tensors, shapes, augmentation, workers drawing different streams."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from seglib.augment import build_compose, new_step
from seglib.data import open_dataset
from seglib.data.torch_dataset import SegTorchDataset


@pytest.fixture(scope="module")
def ds(demo_npz):
    return open_dataset(demo_npz)


def test_items_are_float_images_and_long_masks(ds):
    item_img, item_mask = SegTorchDataset(ds)[0]
    image, mask = ds.image(ds.labeled_ids[0]), ds.mask(ds.labeled_ids[0])
    assert item_img.shape == (1, 64, 128) and item_img.dtype == torch.float32
    assert item_mask.shape == (64, 128) and item_mask.dtype == torch.int64
    assert torch.allclose(item_img[0], torch.from_numpy(image).float() / 255)
    assert np.array_equal(item_mask.numpy(), mask)


def test_only_labeled_ids_are_accepted(ds):
    assert len(SegTorchDataset(ds)) == len(ds.labeled_ids)
    with pytest.raises(ValueError, match="no mask"):
        SegTorchDataset(ds, ids=ds.unlabeled_ids[:2])


def test_augmentation_moves_mask_with_image(ds):
    flip = build_compose([{**new_step("HorizontalFlip"), "p": 1.0}])
    img, mask = SegTorchDataset(ds, ids=ds.labeled_ids[:1], transform=flip, seed=0)[0]
    plain_img, plain_mask = SegTorchDataset(ds, ids=ds.labeled_ids[:1])[0]
    assert torch.equal(img, plain_img.flip(-1)) and torch.equal(mask, plain_mask.flip(-1))


def test_rgb_images_become_three_channels(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "rgb.npz"
    np.savez(path, images=rng.integers(0, 255, (4, 16, 24, 3), dtype=np.uint8),
             masks=rng.integers(0, 3, (4, 16, 24), dtype=np.uint8))
    img, mask = SegTorchDataset(open_dataset(path))[0]
    assert img.shape == (3, 16, 24) and mask.shape == (16, 24)


def test_workers_draw_different_augmentations_and_a_seeded_loader_repeats(ds):
    noise = build_compose([{**new_step("GaussNoise"), "p": 1.0}])
    same_id = [ds.labeled_ids[0]] * 4
    train = SegTorchDataset(ds, ids=same_id, transform=noise, seed=0)

    def batches():
        loader = DataLoader(train, batch_size=2, num_workers=2, generator=torch.Generator().manual_seed(0))
        return torch.cat([b[0] for b in loader])
    first = batches()
    # worker 0 serves items 0-1 and worker 1 items 2-3: their noise must differ
    assert not torch.equal(first[0], first[2])
    assert torch.equal(first, batches())
