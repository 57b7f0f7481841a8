"""A class file written from the masks' own colours, for a colour-coded dataset whose class file
names colours that the masks do not use (public sets ship such files: every pixel then counts
as unknown).

>>> fix = class_file_from_mask_colours(ds, stats)                 # names matched by order
>>> fix = class_file_from_mask_colours(ds, stats, {"#8429F6": "Land"})
>>> fix.class_map.names, fix.text()                               # the new classes, the file's text
>>> backup = save_class_file(fix)                                 # classes.json replaced, original kept

One class per colour found in the masks. A colour that the class map has keeps its class. The
other colours take a name: the one given for it, else the class map's unused names in its order,
matched to the colours most pixels first ("by order"), else a new ``class_<id>``. A name of the
class map keeps its id (and its ignore and background flags), so masks corrected under those ids
keep their meaning; a new name takes an id after the map's. The file keeps its format:
Supervisely's ``{"classes": [...]}`` (its entries' other keys, and a ``meta.json``'s other keys,
kept) or seglib's list. Without a class file (or with one that did not load) the dataset's
made-up class map is written down as seglib's list: a starting point to rename.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic import atomic_write_bytes
from .classmap import UNKNOWN_INDEX, ClassInfo, ClassMap, hex_to_rgb, rgb_to_hex

if TYPE_CHECKING:
    from ..stats import DatasetStats
    from .dataset import SegDataset


@dataclass(frozen=True)
class MaskColour:
    """A colour the masks use: its pixels and masks, and the class map's class of it (None: unknown)."""

    color: str
    pixels: int
    masks: int
    class_id: int | None


@dataclass(frozen=True)
class ClassFileFix:
    """The class file to write: where, its classes and its document (in the file's own format)."""

    path: Path
    class_map: ClassMap
    document: list | dict
    colours: list[MaskColour]

    def text(self) -> str:
        return json.dumps(self.document, indent=2) + "\n"


def mask_colours(stats: DatasetStats) -> list[MaskColour]:
    """Every colour the labeled masks use, most pixels first: the class map's colours that have
    pixels, and the colours it lacks (``stats.unknown_values``)."""
    lab = stats.counts[stats.labeled]
    found = [MaskColour(c.color, int(lab[:, c.id].sum()), int((lab[:, c.id] > 0).sum()), c.id)
             for c in stats.class_map if lab[:, c.id].any()]
    found += [MaskColour(rgb_to_hex(hex_to_rgb(k)), int(px), int(m), None) for k, px, m in stats.unknown_values]
    return sorted(found, key=lambda c: (-c.pixels, c.color))


def fix_problem(ds: SegDataset, stats: DatasetStats) -> str | None:
    """Why no class file can be written from ``ds``'s masks (one line naming it), or None."""
    if ds.encoding != "rgb":
        return f"{ds.source}: its masks hold class ids ({ds.encoding}), not colours: there is no colour to name"
    if any(not isinstance(k, str) for k, _, _ in stats.unknown_values):
        return f"{ds.source}: some masks hold values, not colours"
    n = len({c.color for c in mask_colours(stats)}) + stats.n_unknown_values - len(stats.unknown_values)
    if n > UNKNOWN_INDEX:
        return (f"{ds.source}: the masks use {n:,} colours, more than the {UNKNOWN_INDEX} classes a class file may "
                "hold (JPEG-compressed or smoothed masks?)")
    if not n:
        return f"{ds.source}: no labeled mask has a pixel"
    return None


def class_file_path(ds: SegDataset) -> Path:
    """The class file ``ds`` reads (or would read: ``classes.json`` at its root)."""
    path = getattr(ds, "class_map_path", None) or ds.class_map_file
    return Path(path) if path else Path(ds.source) / "classes.json"


def names_by_order(colours: list[MaskColour], class_map: ClassMap,
                   chosen: dict[str, str | None] | None = None) -> dict[str, str | None]:
    """{colour: name, or None for a new class} for every colour: ``chosen``'s first; a colour of
    the class map keeps its class's name; the others take the map's unused names in its order,
    most pixels first; colours left over are new classes."""
    chosen = {rgb_to_hex(hex_to_rgb(k)): v for k, v in (chosen or {}).items()}
    names: dict[str, str | None] = {}
    for c in colours:
        if c.color in chosen:
            names[c.color] = chosen[c.color]
        elif c.class_id is not None:
            names[c.color] = class_map.name_of(c.class_id)
    used = set(names.values())
    spare = [name for name in class_map.names if name not in used]
    for c in colours:
        if c.color not in names:
            names[c.color] = spare.pop(0) if spare else None
    return names


def parse_names(text: str) -> dict[str, str]:
    """``"Building=#3C1098,Land=#8429F6"`` -> {"#3C1098": "Building", "#8429F6": "Land"}.
    Raises ValueError naming the faulty item."""
    out: dict[str, str] = {}
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        name, sep, colour = item.rpartition("=")
        if not sep or not name.strip():
            raise ValueError(f"{item!r}: expected NAME=#RRGGBB")
        try:
            key = rgb_to_hex(hex_to_rgb(colour))
        except ValueError as e:
            raise ValueError(f"{item!r}: {e}") from None
        if key in out:
            raise ValueError(f"{key} is named twice ({out[key]!r} and {name.strip()!r})")
        out[key] = name.strip()
    return out


