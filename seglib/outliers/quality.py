"""Image and label statistics detectors: blank, clipped, unusual intensity/texture, odd size;
single-class masks, classes where they never are, fragmented masks.

Absolute rules (a blank image is blank in any dataset) come first; dataset-relative rules use
robust bands (median/MAD, IQR, like Encord Active's) and only run on enough images for the
bands to mean something. Thresholds are deliberately far out: a reviewer's time is the cost
of a false flag.

Brightness, contrast and texture are judged against each image's neighbourhood (its most
similar images), not against the whole dataset: a real set often mixes cameras or sequences,
and a second camera's images are normal among themselves however far they sit from the
dataset's median. A lone odd image (or a handful) has no such company and still stands out.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.classmap import UNKNOWN_INDEX
from .base import detector, flags_frame, robust_z, z_score
from .features import Features, aligned, features_for

MIN_FOR_BANDS = 20     # dataset-relative rules need this many images: a median and MAD of fewer are noise
Z_FLAG = 6.0           # robust SDs from the median: far out, since a false flag costs a reviewer's time
NEIGHBOURHOOD = 0.1    # an image is judged against its most similar tenth of the dataset: a look shared by
                       # more images than that (a second camera, a long sequence) is a population, not an outlier
MIN_NEIGHBOURS = 10    # fewer neighbours give a median and MAD too noisy to judge by
MAX_REFERENCE = 2000   # neighbours come from at most this many images (a seeded sample): cost stays flat
NEIGHBOUR_ROWS = 512   # images whose neighbours are looked up at once: (512 x 2000) distances at most
CLIPPED = 0.5          # half the pixels at the ends of the range: the picture is mostly gone, not just contrasty
LAYOUT_MIN = 50        # labeled masks needed before "where a class usually is" means anything
LAYOUT_RARE_P = 0.02   # a pixel is "out of place" if its class covers that spot in under 2% of masks
LAYOUT_FLAG = 0.08     # ... and this share of the mask is out of place: a few stray pixels are border noise
LAYOUT_CHUNK = 1024    # masks whose layout is scored at once: 4 MB of int32 slots, whatever the dataset size
PIECES_Z = 8.0         # piece counts are heavy-tailed in real masks: flag only far out

# Scores (0..1, higher = look first), by how sure each rule is that the image is unusable as it is.
BLANK_SCORE = 1.0            # a constant image holds no picture at all: the surest finding of any detector
CLIPPED_SCORE = 0.75         # mostly white: the picture is largely lost (+0.2 x the clipped share)
CRUSHED_SCORE = 0.7          # mostly black: as lost, but dark scenes exist more often than white ones (+0.2 x share)
NEARLY_BLANK_SCORE = 0.9     # one grey level on 98% of pixels: a blank frame with a little noise or text
ODD_SIZE_SCORE = 0.4         # a rare size may be legitimate (a crop, another camera): worth a look, no more
SINGLE_CLASS_SCORE = 0.7     # one class on every pixel, where nearly all masks have several: likely a lost label
MISSING_CLASS_SCORE = 0.55   # a class that 99% of masks have is absent: often a labeling slip, sometimes real
LAYOUT_SCORE, LAYOUT_SPAN = 0.5, 0.4  # classes where they never are: 0.5, up to 0.9 when 30% of the mask is

_MEASURES = {  # feature -> (words, unit format)
    "mean": ("brightness (mean {v:.0f})", "{v:.0f}"),
    "std": ("contrast (std {v:.1f})", "{v:.1f}"),
    "grad": ("texture (mean gradient {v:.1f})", "{v:.1f}"),
}


def _blank_or_clipped(f: Features, inten: np.ndarray, k: int, med_low: float, med_high: float):
    """(score, reason) for the absolute rules, or None."""
    mean, std, lo, hi = (float(v) for v in inten[k])
    if std < 0.5:
        what = f"constant value {int(lo)}" if lo == hi else f"values {int(lo)}-{int(hi)}"
        state = "saturated, white" if mean >= 250 else "blank"
        return BLANK_SCORE, f"std {std:.1f}, image is {state} ({what})"
    if f.high[k] >= CLIPPED and med_high < 0.05:
        return CLIPPED_SCORE + 0.2 * float(f.high[k]), (f"{f.high[k]:.0%} of pixels clipped to white (>= 253), "
                                                        f"image is saturated (dataset median {med_high:.0%})")
    if f.low[k] >= CLIPPED and med_low < 0.05:
        return CRUSHED_SCORE + 0.2 * float(f.low[k]), (f"{f.low[k]:.0%} of pixels crushed to black (<= 2) "
                                                       f"(dataset median {med_low:.0%})")
    if f.mode_frac[k] >= 0.98:
        return NEARLY_BLANK_SCORE, (f"{f.mode_frac[k]:.0%} of pixels have the value {int(f.mode_value[k])}, "
                                    "image is nearly blank")
    return None


def _odd_size(shape: np.ndarray) -> dict[int, str]:
    """Images whose size is rare (< 1%) where one size covers >= 95% of the dataset."""
    if len(shape) < MIN_FOR_BANDS:
        return {}
    keys = shape[:, 0].astype(np.int64) * 100_000 + shape[:, 1]
    uniq, inv, counts = np.unique(keys, return_inverse=True, return_counts=True)
    top = counts.argmax()
    if counts[top] < 0.95 * len(keys):
        return {}
    th, tw = divmod(int(uniq[top]), 100_000)
    share = counts[top] / len(keys)
    return {int(k): f"size {shape[k, 1]}x{shape[k, 0]} (WxH) while {share:.0%} of images are {tw}x{th}"
            for k in np.flatnonzero(counts[inv] < 0.01 * len(keys))}


def _robust_centre_scale(x: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Median and 1.4826 x MAD (the SD of normal data) along ``axis``."""
    med = np.median(x, axis=axis)
    return med, 1.4826 * np.median(np.abs(x - np.expand_dims(med, axis)), axis=axis)


