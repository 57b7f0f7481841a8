"""The encoding of a dataset's masks, recognised from a sample of them, and the class map made up
when the dataset has no class file.

How masks are read (from up to 16 masks spread over the dataset):
  - any true-colour mask: the dataset is colour-coded (``"rgb"``) and *every* mask is read by
    its colours: a palette PNG by the colour of each index (a folder may mix palette and RGB
    masks), a grey one by its grey (v, v, v);
  - only palette PNGs: read by index (``"palette"``, e.g. VOC: the palette just colours the
    class ids), unless the palette is not one fixed colouring of ids: two masks give one index
    different colours, or the class file's colours are the palette's colours under other ids;
    then by colour (``"rgb"``);
  - single-channel masks: class indices (``"index"``), or ``"binary"`` for {0, 255}.
The encoding and the inferred class map are cached under the dataset's fingerprint, so a
second open reads no pixel.

A sample is a list of ``(raw mask, mode, palette, present values)`` as ``FolderDataset`` reads them.
"""
from __future__ import annotations

import numpy as np

from .classmap import UNKNOWN_INDEX, ClassInfo, ClassMap
from .io import count_keys, key_to_hex, pack_rgb, palette_colours


def present_values(raw: np.ndarray) -> np.ndarray:
    """The distinct values of a single-channel mask (bincount for uint8: no sort)."""
    if raw.dtype == np.uint8:
        return np.flatnonzero(np.bincount(raw.ravel(), minlength=256))
    return np.unique(raw)


def recognise_encoding(sample, given: ClassMap | None) -> str:
    modes = {m for _, m, _, _ in sample}
    if "RGB" in modes:
        return "rgb"
    if "P" in modes:
        return "rgb" if palettes_read_by_colour(sample, given) else "palette"
    values: set[int] = set()
    for _, _, _, present in sample:
        values.update(present.tolist())
    is_binary = values <= {0, 255} and 255 in values
    if is_binary and (given is None or max(given.ids) <= 1):
        return "binary"
    return "index"


def palettes_read_by_colour(sample, given: ClassMap | None) -> bool:
    """Whether palette PNGs are colour pictures rather than class ids: two masks give one used
    index different colours, or every used colour is a class file colour but under another id."""
    colour_of: dict[int, tuple] = {}
    for _, mode, pal, present in sample:
        if mode != "P":
            continue
        colours = palette_colours(pal)
        for v in present.tolist():
            c = tuple(int(x) for x in colours[v])
            if colour_of.setdefault(v, c) != c:
                return True
    if given is not None and colour_of:
        id_of = {c.rgb: c.id for c in given}
        ids = {v: id_of.get(c) for v, c in colour_of.items()}
        if all(i is not None for i in ids.values()) and any(i != v for v, i in ids.items()):
            return True
    return False


def colour_counts(sample) -> dict[int, int]:
    """{colour key 0xRRGGBB: pixels} over masks ``(raw, mode, palette, ...)`` read by colour
    (RGB, palette and grey ones), from packed keys: no ``np.unique(axis=0)`` over pixel rows."""
    counts: dict[int, int] = {}
    for raw, mode, pal, *_ in sample:
        if mode == "RGB":
            keys, n = count_keys(pack_rgb(raw))
        elif raw.dtype == np.uint8:
            colours = palette_colours(pal) if mode == "P" else np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, 1)
            hits = np.bincount(raw.ravel(), minlength=256)
            used = np.flatnonzero(hits)
            keys, n = pack_rgb(colours[used]), hits[used]
        else:
            continue  # 16-bit values are not colours
        for k, c in zip(keys.tolist(), n.tolist(), strict=True):
            counts[k] = counts.get(k, 0) + int(c)
    return counts


def infer_class_map(sample, encoding: str) -> ClassMap:
    if encoding == "binary":
        return ClassMap.default([0, 1], {0: "background", 1: "foreground"})
    if encoding == "rgb":
        counts = colour_counts(sample)
        # Black first (usually background), then by frequency: stable, readable ids.
        order = sorted(counts, key=lambda k: (k != 0, -counts[k], k))
        return ClassMap([ClassInfo(i, f"class_{i}", key_to_hex(k)) for i, k in enumerate(order[:UNKNOWN_INDEX])],
                        True)
    ids: set[int] = set()
    palette = None
    for _, _, pal, present in sample:
        ids.update(int(v) for v in present if 0 <= v < UNKNOWN_INDEX)
        palette = palette or pal
    cm = ClassMap.default(ids or [0])
    if palette:
        colours = palette_colours(palette)
        cm = ClassMap([ClassInfo(c.id, c.name, key_to_hex(pack_rgb(colours[c.id]))) for c in cm], True)
    return cm
