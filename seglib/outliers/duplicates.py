"""Duplicate detectors: exact copies, near copies, and one mask shared by different pictures.

Near copies are found in two vectorised steps: candidate pairs whose perceptual hashes
(imagehash.phash of the 32x32 grey thumbnail) differ in few bits, compared block-wise with
XOR + popcount on packed uint64 hashes; then each candidate is confirmed by the correlation of
the brightness/contrast-normalised thumbnails. Similar terrain shares a rough layout (small
hash distance) but not its pixels (correlation well below 0.99); a re-exposed copy keeps both.
The correlation threshold is a parameter (the Review page has a slider); a group of consecutive
frames of a video is reported once as a sequence (see :mod:`.sequences`), not pair by pair.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .base import detector, flags_frame, groups_from_pairs, hash_pairs, numbered_groups
from .features import THUMB, Features, features_for
from .sequences import is_sequence, sequence_label

# Thresholds.
HASH_BITS = 12      # phash candidates: at most this many of 64 bits differ (re-exposed copies move a few bits)
NEAR_CORR = 0.99    # confirmed near copy: alike terrain correlates well below 0.99, a re-exposed copy above
MIN_NEAR_CORR = 0.9  # the lowest threshold a user may choose: the hash candidates miss pairs much below it
PAIR_BLOCK = 4096   # candidate pairs correlated at once: 32 MB of gathered thumbnails at most
MIN_THUMB_STD = 2.0  # thumbnails flatter than this carry no picture to compare (blank images match anything)

# Scores (0..1, higher = look first); they order the review queue across detectors.
EXACT_SCORE = 0.9   # a byte-identical copy is certain, but one of the copies is fine: below a blank image's 1.0
NEAR_SCORE, NEAR_SPAN = 0.7, 0.2  # a near copy is less certain than an exact one: 0.7 at NEAR_CORR, 0.9 identical
SHARED_SCORE, SHARED_SPAN = 0.6, 0.37  # one mask on several pictures: 0.6 for two, up to 0.97 ...
SHARED_FULL = 50    # ... for this many pictures: a mask copied onto many images is a pipeline bug, not chance
SEQUENCE_SCORE = 0.3  # consecutive frames alike are how video is: worth a look only if copies must not straddle splits


def _normalised_thumbs(f: Features, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(n, 1024) float32 zero-mean unit-norm thumbnails of ``rows`` (default all) and (n,) bool
    'has a picture'."""
    thumbs = f.thumb if rows is None else f.thumb[rows]
    t = thumbs.reshape(len(thumbs), THUMB * THUMB).astype(np.float32)  # not -1: zero images have no -1
    t -= t.mean(1, keepdims=True)
    std = np.sqrt((t * t).mean(1))
    t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-6)
    return t, std >= MIN_THUMB_STD


def near_candidates(f: Features) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every pair a near copy could be, with its correlation: (a, b, correlation, hash bits)
    for hash candidates that both carry a picture and are not byte-identical. Computed once
    per Features; thresholds are applied to it (:func:`near_pairs`). Only the thumbnails of
    images in some candidate pair are normalised (4 KB each): memory follows the pairs, not N."""
    def candidates():
        a, b, bits = hash_pairs(f.phash, HASH_BITS)
        rows, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
        ia, ib = inv[: len(a)], inv[len(a) :]
        t, informative = _normalised_thumbs(f, rows)
        r = np.zeros(len(a), np.float32)
        for s in range(0, len(a), PAIR_BLOCK):  # pairs in blocks: two (block, 1024) float32 gathers at a time
            r[s : s + PAIR_BLOCK] = np.einsum("ij,ij->i", t[ia[s : s + PAIR_BLOCK]], t[ib[s : s + PAIR_BLOCK]])
        ok = informative[ia] & informative[ib] & (f.img_hash[a] != f.img_hash[b]) & (r >= MIN_NEAR_CORR)
        return a[ok], b[ok], r[ok], bits[ok]

    return f.derived("near_candidates", candidates)


def near_pairs(f: Features, min_corr: float = NEAR_CORR) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Confirmed near-copy pairs that are not byte-identical: (a, b, correlation, hash bits)."""
    a, b, r, bits = near_candidates(f)
    ok = r >= min_corr
    return a[ok], b[ok], r[ok], bits[ok]