def neighbourhood_z(values: np.ndarray, reference: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """Robust z of each image's measures against its nearest neighbours.

    values: (N, M) float64 measures; reference: (N,) bool, the images that may serve as
    neighbours (not blank or saturated ones). Neighbours are the k images closest in the
    measures (each scaled by its dataset-wide robust SD), k = NEIGHBOURHOOD x the reference
    size; an image is never its own neighbour. z = (value - the neighbours' median) / the wider
    of the neighbours' and the dataset's robust SD. Returns z (N, M), the neighbours' medians
    (N, M) and k."""
    from sklearn.neighbors import NearestNeighbors

    _, global_scale = _robust_centre_scale(values[reference])
    global_scale = np.maximum(global_scale, 1e-6)
    space = values / global_scale
    ref = np.flatnonzero(reference)
    if len(ref) > MAX_REFERENCE:
        ref = np.sort(np.random.default_rng(seed).choice(ref, MAX_REFERENCE, replace=False))
    k = int(min(max(MIN_NEIGHBOURS, round(NEIGHBOURHOOD * len(ref))), len(ref) - 1))
    nn = NearestNeighbors(n_neighbors=k + 1).fit(space[ref])
    med, scale = np.zeros_like(values), np.zeros_like(values)
    for s in range(0, len(values), NEIGHBOUR_ROWS):  # rows in chunks: memory stays flat in N
        rows = np.arange(s, min(s + NEIGHBOUR_ROWS, len(values)))
        idx = ref[nn.kneighbors(space[rows], return_distance=False)]  # (n, k + 1) rows of the dataset
        is_self = idx == rows[:, None]
        drop = np.where(is_self.any(1), is_self.argmax(1), k)  # itself if it came back, else the farthest
        keep = np.ones(idx.shape, bool)
        keep[np.arange(len(idx)), drop] = False
        neighbours = values[idx[keep].reshape(len(idx), k)]  # (n, k, M)
        med[rows], scale[rows] = _robust_centre_scale(neighbours, axis=1)
    # Neighbours are picked for being alike, so their spread understates the population's: measure in
    # the dataset's robust SD unless the neighbourhood is wider. Only the centre is local.
    scale = np.maximum(np.maximum(scale, global_scale), 0.02 * np.abs(med))
    return (values - med) / scale, med, k


@detector("image_stats")
def image_stats(ds, stats) -> pd.DataFrame:
    """Blank, saturated or crushed images; brightness, contrast or texture far from the images
    most like them (see :func:`neighbourhood_z`)."""
    f = features_for(ds, stats)
    n = len(f)
    inten = aligned(stats, f, "intensity").astype(np.float64)
    med_low, med_high = (float(np.median(f.low)), float(np.median(f.high))) if n else (0.0, 0.0)
    names = list(_MEASURES)
    values = np.column_stack([inten[:, 0], inten[:, 1], f.grad.astype(np.float64)]) if n else np.zeros((0, 3))
    absolute = {k: found for k in range(n) if (found := _blank_or_clipped(f, inten, k, med_low, med_high))}
    reference = np.ones(n, bool)
    reference[list(absolute)] = False
    z = None
    if reference.sum() >= MIN_FOR_BANDS:
        z, local_med, k_near = neighbourhood_z(values, reference)
    odd = _odd_size(aligned(stats, f, "shape"))
    rows = []
    for k in range(n):
        found = absolute.get(k)
        if found is None and z is not None:
            m = int(np.abs(z[k]).argmax())
            zk = float(z[k, m])
            if abs(zk) >= Z_FLAG:
                words, fmt = _MEASURES[names[m]]
                found = z_score(zk), (f"{words.format(v=values[k, m])} is {abs(zk):.1f} robust SDs "
                                      f"{'above' if zk > 0 else 'below'} its {k_near} most similar images "
                                      f"(median {fmt.format(v=local_med[k, m])})")
        if found is None and k in odd:
            found = ODD_SIZE_SCORE, odd[k]
        if found is not None:
            rows.append({"image_id": f.ids[k], "detector": "image_stats", "score": found[0], "reason": found[1],
                         "group": None})
    return flags_frame(rows)


# --- labels -----------------------------------------------------------------------------
def _layout_rare(f: Features, lab: np.ndarray, names: dict[int, str]) -> dict[int, tuple[float, str]]:
    """Share of each mask's pixels whose class (almost) never covers that spot in other masks.

    The prior P(class | position) is learned on the 32x32 nearest-neighbour masks of all
    labeled images; a dataset without layout (aerial, microscopy) has a flat prior and flags
    nothing. Returns {row: (share, words)}. Masks are read LAYOUT_CHUNK at a time (twice: the
    prior, then each mask's share), so memory is the prior and one chunk's int32 slots, not
    N full-width copies of the (N, 32, 32) masks."""
    rows = np.flatnonzero(lab)
    if len(rows) < LAYOUT_MIN:
        return {}
    small = f.mask_small
    chunks = [rows[s : s + LAYOUT_CHUNK] for s in range(0, len(rows), LAYOUT_CHUNK)]
    seen = np.zeros(256, np.int64)
    for part in chunks:
        seen += np.bincount(small[part].ravel(), minlength=256)
    seen[UNKNOWN_INDEX] = 0
    classes = np.flatnonzero(seen)
    lut = np.full(256, -1, np.int32)
    lut[classes] = np.arange(len(classes), dtype=np.int32)
    cells = small.shape[1] * small.shape[2]
    position = np.arange(cells, dtype=np.int32)

    def slots(part: np.ndarray) -> np.ndarray:
        """(n, cells) int32 (class + 1) * cells + position; class 0 = unknown."""
        return (lut[small[part].reshape(len(part), cells)] + 1) * cells + position

    counts = np.zeros((len(classes) + 1) * cells, np.int64)
    for part in chunks:
        counts += np.bincount(slots(part).ravel(), minlength=len(counts))
    prior = counts / len(rows)  # P(class | position): (classes + 1) x cells, small
    prior[:cells] = 1.0  # unknown pixels are never "out of place"
    rare_slot = prior < LAYOUT_RARE_P
    share = np.concatenate([rare_slot[slots(part)].mean(1) for part in chunks])
    q1, q3 = np.percentile(share, [25, 75])
    cut = max(LAYOUT_FLAG, q3 + 6 * (q3 - q1))
    out = {}
    yy = np.repeat(np.arange(small.shape[1]), small.shape[2])
    for k in np.flatnonzero(share >= cut):
        m = small[rows[k]].reshape(cells)
        rare = rare_slot[slots(rows[k : k + 1])[0]]
        cls = classes[np.bincount(lut[m][rare], minlength=len(classes)).argmax()]
        ys = yy[rare & (m == cls)].mean() / small.shape[1]
        where = "top" if ys < 1 / 3 else "bottom" if ys > 2 / 3 else "middle"
        out[int(rows[k])] = (float(share[k]), f"{share[k]:.0%} of pixels labeled where their class almost never is in "
                                              f"this dataset (mostly {names.get(int(cls), cls)} in the {where} part)")
    return out


def _label_findings(f: Features, stats) -> dict[int, list[tuple[float, str]]]:
    lab = f.labeled
    n_lab = int(lab.sum())
    names = dict(zip(stats.class_map.ids, stats.class_map.names, strict=True))
    present = aligned(stats, f, "counts") > 0  # (N, 256) bool: no copy of the int64 counts
    present[:, UNKNOWN_INDEX] = False
    found: dict[int, list[tuple[float, str]]] = {}
    add = lambda k, s, r: found.setdefault(int(k), []).append((s, r))  # noqa: E731
    if n_lab < MIN_FOR_BANDS:
        return found
    single = lab & (present.sum(1) == 1)
    if single.sum() < 0.02 * n_lab:
        several = 1 - single.sum() / n_lab
        for k in np.flatnonzero(single):
            c = int(present[k].argmax())
            add(k, SINGLE_CLASS_SCORE,
                f"mask is 100% {names.get(c, c)}, while {several:.1%} of masks hold several classes")
    share = present[lab].mean(0)
    for c in np.flatnonzero(share >= 0.99) if n_lab >= 100 else []:
        for k in np.flatnonzero(lab & ~present[:, c] & ~single):
            add(k, MISSING_CLASS_SCORE, f"no {names.get(int(c), c)}, which {share[c]:.1%} of masks have")
    for k, (s, words) in _layout_rare(f, lab, names).items():
        add(k, LAYOUT_SCORE + LAYOUT_SPAN * min(1.0, s / 0.3), words)
    for k, score, words in _fragmented(f, lab, aligned(stats, f, "shape"), names):
        add(k, score, words)
    return found


def _fragmented(f: Features, lab: np.ndarray, shape: np.ndarray, names: dict) -> list[tuple[int, float, str]]:
    """Masks in far more pieces than their size makes usual. A tile of 4 MP holds ~20x the pieces of
    one of 0.2 MP, so pieces are compared per pixel (a density), and the count expected for the
    image's own area is what the reason quotes. On a dataset of one size this is the plain count."""
    pieces = f.fragments.sum(1).astype(np.float64)
    area = np.maximum(shape[:, 0].astype(np.float64) * shape[:, 1], 1.0)
    density = pieces / area
    z = np.zeros(len(f))
    z[lab] = robust_z(density[lab])
    med = float(np.median(density[lab]))
    expected = med * area
    same_size = np.ptp(area[lab]) == 0
    out = []
    for k in np.flatnonzero(lab & (z >= PIECES_Z) & (pieces >= 2 * expected + 4)):
        c = int(f.fragments[k].argmax())
        usual = (f"dataset median {expected[k]:.0f}" if same_size else
                 f"{expected[k]:,.0f} expected at its size ({area[k] / 1e6:.1f} MP; dataset median "
                 f"{med * 1e6:,.0f} per MP)")
        out.append((int(k), z_score(z[k]), f"mask in {int(pieces[k])} pieces ({names.get(c, c)} in "
                                           f"{f.fragments[k, c]}); {usual}, {z[k]:.1f} robust SDs above"))
    return out


@detector("label_stats")
def label_stats(ds, stats) -> pd.DataFrame:
    """Masks unlike the rest of the dataset: one class only, a ubiquitous class missing, classes
    where they never are, or far more fragments than usual. Unlabeled images are skipped."""
    f = features_for(ds, stats)
    rows = []
    for k, items in _label_findings(f, stats).items():
        items.sort(key=lambda t: -t[0])
        rows.append({"image_id": f.ids[k], "detector": "label_stats", "score": items[0][0],
                     "reason": "; ".join(r for _, r in items), "group": None})
    return flags_frame(rows)
