"""One interface over every dataset format: ids, lazy images and masks, class map, report.
The formats implement it in :mod:`.folder` and :mod:`.npz`; :func:`seglib.data.open_dataset` picks one.

>>> ds = open_dataset("data/mars.npz")
>>> ds.image(ds.ids[0]).shape, ds.mask(ds.ids[0]).dtype
((64, 128), dtype('uint8'))

Corrected masks (the review store's mask versions, :mod:`seglib.review.corrections`) are laid
over the files' by :meth:`SegDataset.with_corrections`: the view reads them wherever it reads a
mask, and its fingerprint changes with them. The files are never written.

Opening is structural and cheap (no pixel is read for folders beyond a small sample used to
recognise the mask encoding). Reading every pixel happens once, in ``seglib.stats``, which
finds the pixel-level problems (unreadable files, size mismatches, unknown colours) and hands
them back through :meth:`SegDataset.record_problems`.
"""
from __future__ import annotations

import abc
import copy
import hashlib
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from .classmap import ClassMap
from .io import IDS_MODE, MaskDecoder, ReadError, describe_unknown
from .report import Problem, Report

CLASS_MAP_FILE = "classes.json"


class DatasetError(Exception):
    """The dataset cannot be opened at all (path missing, not a folder or .npz)."""


class SegDataset(abc.ABC):
    """Base class. Subclasses fill ``_ids``, ``_labeled``, ``class_map``, ``encoding``, ``report``."""

    kind = "base"

    def __init__(self, source: Path):
        self.source = Path(source)
        self.report = Report()
        self.class_map = ClassMap()
        self.encoding = "index"
        self._ids: list[str] = []
        self._labeled: dict[str, bool] = {}
        self._decoder: MaskDecoder | None = None
        self.class_map_file: str | None = None  # the class file in use, named by problems about it
        self._overlay: MaskOverlay | None = None

    # --- what is in it ------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.source.stem if self.source.suffix else self.source.name

    @property
    def ids(self) -> list[str]:
        """The ids of the usable images (those left out by a problem are not here)."""
        return list(self._ids)

    @property
    def all_ids(self) -> list[str]:
        """Every image id found in the files, those left out by a problem included."""
        return list(self._labeled)

    @property
    def labeled_ids(self) -> list[str]:
        return [i for i in self._ids if self._labeled[i]]

    @property
    def unlabeled_ids(self) -> list[str]:
        return [i for i in self._ids if not self._labeled[i]]

    def empty_reason(self) -> str | None:
        """One line saying why this dataset has no usable image, naming it; None when it has one.

        Nothing found at all gives the opening's first problem (where it looked and for what);
        images that were found but all left out give the first reason (the report holds them all)."""
        if self._ids:
            return None
        if not self._labeled:
            first = self.report.problems[0].problem if self.report else "no images found"
            return f"{self.source}: {first}"
        first = next((p for p in self.report.problems if p.excluded), None)
        example = f"; first: {first.file}: {first.problem}" if first else ""
        return f"{self.source}: none of its {len(self._labeled):,} images can be used{example}"

    @property
    def corrected_ids(self) -> list[str]:
        """Images whose mask is a stored correction (or a new label) in this view."""
        return list(self._overlay.versions) if self._overlay is not None else []

    @property
    def corrections(self) -> MaskOverlay | None:
        return self._overlay

    def with_corrections(self, overlay: MaskOverlay | None) -> SegDataset:
        """A view of this dataset that reads ``overlay``'s masks instead of the files' for the
        images it holds (an unlabeled image in it becomes labeled). Shares everything else with
        this dataset; ``None`` or an empty overlay gives the files' view."""
        view = copy.copy(self)
        base = self._overlay.file_labeled if self._overlay is not None else self._labeled
        view._overlay = overlay if overlay is not None and overlay.versions else None
        view._labeled = dict(base)
        if view._overlay is not None:
            view._overlay.file_labeled = base
            for image_id in view._overlay.versions:
                if image_id in view._labeled:
                    view._labeled[image_id] = True
        return view

    def original(self) -> SegDataset:
        """This dataset as its files have it (no corrections)."""
        return self if self._overlay is None else self.with_corrections(None)

    def is_labeled(self, image_id: str) -> bool:
        return self._labeled[image_id]

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, image_id: str) -> bool:
        return image_id in self._labeled

    @property
    def decoder(self) -> MaskDecoder:
        if self._decoder is None or self._decoder.class_map is not self.class_map:
            self._decoder = MaskDecoder(self.class_map, self.encoding)
        return self._decoder

    # --- pixels -------------------------------------------------------------------------
    @abc.abstractmethod
    def file_of(self, image_id: str, what: str = "image") -> str:
        """The file a person should look at for this image or mask (used in messages)."""
        ...

    @abc.abstractmethod
    def image(self, image_id: str) -> np.ndarray:
        """uint8 (H, W) or (H, W, 3). Raises ReadError naming the file."""
        ...

    @abc.abstractmethod
    def raw_mask(self, image_id: str) -> tuple[np.ndarray, str]:
        """The file's mask pixels as stored and the PIL-like mode ("L", "P" or "RGB")."""

    def raw_mask_palette(self, image_id: str) -> tuple[np.ndarray, str, list | None]:
        """Like :meth:`raw_mask`, with the palette of a palette PNG (None otherwise), so that a
        colour-coded dataset can read it by its colours. A corrected mask comes as class ids
        (mode ``IDS_MODE``)."""
        if self._overlay is not None and image_id in self._overlay.versions:
            return self._overlay.mask(image_id), IDS_MODE, None
        return self._file_mask_palette(image_id)

    def _file_mask_palette(self, image_id: str) -> tuple[np.ndarray, str, list | None]:
        raw, mode = self.raw_mask(image_id)
        return raw, mode, None

    def mask(self, image_id: str) -> np.ndarray | None:
        """uint8 (H, W) class indices, unknown pixels = UNKNOWN_INDEX; None if unlabeled."""
        if not self._labeled[image_id]:
            return None
        raw, mode, palette = self.raw_mask_palette(image_id)
        return self.decoder.decode(raw, mode, palette)[0]

    def original_mask(self, image_id: str) -> np.ndarray | None:
        """The mask as the dataset's file has it (None if the file has none), corrections aside."""
        labeled = self._overlay.file_labeled if self._overlay is not None else self._labeled
        if not labeled[image_id]:
            return None
        return self.decoder.decode(*self._file_mask_palette(image_id))[0]

    def _read_pair(self, image_id: str, read_image=None):
        """(image, (raw mask, mode, palette) or None, problems); image None when the pair is left out.
        ``read_image(id) -> (image, full (H, W))`` may read a reduced image (the mask is checked
        against the full size)."""
        try:
            img, full = read_image(image_id) if read_image else (lambda a: (a, a.shape[:2]))(self.image(image_id))
        except ReadError as e:
            why = str(e).split(": ", 1)[-1]
            return None, None, [Problem(self.file_of(image_id), why, "unreadable_image", image_id)]
        if not self._labeled[image_id]:
            return img, None, []
        try:
            raw, mode, palette = self.raw_mask_palette(image_id)
        except ReadError as e:
            why = str(e).split(": ", 1)[-1]
            return None, None, [Problem(self.file_of(image_id, "mask"), why, "unreadable_mask", image_id)]
        if raw.shape[:2] != tuple(full):
            return None, None, [Problem(self.file_of(image_id, "mask"),
                                        f"mask is {raw.shape[1]}x{raw.shape[0]} but its image is "
                                        f"{full[1]}x{full[0]} (WxH)", "mask_size", image_id)]
        return img, (raw, mode, palette), []

    def _unknown_problem(self, image_id: str, unknown: dict) -> Problem:
        return Problem(self.file_of(image_id, "mask"), describe_unknown(unknown, self.encoding),
                       "unknown_class", image_id, excluded=False, severity="warning")

    def load_pair(self, image_id: str) -> tuple[np.ndarray, np.ndarray | None, list[Problem]]:
        """Image, decoded mask and the problems found in them; an excluded pair returns
        (None, None, problems). Never raises for a bad file."""
        img, raw, problems = self._read_pair(image_id)
        if raw is None:
            return img, None, problems
        mask, unknown = self.decoder.decode(*raw)
        if unknown:
            problems.append(self._unknown_problem(image_id, unknown))
        return img, mask, problems

    def load_pair_reduced(self, image_id: str, shorter: int = 0, longer: int = 0
                          ) -> tuple[np.ndarray | None, np.ndarray | None, tuple[int, int] | None, int]:
        """:meth:`load_pair`'s image and mask, the image decoded reduced where the format allows
        it (a folder's JPEGs: ``seglib.data.io.read_image_reduced``) while staying at least
        ``shorter`` / ``longer`` pixels; the mask at full size (whoever knows the final size
        shrinks the ids by nearest neighbour). Returns (image, mask or None, the image's full
        (H, W), the factor); (None, None, None, 1) for a pair :meth:`load_pair` leaves out. Here:
        the full image (a subclass that can read reduced images overrides :meth:`_read_reduced`)."""
        seen: dict = {}

        def read(i: str):
            img, full, seen["factor"] = self._read_reduced(i, shorter, longer)
            seen["full"] = full
            return img, full

        img, raw, _ = self._read_pair(image_id, read)
        if img is None:
            return None, None, None, 1
        return img, None if raw is None else self.decoder.decode(*raw)[0], tuple(seen["full"]), seen["factor"]

    def image_reduced(self, image_id: str, shorter: int = 0, longer: int = 0
                      ) -> tuple[np.ndarray, tuple[int, int], int]:
        """:meth:`image` decoded reduced where the format allows it, as :meth:`load_pair_reduced`
        does, without reading the mask: (image, full (H, W), factor). Raises ReadError naming the file."""
        return self._read_reduced(image_id, shorter, longer)

    def _read_reduced(self, image_id: str, shorter: int, longer: int) -> tuple[np.ndarray, tuple[int, int], int]:
        """(image, full (H, W), factor) for :meth:`load_pair_reduced`; here the full image."""
        img = self.image(image_id)
        return img, img.shape[:2], 1

    def load_counts(self, image_id: str) -> tuple[np.ndarray | None, np.ndarray | None, dict, list[Problem]]:
        """What the statistics pass needs: image, pixels per class id ((256,) int64, column
        UNKNOWN_INDEX = unknown; None when unlabeled), the unknown values or colours with their
        pixel counts, and the problems. Same numbers as :meth:`load_pair` without decoding the mask."""
        img, raw, problems = self._read_pair(image_id)
        if raw is None:
            return img, None, {}, problems
        counts, unknown = self.decoder.count(*raw)
        if unknown:
            problems.append(self._unknown_problem(image_id, unknown))
        return img, counts, unknown, problems

    # --- bookkeeping --------------------------------------------------------------------
    def record_problems(self, problems: list[Problem]) -> None:
        """Add pixel-level problems found by a full pass; excluded images leave ``ids``."""
        known = {(p.file, p.code) for p in self.report.problems}
        fresh = [p for p in problems if (p.file, p.code) not in known]
        self.report.extend(fresh)
        drop = {p.image_id for p in fresh if p.excluded}
        if drop:
            self._ids = [i for i in self._ids if i not in drop]

    def set_class_map(self, class_map: ClassMap) -> None:
        self.class_map = class_map
        self._decoder = None

    def remember_classes(self) -> None:
        """Keep the encoding and class map for the next open (folders cache them; others need not)."""
        return None

    def fingerprint(self) -> str:
        """Changes whenever any file of the dataset changes (path, size, mtime), or the
        corrections laid over it do."""
        files = self.files_fingerprint()
        return files if self._overlay is None else digest([files, "corrections", self._overlay.signature])

    @abc.abstractmethod
    def files_fingerprint(self) -> str:
        """Changes whenever any file of the dataset changes (path, size, mtime)."""
        ...