def picture_groups(f: Features) -> np.ndarray:
    """(N,) component label: images in one component are exact or near copies of each other."""
    def components():
        _, first, inv = np.unique(f.img_hash, return_index=True, return_inverse=True)
        a, b, _, _ = near_pairs(f)
        # exact copies link each image to the first holder of its bytes; near copies link pairs
        return groups_from_pairs(len(f), np.concatenate([a, np.arange(len(f))]), np.concatenate([b, first[inv]]))

    return f.derived("pictures", components)


def _others(ids: list[str], members: np.ndarray, k: int, limit: int = 3) -> str:
    rest = [ids[m] for m in members if m != k]
    shown = ", ".join(rest[:limit])
    return shown + (f" and {len(rest) - limit} more" if len(rest) > limit else "")


@detector("exact_duplicate")
def exact_duplicate(ds, stats) -> pd.DataFrame:
    """Images whose pixel arrays are byte-identical (same shape, same values)."""
    f = features_for(ds, stats)
    if len(f) < 2:
        return flags_frame()
    _, inv, counts = np.unique(f.img_hash, return_inverse=True, return_counts=True)
    dup = np.flatnonzero(counts[inv] >= 2)
    names = numbered_groups(inv, dup, "d")
    rows = []
    for k in dup:
        members = dup[inv[dup] == inv[k]]
        rows.append({"image_id": f.ids[k], "detector": "exact_duplicate", "score": EXACT_SCORE,
                     "group": names[int(inv[k])],
                     "reason": f"identical pixels to {_others(f.ids, members, k)} "
                               f"({len(members)} copies, group {names[int(inv[k])]})"})
    return flags_frame(rows)


def near_duplicate_flags(f: Features, min_corr: float = NEAR_CORR) -> pd.DataFrame:
    """The near_duplicate detector's rows at a chosen correlation threshold (see the module)."""
    a, b, r, bits = near_pairs(f, min_corr)
    if not len(a):
        return flags_frame()
    labels = groups_from_pairs(len(f), a, b)
    members_all = np.unique(np.concatenate([a, b]))
    by_group = {int(g): members_all[labels[members_all] == g] for g in np.unique(labels[members_all])}
    sequences = {g for g, m in by_group.items() if is_sequence(f.ids, m)}
    copies = members_all[~np.isin(labels[members_all], list(sequences))]
    names = numbered_groups(labels, copies, "n") if len(copies) else {}
    rows = _sequence_rows(f, by_group, sequences, a, b, r, labels)
    # Each copy's closest partner names the pair a reviewer should open first.
    best: dict[int, tuple[float, int, int]] = {}
    both_ways = (np.concatenate([a, b]), np.concatenate([b, a]), np.tile(r, 2), np.tile(bits, 2))
    for i, j, rr, bb in zip(*both_ways, strict=True):
        if int(labels[i]) not in sequences and (int(i) not in best or rr > best[int(i)][0]):
            best[int(i)] = (float(rr), int(j), int(bb))
    for i, (rr, j, bb) in best.items():
        size = len(by_group[int(labels[i])])
        g = names[int(labels[i])]
        extra = f", {size} images in group {g}" if size > 2 else f", group {g}"
        rows.append({"image_id": f.ids[i], "detector": "near_duplicate", "group": g,
                     "score": NEAR_SCORE + NEAR_SPAN * max(0.0, min(1.0, (rr - min_corr) / (1 - min_corr))),
                     "reason": f"near copy of {f.ids[j]}: same picture after brightness/contrast change "
                               f"(pixel correlation {rr:.3f}, hash {bb}/64 bits apart{extra})"})
    return flags_frame(rows)


