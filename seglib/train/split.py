"""A seeded train/validation split, stratified so that rare classes land in both parts, by image
or by group of images.

Each image's stratum is the rarest class it contains (rarest = in the fewest images); each
stratum is split in the same proportion. A class present in at least two images is in both
parts, which a plain random 90/10 split does not promise for a class in 1% of the images.

Images that share pixels (crops cut from one photo, copies, frames of a video) on both sides of
a split leak: validation then scores pictures training has seen. A split by group keeps each
group whole on one side (``SPLIT_BY``: "folder", the image id's first folder; "overlap", the
groups of :func:`seglib.outliers.shared_pixel_groups`), and :func:`split_leaks` counts the groups
a split cuts.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

SPLIT_BY = ("image", "folder", "overlap")  # what one unit of the split is
ALONE = "\0"  # prefixes the group of an image that is alone: no clash with a folder's or a group's name


def rarest_class_strata(presence: np.ndarray) -> np.ndarray:
    """(N,) int: the rarest class (in the fewest images) each image holds, -1 for an image with no
    scored class. ``presence``: bool (N, K), which scored classes each image contains."""
    presence = np.asarray(presence, bool)
    images_per_class = presence.sum(0)
    rarity = np.where(images_per_class > 0, images_per_class, np.iinfo(np.int64).max)
    masked = np.where(presence, rarity[None, :], np.iinfo(np.int64).max)
    return np.where(presence.any(1), masked.argmin(1), -1)


def stratified_split(ids: Sequence[str], presence: np.ndarray, val_fraction: float = 0.1,
                     seed: int = 0) -> tuple[list[str], list[str]]:
    """(train_ids, val_ids) in the order of ``ids``.

    Args:
        presence: bool (N, K), which scored classes each image contains.
    """
    ids = list(ids)
    n = len(ids)
    if n < 2:
        raise ValueError(f"need at least 2 labeled images to split, have {n}")
    stratum = rarest_class_strata(presence)
    rng = np.random.default_rng(seed)
    val = np.zeros(n, bool)
    for s in np.unique(stratum):
        members = np.flatnonzero(stratum == s)
        rng.shuffle(members)
        k = int(round(len(members) * val_fraction))
        if len(members) >= 2:
            k = min(max(k, 1), len(members) - 1)  # both parts get one
        val[members[:k]] = True
    if not val.any():
        val[rng.integers(n)] = True
    if val.all():
        val[rng.integers(n)] = False
    return [i for i, v in zip(ids, val, strict=True) if not v], [i for i, v in zip(ids, val, strict=True) if v]


def folder_groups(ids: Sequence[str]) -> list[str]:
    """Each id's first folder ('Tile 3' for 'Tile 3/x_2'); an id without a folder is its own group."""
    return [i.split("/", 1)[0] if "/" in i else ALONE + i for i in ids]


def split_groups(split_by: str, ids: Sequence[str], shared: Callable[[], Mapping[str, str]]) -> list[str] | None:
    """The group of each id for a split by ``split_by`` (None: by image). ``shared`` gives the
    groups of images that share pixels (called only for "overlap"); an image in none is alone."""
    if split_by == "image":
        return None
    if split_by == "folder":
        return folder_groups(ids)
    if split_by == "overlap":
        groups = shared()
        return [groups.get(i, ALONE + i) for i in ids]
    raise ValueError(f"split_by = {split_by!r}: choose from {', '.join(SPLIT_BY)}")