def class_file_from_mask_colours(ds: SegDataset, stats: DatasetStats,
                                 names: dict[str, str | None] | None = None) -> ClassFileFix:
    """The class file for ``ds`` written from its masks' colours (see the module's docstring).

    ``names``: {colour: class name, or None for a new class} for the colours to name; the others
    by order. Raises ValueError (one line naming the dataset or the colour) when the masks are
    not colours, a named colour is not one of the masks', or two colours get one name."""
    problem = fix_problem(ds, stats)
    if problem:
        raise ValueError(problem)
    colours = mask_colours(stats)
    known = {c.color for c in colours}
    for colour in names or {}:
        if rgb_to_hex(hex_to_rgb(colour)) not in known:
            raise ValueError(f"{colour}: not a colour of the masks of {ds.source} "
                             f"(they use {', '.join(sorted(known))})")
    base = stats.class_map  # the class file's, or the made-up one
    by_colour = names_by_order(colours, base, names)
    seen: dict[str, str] = {}
    for colour, name in by_colour.items():
        if name is None:
            continue
        if not name.strip():
            raise ValueError(f"{colour}: empty class name")
        if name in seen:
            raise ValueError(f"{seen[name]} and {colour} are both named {name!r}: one class has one colour")
        seen[name] = colour
    path = class_file_path(ds)
    loaded = not base.inferred and ds.class_map_file is not None
    original = _read_document(path) if loaded else None
    document = _document(colours, by_colour, base, original)
    class_map = ClassMap.from_json(document, source=str(path))  # what the file will say, ids as it gives them
    return ClassFileFix(path, class_map, document, colours)


def _read_document(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _classes(colours: list[MaskColour], by_colour: dict[str, str | None], base: ClassMap) -> list[ClassInfo]:
    """One class per colour, ordered by id: a name of ``base`` keeps its id and flags, a new one
    takes the next id after the map's (a new class without a name: ``class_<id>``)."""
    old = {c.name: c for c in base}
    next_id = base.num_classes
    out = []
    for c in colours:
        name = by_colour[c.color]
        if name in old:
            k = old[name]
            out.append(ClassInfo(k.id, name, c.color, k.ignore, k.background))
        else:
            out.append(ClassInfo(next_id, name or f"class_{next_id}", c.color))
            next_id += 1
    if next_id > UNKNOWN_INDEX:
        raise ValueError(f"{len(out)} classes need ids up to {next_id - 1}; at most {UNKNOWN_INDEX - 1} are possible")
    return sorted(out, key=lambda k: k.id)


def _document(colours, by_colour, base: ClassMap, original) -> list | dict:
    classes = _classes(colours, by_colour, base)
    if not isinstance(original, dict):
        return ClassMap(classes, inferred=False).to_list()
    # Supervisely's format: its entries (their other keys kept) in id order. Its ids are the
    # entries' places unless every entry gave a class index (ClassMap.from_supervisely): then
    # they are written out.
    entries = {str(e.get("title", e.get("name"))): e for e in original.get("classes", []) if isinstance(e, dict)}
    ids = [e.get("id") for e in entries.values()]
    explicit = all(isinstance(i, int) and not isinstance(i, bool) for i in ids) and sorted(ids) == base.ids
    listed = []
    for k in classes:
        entry = dict(entries.get(k.name, {"title": k.name, "shape": "bitmap"}))
        entry["color"] = k.color
        if explicit:
            entry["id"] = k.id
        if k.name not in entries:
            entry["title"] = k.name
        listed.append(entry)
    return {**original, "classes": listed}


def backup_path(path: Path) -> Path:
    """Where the original class file is kept: ``classes.orig.json``, else ``classes.orig-2.json`` ...
    (an earlier backup is never overwritten)."""
    k = 1
    while True:
        candidate = path.with_name(f"{path.stem}.orig{'' if k == 1 else f'-{k}'}{path.suffix}")
        if not candidate.exists():
            return candidate
        k += 1


def save_class_file(fix: ClassFileFix) -> Path | None:
    """Write ``fix`` over its class file, keeping the original; returns the backup (None when
    there was no file). The original is copied first, with its times, under a name no file has
    (:func:`backup_path`); then the new file replaces it atomically. At every moment the class
    file is a whole one, old or new: a page or a training that opens the dataset meanwhile never
    sees it without one, and a failed write leaves the original in place. Raises OSError."""
    path = fix.path
    backup = None
    if path.exists():
        backup = backup_path(path)
        with open(path, "rb") as src, open(backup, "xb") as dst:  # "x": never over an existing file
            shutil.copyfileobj(src, dst)
        shutil.copystat(path, backup)
    atomic_write_bytes(path, fix.text().encode())
    return backup