class MaskOverlay:
    """Masks that replace the files' for some images: ``versions`` maps image id to the version
    number laid over it, ``load(image_id)`` reads that version's class ids (uint8 (H, W)). The
    last few masks read are kept (a page draws the same image several times). Thread-safe."""

    keep = 32

    def __init__(self, versions: dict[str, int], load, signature: str | None = None):
        self.versions = dict(versions)
        self._load = load
        self.signature = signature or digest(f"{i}:{n}" for i, n in sorted(self.versions.items()))
        self.file_labeled: dict[str, bool] = {}  # filled by SegDataset.with_corrections
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def mask(self, image_id: str) -> np.ndarray:
        with self._lock:
            if image_id in self._cache:
                self._cache.move_to_end(image_id)
                return self._cache[image_id]
        mask = self._load(image_id)
        mask.setflags(write=False)  # shared by every reader
        with self._lock:
            self._cache[image_id] = mask
            while len(self._cache) > self.keep:
                self._cache.popitem(last=False)
        return mask


def npz_image_id(index: int, n: int) -> str:
    """Zero-padded index, at least 5 digits: 12 -> '00012'."""
    return str(index).zfill(max(5, len(str(max(n - 1, 0)))))


def digest(parts) -> str:
    """16 hex digits of SHA-1 over the parts (a dataset fingerprint from its files' states)."""
    h = hashlib.sha1()
    for p in parts:
        h.update(str(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def file_state(path: Path) -> str:
    """``path|size|mtime`` (or ``path|missing``): changes whenever the file does."""
    try:
        info = path.stat()
        return f"{path}|{info.st_size}|{info.st_mtime_ns}"
    except OSError:
        return f"{path}|missing"
