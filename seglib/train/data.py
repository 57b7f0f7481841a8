"""What the training loop eats: the split, the class bookkeeping, the sampler and the loaders.

``prepare_data`` turns a TrainConfig into a :class:`TrainData` (and records in the config what
it decided: the split, the images left out, the rare class oversampled, channels and classes).
``make_loaders`` builds the DataLoaders for one process of a (possibly distributed) run.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Sampler

from ..data import open_dataset
from ..data.classmap import ClassMap
from ..data.torch_dataset import SegTorchDataset
from ..metrics import IGNORE_INDEX
from ..sampling import rarest_classes, sample_weights
from ..stats import DatasetStats, compute_stats
from ..tiling import InferencePlan, inference_plan
from .config import ConfigError, TrainConfig
from .inputs import input_transform, resolve_input
from .split import SharedPixels, split_groups, split_ids


@dataclass
class TrainData:
    ds: object                      # the SegDataset
    stats: DatasetStats
    class_map: ClassMap
    train_ids: list[str]
    val_ids: list[str]
    excluded_ids: list[str]         # left out because the review store says "exclude"
    in_channels: int
    num_classes: int
    scored: list[int]               # class ids that metrics and losses count
    background: int | None          # the id "exclude background" and miou_no_bg leave out
    train_pixels: np.ndarray        # (num_classes,) pixels per class in the training split
    weights: np.ndarray             # (len(train_ids),) sampling weight of each training image
    input_plan: dict | None = None  # {"mode", "size", "why"}: what a step sees of each image (train/inputs.py)
    rare_classes: tuple[int, ...] = ()  # crops centred on these (the rarest scored class)

    @property
    def class_names(self) -> list[str]:
        return [self.class_map.name_of(c) for c in range(self.num_classes)]


def excluded_in_review(ds) -> list[str]:
    """Ids the review store marks ``exclude`` for this dataset."""
    from ..review import ReviewStore, dataset_key

    store = ReviewStore()
    try:
        return sorted(i for i, s in store.states(dataset_key(ds)).items() if s == "exclude")
    finally:
        store.close()


def _corrected(ds, log):
    """``ds`` with the review store's corrected masks; the files' masks, said in the log, when
    the store cannot be read."""
    from ..review.corrections import apply_corrections

    try:
        return apply_corrections(ds)
    except Exception as e:  # a store that cannot be read must not stop training: say what was used
        log(f"warning: corrected masks not read from the review store ({type(e).__name__}: {e}); "
            "training on the files' masks")
        return ds


def class_layout(class_map: ClassMap) -> tuple[int, list[int], int | None]:
    """(num_classes, scored ids, background id) of a class map. The background is the class map's
    (:attr:`ClassMap.background_id`: marked in the class file, or named background/bg, or id 0 of
    a made-up map); None when it has none or ignores it: then ``miou_no_bg`` is ``miou`` and
    "exclude background" leaves nothing out."""
    num_classes = max(class_map.num_classes, 2)  # a one-class map still needs two logits
    scored = [c.id for c in class_map if not c.ignore]
    background = class_map.background_id
    return num_classes, scored, background if background in scored else None


def background_note(class_map: ClassMap) -> str:
    """What "without background" leaves out of this class map, in a sentence for the pages."""
    background = class_layout(class_map)[2]
    if background is None:
        return ("This class map has no background class (mark one with \"background\": true in classes.json, or "
                "name it background): mIoU without background is mIoU, and leaving the background out changes nothing.")
    return f"The background class is {class_map.name_of(background)} (id {background})."


def training_problem(ds, stats: DatasetStats) -> str | None:
    """Why ``ds`` cannot train at all, one line naming it; None when it can. The Train page disables its
    Start button with it; :func:`prepare_data` raises the same checks (after leaving out excluded images)."""
    if not ds.ids:
        return ds.empty_reason()
    n = len(ds.labeled_ids)
    if n < 2:
        return f"{ds.source}: {n} labeled image{'' if n == 1 else 's'}; training needs at least 2"
    if not stats.scored_pixels:
        return f"{ds.source}: {_all_ignored(stats.class_map)}"
    return None


def _all_ignored(class_map: ClassMap) -> str:
    ignored = ", ".join(c.name for c in class_map if c.ignore) or "none"
    return f"every labeled pixel is of an ignored class ({ignored}): there is nothing to learn or score"


def usable_images(cfg: TrainConfig, log=print):
    """(dataset as training reads it, its stats, excluded ids, usable ids, their pixels per class
    (N, num_classes)): the labeled images a run of ``cfg`` may use, readable and not excluded in
    the review store. ConfigError when fewer than 2, or when every pixel is of an ignored class."""
    ds = open_dataset(cfg.data, cfg.unlabeled or ())
    if not cfg.original_masks:
        ds = _corrected(ds, log)
    stats = compute_stats(ds)
    if not ds.ids:  # nothing found, or nothing readable: say which rather than "0 labeled images"
        raise ConfigError(ds.empty_reason())
    labeled = ds.labeled_ids  # problems found by the statistics pass are already left out
    excluded: list[str] = []
    if cfg.leave_out_excluded:
        try:
            excluded = [i for i in excluded_in_review(ds) if i in set(labeled)]
        except Exception as e:  # the store is advisory here: say so, train on
            log(f"warning: review store not read ({type(e).__name__}: {e}); no image left out")
    usable = [i for i in labeled if i not in set(excluded)]
    if len(usable) < 2:
        raise ConfigError(f"{cfg.data}: {len(usable)} usable labeled images; training needs at least 2")
    num_classes, scored, _ = class_layout(stats.class_map)
    row = {i: k for k, i in enumerate(stats.ids)}
    counts = stats.counts[[row[i] for i in usable]][:, :num_classes]
    if not counts[:, scored].sum():  # the loss would be NaN at the first step
        raise ConfigError(f"{cfg.data}: {_all_ignored(stats.class_map)}")
    return ds, stats, excluded, usable, counts


def prepare_data(cfg: TrainConfig, log=print) -> TrainData:
    """Open the dataset, compute (cached) statistics, split and weigh. Records decisions in
    ``cfg.resolved`` and, for a first run, fills ``cfg.train_ids`` / ``cfg.val_ids``."""
    ds, stats, excluded, usable, counts = usable_images(cfg, log)
    num_classes, scored, background = class_layout(stats.class_map)
    row = {i: k for k, i in enumerate(stats.ids)}

    shared = SharedPixels(ds, stats, log)  # groups of images that share pixels, looked for once when needed
    given = cfg.train_ids is not None or cfg.val_ids is not None
    if given:
        train_ids, val_ids = _given_split(cfg, usable)
    else:
        try:
            groups = split_groups(cfg.split_by, usable, shared.groups)
            train_ids, val_ids = split_ids(usable, counts[:, scored] > 0, cfg.val_fraction, cfg.seed, groups)
        except ValueError as e:
            raise ConfigError(f"{cfg.data}: split by {cfg.split_by}: {e}") from None
        cfg.train_ids, cfg.val_ids = train_ids, val_ids
    cfg.resolved["split"] = shared.check("given" if given else cfg.split_by, train_ids, val_ids)

    pos = {i: k for k, i in enumerate(usable)}
    train_counts = counts[[pos[i] for i in train_ids]]
    train_pixels = train_counts.sum(0).astype(np.float64)
    classes = cfg.sampler_classes
    if cfg.sampler == "oversample" and classes is None:
        classes = rarest_classes(stats, 1)  # the Augment page's default too
    weights = sample_weights(stats, train_ids, cfg.sampler, classes or (), cfg.sampler_factor)
    in_channels = int(stats.shape[[row[i] for i in usable], 2].max())
    in_channels = 3 if in_channels >= 3 else 1
    plan = resolve_input(cfg.input_mode, cfg.input_size, stats.shape[[row[i] for i in train_ids]])
    rare = tuple(classes or rarest_classes(stats, 1)) if plan["mode"] == "crop" else ()
    log(f"input: {plan['why']}")

    fixed = sorted(set(ds.corrected_ids) & (set(train_ids) | set(val_ids)))
    if fixed:
        log(f"masks: {len(fixed)} corrected masks from the review store "
            f"({sum(i in set(val_ids) for i in fixed)} of them in validation)")
    cfg.resolved.update({
        "dataset_fingerprint": ds.fingerprint(), "files_fingerprint": ds.files_fingerprint(),
        "masks": "original" if cfg.original_masks else "corrected",
        "corrections": {i: ds.corrections.versions[i] for i in fixed}, "n_train": len(train_ids), "n_val": len(val_ids),
        "excluded_ids": excluded, "sampler_classes": list(classes or []), "in_channels": in_channels,
        "num_classes": num_classes, "class_map": stats.class_map.to_list(), "scored": scored,
        "background": background, "input": {**plan, "rare_classes": list(rare), "rare_share": cfg.rare_crop_share},
    })
    return TrainData(ds, stats, stats.class_map, train_ids, val_ids, excluded, in_channels, num_classes, scored,
                     background, train_pixels, weights, plan, rare)


def _given_split(cfg: TrainConfig, usable: list[str]) -> tuple[list[str], list[str]]:
    ok = set(usable)
    given_val = list(cfg.val_ids or [])
    train = list(cfg.train_ids) if cfg.train_ids is not None else [i for i in usable if i not in set(given_val)]
    missing = [i for i in train + given_val if i not in ok]
    train, val = [i for i in train if i in ok], [i for i in given_val if i in ok]
    if missing and (not train or not val):
        raise ConfigError(f"{len(missing)} ids of the given split are not usable labeled images, e.g. {missing[0]!r}")
    if not train or not val:
        raise ConfigError("the given split leaves the training or the validation part empty")
    return train, val


class EpochSampler(Sampler[int]):
    """Indices for one epoch, reproducible from (seed, epoch), sharded over ranks.

    Uniform weights: a permutation (each image once per epoch). Otherwise ``num_samples`` draws
    with replacement, proportional to the weights (the rebalancing sampler of seglib.sampling).
    Every rank draws the same sequence and keeps every ``world``-th index, so the weighted
    distribution holds across ranks and all ranks run the same number of steps."""

    def __init__(self, weights: np.ndarray, seed: int = 0, rank: int = 0, world: int = 1):
        self.weights = torch.as_tensor(np.asarray(weights, np.float64))
        self.uniform = bool(torch.all(self.weights == self.weights[0]))
        self.seed, self.rank, self.world = seed, rank, world
        self.epoch = 0
        self.per_rank = -(-len(self.weights) // world)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        n = len(self.weights)
        if self.uniform:
            order = torch.randperm(n, generator=gen)
        else:
            order = torch.multinomial(self.weights, n, replacement=True, generator=gen)
        total = self.per_rank * self.world
        order = torch.cat([order, order[: total - n]])  # pad so every rank gets as many
        return iter(order[self.rank :: self.world].tolist())


class SizeBatchSampler(Sampler[list[int]]):
    """Training batches whose images share one size, so that none is padded (whole or resized
    images of mixed sizes). The epoch's indices come from ``sampler`` (its order and weights,
    ``set_epoch`` reaches it); each goes into the bucket of its size, and a bucket is a batch
    as soon as it holds ``batch_size``; what remains at the end goes as smaller batches (with
    ``drop_last``, a remainder of one image is dropped: a batch of one crashes batch-norm
    layers). ``len`` is the plain sampler's number of batches; an epoch never yields more
    batches than the remainders add (the training loop stops at its steps per epoch anyway)."""

    def __init__(self, sampler: EpochSampler, sizes: list[tuple[int, int]], batch_size: int,
                 drop_last: bool = False):
        self.sampler, self.sizes, self.batch_size, self.drop_last = sampler, sizes, max(1, batch_size), drop_last

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        buckets: dict[tuple[int, int], list[int]] = {}
        for k in self.sampler:
            bucket = buckets.setdefault(self.sizes[k], [])
            bucket.append(k)
            if len(bucket) == self.batch_size:
                yield bucket.copy()
                bucket.clear()
        for bucket in buckets.values():
            if len(bucket) > (1 if self.drop_last else 0):
                yield bucket


def training_sizes(ids: list[str], stats: DatasetStats, plan: dict | None) -> list[tuple[int, int]] | None:
    """The (H, W) each training image reaches the collate at (from the statistics, no image read),
    or None when they all share one (crops; one image size): then batches need no grouping."""
    mode = (plan or {}).get("mode", "full")
    if mode == "crop":
        return None
    row = {i: k for k, i in enumerate(stats.ids)}
    sizes = []
    for image_id in ids:
        h, w = (int(v) for v in stats.shape[row[image_id], :2])
        if mode == "resize":
            scale = plan["size"] / max(h, w)
            h, w = (max(1, round(h * scale)), max(1, round(w * scale))) if scale != 1 else (h, w)
        sizes.append((h, w))
    return sizes if len(set(sizes)) > 1 else None


def pad_collate(batch, channels: int):
    """Stack (image, mask) pairs of different sizes: pad images with 0 and masks with the
    ignore index, so padding never counts; grayscale images join an RGB batch by repetition."""
    h = max(img.shape[-2] for img, _ in batch)
    w = max(img.shape[-1] for img, _ in batch)
    images, masks = [], []
    for img, mask in batch:
        if img.shape[0] != channels:
            img = img[:1].expand(channels, -1, -1) if channels > img.shape[0] else img[:channels]
        dh, dw = h - img.shape[-2], w - img.shape[-1]
        images.append(F.pad(img, (0, dw, 0, dh)) if dh or dw else img)
        masks.append(F.pad(mask, (0, dw, 0, dh), value=IGNORE_INDEX) if dh or dw else mask)
    return torch.stack(images), torch.stack(masks)


def auto_workers(device: torch.device) -> int:
    """No workers on a CPU (they compete with the compute threads), up to 8 beside a GPU."""
    if device.type == "cpu":
        return 0
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def make_loaders(data: TrainData, cfg: TrainConfig, transform, device: torch.device, drop_last: bool,
                 rank: int = 0, world: int = 1) -> tuple[DataLoader, DataLoader, EpochSampler]:
    workers = auto_workers(device) if cfg.workers < 0 else cfg.workers
    cfg.resolved["workers"] = workers
    common = dict(num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                  collate_fn=_Collate(data.in_channels))
    prepare = input_transform(data.input_plan or {"mode": "full"}, data.rare_classes, cfg.rare_crop_share,
                              cfg.seed + rank)
    train_set = SegTorchDataset(data.ds, data.train_ids, transform=transform, seed=cfg.seed + rank, prepare=prepare)
    sampler = EpochSampler(data.weights, cfg.seed, rank, world)
    # A last batch of one crashes batch-norm layers that pool to 1x1: drop it when that can happen.
    drop = drop_last and len(sampler) > cfg.batch_size
    sizes = training_sizes(data.train_ids, data.stats, data.input_plan)
    if sizes is None:
        train_loader = DataLoader(train_set, batch_size=cfg.batch_size, sampler=sampler, drop_last=drop, **common)
    else:   # mixed sizes, whole or resized: batches of one size, never padded
        train_loader = DataLoader(train_set, batch_sampler=SizeBatchSampler(sampler, sizes, cfg.batch_size, drop),
                                  **common)
    val_set = SegTorchDataset(data.ds, data.val_ids[rank::world])
    # Whole images of one size per batch (never padded to the largest); one at a time when tiled.
    val_batches = size_batches(val_set.ids, data.stats, cfg.batch_size, inference_plan(cfg))
    val_loader = DataLoader(val_set, batch_sampler=val_batches, **common)
    return train_loader, val_loader, sampler


def size_batches(ids: list[str], stats: DatasetStats, batch_size: int, plan: InferencePlan) -> list[list[int]]:
    """Indices into ``ids`` in batches whose images share one size (from the statistics pass, no
    image read), ``plan.images_per_batch`` of them: ``batch_size``, or one for an image that is
    predicted by windows (its windows are batched instead). Sizes in order of first appearance,
    so the first batch holds the first image. An id the statistics do not know goes alone."""
    row = {i: k for k, i in enumerate(stats.ids)}
    groups: dict[tuple, list[int]] = {}
    for k, image_id in enumerate(ids):
        r = row.get(image_id)
        size = (int(stats.shape[r, 0]), int(stats.shape[r, 1])) if r is not None else ("unknown", k)
        groups.setdefault(size, []).append(k)
    batches = []
    for size, members in groups.items():
        n = plan.images_per_batch(*size, batch_size) if size[0] != "unknown" else 1
        batches += [members[s : s + n] for s in range(0, len(members), n)]
    return batches


class _Collate:
    """Picklable collate (DataLoader workers may be spawned, not forked)."""

    def __init__(self, channels: int):
        self.channels = channels

    def __call__(self, batch):
        return pad_collate(batch, self.channels)