def split_ids(ids: Sequence[str], presence: np.ndarray, val_fraction: float = 0.1, seed: int = 0,
              groups: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """:func:`stratified_split` (``groups`` None) or :func:`group_split`."""
    if groups is None:
        return stratified_split(ids, presence, val_fraction, seed)
    return group_split(ids, presence, groups, val_fraction, seed)


def group_split(ids: Sequence[str], presence: np.ndarray, groups: Sequence[str], val_fraction: float = 0.1,
                seed: int = 0) -> tuple[list[str], list[str]]:
    """(train_ids, val_ids) in the order of ``ids``, every group whole on one side.

    Stratified as far as groups allow: a group's stratum is the rarest class any of its images
    holds; strata are taken from the rarest, and each gives validation the groups that bring it
    closest to ``val_fraction`` of its images. A class that is in no validation group yet gets one
    of its stratum's groups there (if the stratum has two), and every stratum keeps a group for
    training; then whole groups even out the total.

    Args:
        presence: bool (N, K), which scored classes each image contains.
        groups: (N,) a group name per image.
    Raises ValueError when all images are in one group."""
    ids = list(ids)
    if len(ids) < 2:
        raise ValueError(f"need at least 2 labeled images to split, have {len(ids)}")
    names, group_of = np.unique(np.array([str(g) for g in groups], dtype=object), return_inverse=True)
    if len(names) < 2:
        raise ValueError(f"all {len(ids)} images are in one group ({names[0]!r}): a split by group needs two")
    presence = np.asarray(presence, bool)
    g_presence = np.zeros((len(names), presence.shape[1]), bool)
    np.logical_or.at(g_presence, group_of, presence)
    size = np.bincount(group_of, minlength=len(names))
    images_per_class = presence.sum(0)
    rarity = np.where(images_per_class > 0, images_per_class, np.iinfo(np.int64).max)
    masked = np.where(g_presence, rarity[None, :], np.iinfo(np.int64).max)
    stratum = np.where(g_presence.any(1), masked.argmin(1), -1)
    rng = np.random.default_rng(seed)
    val = np.zeros(len(names), bool)
    in_val = np.zeros(presence.shape[1], bool)  # classes some validation group holds
    by_rarity = sorted(np.unique(stratum), key=lambda s: (s < 0, rarity[s] if s >= 0 else 0, s))
    for s in by_rarity:
        members = np.flatnonzero(stratum == s)
        rng.shuffle(members)
        if len(members) < 2:
            continue
        target = val_fraction * size[members].sum()
        chosen = []
        if s >= 0 and not in_val[s]:
            chosen.append(members[0])  # the rare class must be seen in validation
        for g in members:
            taken = size[chosen].sum()
            closer = abs(taken + size[g] - target) < abs(taken - target)
            if closer and g not in chosen and len(chosen) < len(members) - 1:
                chosen.append(g)
        val[chosen] = True
        in_val |= g_presence[chosen].any(0)
    _even_out(val, size, stratum, val_fraction * len(ids), rng)
    image_val = val[group_of]
    return ([i for i, v in zip(ids, image_val, strict=True) if not v],
            [i for i, v in zip(ids, image_val, strict=True) if v])


def _even_out(val: np.ndarray, size: np.ndarray, stratum: np.ndarray, target: float, rng) -> None:
    """Move whole groups to validation while that brings its image count closer to ``target``,
    keeping a training group in every stratum; then make sure each side has a group."""
    for g in rng.permutation(len(val)):
        taken = size[val].sum()
        in_train = (stratum == stratum[g]) & ~val
        if not val[g] and in_train.sum() >= 2 and abs(taken + size[g] - target) < abs(taken - target):
            val[g] = True
    if not val.any():
        val[rng.integers(len(val))] = True
    if val.all():
        val[rng.integers(len(val))] = False


@dataclass
class SplitLeak:
    """How a split cuts the groups of images that share pixels."""

    groups: int           # groups with images on both sides
    images: int           # images in those groups
    val_images: int       # validation images that share pixels with a training image
    total_groups: int     # groups among the split's images

    def __bool__(self) -> bool:
        return self.groups > 0

    def words(self) -> str:
        """'12 of 20 groups of images that share pixels (180 images, 25 of them in validation)'."""
        return (f"{self.groups} of {self.total_groups} group{'' if self.total_groups == 1 else 's'} of images "
                f"that share pixels ({self.images} images, {self.val_images} of them in validation)")


def split_leaks(shared: Mapping[str, str], train_ids: Sequence[str], val_ids: Sequence[str]) -> SplitLeak:
    """Count the groups of ``shared`` (image id -> group) that have images on both sides."""
    train_groups = {shared[i] for i in train_ids if i in shared}
    val_groups = {shared[i] for i in val_ids if i in shared}
    cut = train_groups & val_groups
    return SplitLeak(groups=len(cut), images=sum(shared[i] in cut for i in (*train_ids, *val_ids) if i in shared),
                     val_images=sum(shared.get(i) in cut for i in val_ids),
                     total_groups=len(train_groups | val_groups))


class SharedPixels:
    """The groups of a dataset's images that share pixels, found once, when first asked: the outlier
    detectors' table (from their on-disk cache, else computed and cached for the pages and the
    next run; see :func:`seglib.outliers.shared_pixel_groups`)."""

    def __init__(self, ds, stats, log=print):
        self.ds, self.stats, self.log = ds, stats, log
        self._groups: dict[str, str] | None = None

    def groups(self) -> dict[str, str]:
        if self._groups is None:
            from ..outliers import cached_detections, detect, shared_pixel_groups

            flags = cached_detections(self.ds)
            if flags is None:
                self.log("split: looking for images that share pixels (the outlier detectors, cached for next time)")
                flags = detect(self.ds, self.stats)
            self._groups = shared_pixel_groups(flags)
        return self._groups

    def check(self, split_by: str, train_ids: Sequence[str], val_ids: Sequence[str]) -> dict:
        """What ``config.json`` records of the split (``resolved["split"]``), saying in the log
        when it cuts groups of images that share pixels; a check that cannot run is noted, not fatal."""
        record = {"by": split_by}
        if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 records and says it: no pass elsewhere
            return {**record, "checked": False}
        try:
            leak = split_leaks(self.groups(), train_ids, val_ids)
        except Exception as e:  # the check advises: training goes on without it
            self.log(f"warning: images sharing pixels not looked for ({type(e).__name__}: {e})")
            return {**record, "checked": False}
        if leak:
            self.log(f"warning: {leak_warning(leak, split_by)}")
        return {**record, "checked": True, "groups": leak.total_groups, "groups_cut": leak.groups,
                "images_in_cut_groups": leak.images, "val_images_sharing": leak.val_images}


def leak_warning(leak: SplitLeak, split_by: str) -> str:
    """One line saying what a leaking split does and how to avoid it."""
    fix = ("a split by overlap keeps each group on one side" if split_by != "overlap"
           else "the groups changed since the split was drawn")
    return (f"the {split_by} split puts {leak.words()} on both sides of training and validation: validation "
            f"scores pictures training has seen and reads too high; {fix}")