def _sequence_rows(f: Features, by_group: dict, sequences: set, a, b, r, labels) -> list[dict]:
    """One reason per sequence, on each of its frames; groups s1, s2, ... in dataset order."""
    rows = []
    for k, g in enumerate(sorted(sequences, key=lambda g: by_group[g].min())):
        members = by_group[g]
        lowest = float(r[labels[a] == g].min())
        reason = (f"frames {sequence_label(f.ids, members)} are a sequence: {len(members)} consecutive images "
                  f"that look alike (pixel correlation >= {lowest:.3f}), frames of a video rather than copies "
                  f"(group s{k + 1})")
        rows += [{"image_id": f.ids[m], "detector": "near_duplicate", "group": f"s{k + 1}", "score": SEQUENCE_SCORE,
                  "reason": reason} for m in members]
    return rows


def near_duplicate_summary(flags: pd.DataFrame) -> dict[str, int]:
    """Counts for a near_duplicate table: images flagged as copies, copy groups, sequences and
    the images in them (the Review page's live count)."""
    seq = flags["group"].fillna("").str.startswith("s")
    return {"copies": int((~seq).sum()), "copy_groups": int(flags.loc[~seq, "group"].nunique()),
            "sequences": int(flags.loc[seq, "group"].nunique()), "in_sequences": int(seq.sum())}


@detector("near_duplicate")
def near_duplicate(ds, stats, min_corr: float = NEAR_CORR) -> pd.DataFrame:
    """Copies that differ by brightness, contrast, noise or re-encoding, not exact copies;
    consecutive frames of a video are named once as a sequence. ``min_corr``: the pixel
    correlation a pair needs (MIN_NEAR_CORR..1)."""
    if not MIN_NEAR_CORR <= min_corr <= 1:
        raise ValueError(f"near-duplicate threshold {min_corr} is outside {MIN_NEAR_CORR}..1")
    return near_duplicate_flags(features_for(ds, stats), min_corr)


@detector("shared_mask")
def shared_mask(ds, stats) -> pd.DataFrame:
    """One identical mask carried by different pictures: a label copied onto the wrong images.

    Masks of a single class (e.g. all background) are left out: they are often legitimately
    identical. Copies of one picture sharing its mask are the duplicate detectors' business."""
    f = features_for(ds, stats)
    cand = np.flatnonzero(f.labeled & (f.n_values >= 2))
    if len(cand) < 2:
        return flags_frame()
    _, inv, counts = np.unique(f.mask_hash[cand], return_inverse=True, return_counts=True)
    shared = cand[counts[inv] >= 2]
    if not len(shared):
        return flags_frame()
    pictures = picture_groups(f)
    mask_label = np.full(len(f), -1)
    mask_label[cand] = inv
    n_pics = {int(lab): len(np.unique(pictures[shared[mask_label[shared] == lab]]))
              for lab in np.unique(mask_label[shared])}
    keep = np.array([n_pics[int(lab)] >= 2 for lab in mask_label[shared]], bool)
    shared = shared[keep]  # not only copies of one picture
    names = numbered_groups(mask_label, shared, "m")
    rows = []
    for k in shared:
        lab = int(mask_label[k])
        size, pics, g = int((mask_label[shared] == lab).sum()), n_pics[lab], names[lab]
        what = "unrelated images" if pics == size else f"images ({pics} different pictures)"
        rows.append({"image_id": f.ids[k], "detector": "shared_mask", "group": g,
                     "score": SHARED_SCORE + SHARED_SPAN * min(1.0, np.log(pics) / np.log(SHARED_FULL)),
                     "reason": f"identical mask shared by {size} {what} (group {g})"})
    return flags_frame(rows)
