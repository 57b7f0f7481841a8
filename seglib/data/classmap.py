"""Class maps: the id, name, colour and ignore flag of every class of a dataset.

A dataset may ship a class file at its root (:func:`find_class_file` says which), in one of
two formats:

- seglib's list: ``[{"id": 0, "name": "soil", "color": "#8B4513", "ignore": false}, ...]``, where
  one class may carry ``"background": true``;
- Supervisely's (``classes.json`` of many public sets, or a Supervisely project's ``meta.json``):
  ``{"classes": [{"title": "Building", "shape": "bitmap", "color": "#3C1098"}, ...]}``.
  Ids follow the file order (0, 1, ...): Supervisely's own ``id`` fields are server ids, not
  class indices, so an ``id`` is used only when every entry has one, all distinct, in 0..254.
  ``name`` may stand for ``title``; ``ignore`` and ``background`` keys are honoured as in the
  list format (Supervisely itself has no background flag: a class titled "background" counts).

Without a class file, names and colours are made up from the ids that the masks use.

The background class (:attr:`ClassMap.background_id`: what "mIoU without background" and
"exclude background" leave out, and what the eraser paints) is the class marked
``"background": true``; else the class named background or bg (any case, ``__bg__`` and
labelme's ``_background_`` too); else, for a made-up class map only, id 0 (index masks keep
their background at 0, as seglib always assumed); else there is none: a class file that names
no background has none, even when class 0 is Water.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

# Pixels whose value or colour the class map does not know. Metrics and losses skip them.
UNKNOWN_INDEX = 255
# Class names that mean "background" once case, spaces and underscores are stripped (``__bg__``, ``_background_``).
BACKGROUND_NAMES = ("background", "bg")

# A qualitative palette (Plotly "Dark24"-like, readable on grey terrain and on photos).
_PALETTE = [
    "#000000", "#E6194B", "#3CB44B", "#FFE119", "#4363D8", "#F58231", "#911EB4", "#46F0F0",
    "#F032E6", "#BCF60C", "#FABEBE", "#008080", "#E6BEFF", "#9A6324", "#FFFAC8", "#800000",
    "#AAFFC3", "#808000", "#FFD8B1", "#000075", "#808080", "#FFFFFF",
]


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    """'#8B4513' -> (139, 69, 19). Raises ValueError on anything else."""
    s = color.strip().lstrip("#")
    if len(s) == 3:
        s = "".join(c * 2 for c in s)
    if len(s) != 6:
        raise ValueError(f"not a #RRGGBB colour: {color!r}")
    return tuple(int(s[i : i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]


def rgb_to_hex(rgb) -> str:
    r, g, b = (int(v) for v in rgb[:3])
    return f"#{r:02X}{g:02X}{b:02X}"


def default_color(class_id: int) -> str:
    if class_id < len(_PALETTE):
        return _PALETTE[class_id]
    rng = np.random.default_rng(class_id)  # stable made-up colour for large ids
    return rgb_to_hex(rng.integers(40, 256, size=3))


@dataclass(frozen=True)
class ClassInfo:
    id: int
    name: str
    color: str
    ignore: bool = False
    background: bool = False   # marked so in the class file (see ClassMap.background_id)

    @property
    def rgb(self) -> tuple[int, int, int]:
        return hex_to_rgb(self.color)

    @property
    def named_background(self) -> bool:
        return self.name.strip().strip("_").strip().lower() in BACKGROUND_NAMES

    def to_dict(self) -> dict:
        """The class file entry; ``background`` only when set (files and caches of other maps stay as they were)."""
        doc = asdict(self)
        if not self.background:
            del doc["background"]
        return doc


@dataclass
class ClassMap:
    """Ordered classes of a dataset. ``inferred`` is True when no classes.json was given."""

    classes: list[ClassInfo] = field(default_factory=list)
    inferred: bool = True

    # --- construction -------------------------------------------------------------------
    @classmethod
    def default(cls, ids, names: dict[int, str] | None = None) -> ClassMap:
        ids = sorted({int(i) for i in ids})
        names = names or {}
        return cls([ClassInfo(i, names.get(i, f"class_{i}"), default_color(i)) for i in ids], True)

    @classmethod
    def from_list(cls, items: list[dict], source: str = "classes.json") -> ClassMap:
        """Build from the classes.json list. Raises ValueError naming ``source`` and the fault."""
        if not isinstance(items, list) or not items:
            raise ValueError(f"{source}: expected a non-empty list of classes")
        classes, seen, marked = [], set(), None
        for n, item in enumerate(items):
            if not isinstance(item, dict) or "id" not in item:
                raise ValueError(f"{source}: entry {n} has no 'id'")
            cid = item["id"]
            if not isinstance(cid, int) or not 0 <= cid < UNKNOWN_INDEX:
                raise ValueError(f"{source}: entry {n}: id must be an integer in 0..254, got {cid!r}")
            if cid in seen:
                raise ValueError(f"{source}: id {cid} appears twice")
            seen.add(cid)
            color = item.get("color") or default_color(cid)
            try:
                if not isinstance(color, str):
                    raise ValueError(f"not a #RRGGBB colour: {color!r}")
                hex_to_rgb(color)
            except ValueError as e:
                raise ValueError(f"{source}: entry {n} (id {cid}): {e}") from None
            background = item.get("background", False)
            if not isinstance(background, bool):
                raise ValueError(f"{source}: entry {n} (id {cid}): 'background' must be true or false, "
                                 f"got {background!r}")
            if background and marked is not None:
                raise ValueError(f"{source}: ids {marked} and {cid} are both marked background; at most one may be")
            marked = cid if background else marked
            classes.append(ClassInfo(cid, str(item.get("name", f"class_{cid}")), rgb_to_hex(hex_to_rgb(color)),
                                     bool(item.get("ignore", False)), background))
        classes.sort(key=lambda c: c.id)
        return cls(classes, inferred=False)

    @classmethod
    def from_supervisely(cls, doc: dict, source: str = "classes.json") -> ClassMap:
        """Build from ``{"classes": [{"title", "color", ...}]}`` (Supervisely's class list or
        project ``meta.json``). Raises ValueError naming ``source`` and the fault."""
        items = doc.get("classes") if isinstance(doc, dict) else None
        if not isinstance(items, list) or not items:
            raise ValueError(f"{source}: expected {{\"classes\": [...]}} with at least one class")
        for n, item in enumerate(items):
            if not isinstance(item, dict):
                raise ValueError(f"{source}: classes[{n}] is not an object")
            if not isinstance(item.get("title", item.get("name")), str):
                raise ValueError(f"{source}: classes[{n}] has no 'title'")
        given = [item.get("id") for item in items]
        use_ids = (all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < UNKNOWN_INDEX for i in given)
                   and len(set(given)) == len(given))
        if not use_ids and len(items) > UNKNOWN_INDEX:
            raise ValueError(f"{source}: {len(items)} classes; at most {UNKNOWN_INDEX} are supported")
        names = {}
        listed = []
        for n, item in enumerate(items):
            name = str(item.get("title", item.get("name")))
            if name in names:
                raise ValueError(f"{source}: class '{name}' appears twice (classes[{names[name]}] and classes[{n}])")
            names[name] = n
            entry = {"id": item["id"] if use_ids else n, "name": name, "ignore": bool(item.get("ignore", False))}
            if "background" in item:
                entry["background"] = item["background"]
            if item.get("color"):
                entry["color"] = item["color"]
            listed.append(entry)
        return cls.from_list(listed, source=source)

    @classmethod
    def from_json(cls, doc, source: str = "classes.json") -> ClassMap:
        """Either format: a list (seglib's) or an object with ``classes`` (Supervisely's)."""
        if isinstance(doc, dict):
            return cls.from_supervisely(doc, source)
        return cls.from_list(doc, source)

    @classmethod
    def load(cls, path: str | Path) -> ClassMap:
        path = Path(path)
        try:
            doc = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: cannot read class map: {e}") from None
        return cls.from_json(doc, source=str(path))

    def to_list(self) -> list[dict]:
        return [c.to_dict() for c in self.classes]

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_list(), indent=2))

    # --- queries ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.classes)

    def __iter__(self):
        return iter(self.classes)

    @property
    def ids(self) -> list[int]:
        return [c.id for c in self.classes]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def num_classes(self) -> int:
        """Size of a model's output: the largest id + 1 (ids may have gaps)."""
        return max(self.ids) + 1 if self.classes else 0

    @property
    def ignore_ids(self) -> list[int]:
        return [c.id for c in self.classes if c.ignore]

    @property
    def background_id(self) -> int | None:
        """The background class's id, or None when there is none (see the module's docstring)."""
        marked = [c.id for c in self.classes if c.background]
        if marked:
            return marked[0]
        named = [c.id for c in self.classes if c.named_background]
        if named:
            return named[0]
        return 0 if self.inferred and 0 in self.ids else None

    @property
    def background_name(self) -> str | None:
        bg = self.background_id
        return None if bg is None else self.name_of(bg)

    def by_id(self, class_id: int) -> ClassInfo:
        for c in self.classes:
            if c.id == class_id:
                return c
        raise KeyError(class_id)

    def name_of(self, class_id: int) -> str:
        if class_id == UNKNOWN_INDEX:
            return "unknown"
        try:
            return self.by_id(class_id).name
        except KeyError:
            return f"class_{class_id}"

    def lut(self) -> np.ndarray:
        """(256, 3) uint8 colour lookup table indexed by class id; unknown ids are magenta."""
        table = np.zeros((256, 3), np.uint8)
        table[:] = (255, 0, 255)
        for c in self.classes:
            table[c.id] = c.rgb
        return table

    def extended(self, ids) -> ClassMap:
        """A copy that also holds ``ids`` (for inferred maps that meet new values)."""
        missing = sorted({int(i) for i in ids} - set(self.ids) - {UNKNOWN_INDEX})
        if not missing:
            return self
        extra = [ClassInfo(i, f"class_{i}", default_color(i)) for i in missing]
        return ClassMap(sorted(self.classes + extra, key=lambda c: c.id), self.inferred)


def class_file_state(path: str | Path) -> str:
    """What a class file's contents depend on: path, size, mtime and (it is small) a hash of its
    bytes, so an edit that keeps size and mtime (a colour changed within one clock tick, a copy
    that keeps the time) still shows. ``path|missing`` when there is none."""
    path = Path(path)
    try:
        info = path.stat()
        digest = hashlib.sha1(path.read_bytes()).hexdigest()[:16] if info.st_size <= _HASHED_UP_TO else "big"
    except OSError:
        return f"{path}|missing"
    return f"{path}|{info.st_size}|{info.st_mtime_ns}|{digest}"


_HASHED_UP_TO = 1 << 20  # class files are a few KB; a bigger "class file" is not read on every rerun


def class_files_state(dataset: str | Path) -> str:
    """The state of every class file a dataset at ``dataset`` may use (a folder's ``classes.json``
    and ``meta.json``, an .npz's ``<name>.classes.json`` and ``classes.json`` beside it): cheap
    enough for the app to check on every rerun, so an edited class file is seen on reload."""
    dataset = Path(dataset)
    if dataset.is_dir():
        files = [dataset / n for n in CLASS_FILE_NAMES]
    else:
        files = [dataset.with_suffix(".classes.json"), dataset.parent / "classes.json"]
    return ";".join(class_file_state(f) for f in files)


# Class files looked for at a folder dataset's root, in this order.
CLASS_FILE_NAMES = ("classes.json", "meta.json")


def find_class_file(root: str | Path) -> Path | None:
    """The class file of a folder dataset: ``classes.json``, else a Supervisely ``meta.json``
    (only when it holds ``classes``: a ``meta.json`` of another tool is not a class file)."""
    root = Path(root)
    if (root / "classes.json").is_file():
        return root / "classes.json"
    meta = root / "meta.json"
    if meta.is_file():
        try:
            doc = json.loads(meta.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        if isinstance(doc, dict) and "classes" in doc:
            return meta
    return None
