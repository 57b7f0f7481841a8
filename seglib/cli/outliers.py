"""Outlier command: ``python -m seglib outliers DATASET [--json] [--detectors a,b] [--near-threshold C]``."""
from __future__ import annotations

import sys

from .common import CliError, add_command, add_original_masks, open_or_fail, print_json, progress_bar


def _args(p):
    p.add_argument("dataset", help="a folder of images and masks, or an .npz file")
    p.add_argument("--json", action="store_true", help="print {\"flags\": [...]} as JSON")
    p.add_argument("--detectors", default=None,
                   help="comma-separated detector names (default: all of exact_duplicate, near_duplicate, "
                        "shared_mask, overlap, image_stats, label_stats)")
    p.add_argument("--near-threshold", type=float, default=None, metavar="CORR",
                   help="pixel correlation a near-duplicate pair needs, 0.9..1 (default 0.99); lower finds more")
    p.add_argument("--limit", type=int, default=50, help="rows in the table (not --json); 0 = all (default 50)")
    p.add_argument("--no-cache", action="store_true", help="recompute even if cached")
    add_original_masks(p)


def _table(flags, limit: int) -> None:
    shown = flags if limit <= 0 else flags.head(limit)
    print(f"{'score':>5}  {'image':<14} {'detector':<16} {'group':<6} reason")
    for r in shown.itertuples(index=False):
        print(f"{r.score:>5.2f}  {r.image_id[:14]:<14} {r.detector:<16} {(r.group or '-'):<6} {r.reason}")
    if len(shown) < len(flags):
        print(f"... and {len(flags) - len(shown)} more (--limit 0 or --json for all)")


def cmd_outliers(args) -> int:
    from ..outliers import DETECTORS, detect
    from ..outliers.duplicates import MIN_NEAR_CORR
    from ..stats import compute_stats
    names = None
    if args.detectors:
        names = [d.strip() for d in args.detectors.split(",") if d.strip()]
        unknown = [d for d in names if d not in DETECTORS]
        if unknown or not names:
            raise CliError(f"unknown detector {', '.join(unknown) or repr(args.detectors)}; "
                           f"known: {', '.join(DETECTORS)}")
    options = {}
    if args.near_threshold is not None:
        if not MIN_NEAR_CORR <= args.near_threshold <= 1:
            raise CliError(f"--near-threshold {args.near_threshold} is outside {MIN_NEAR_CORR}..1")
        options["near_duplicate"] = {"min_corr": args.near_threshold}
    ds = open_or_fail(args.dataset, args.original_masks)
    stats = compute_stats(ds, use_cache=not args.no_cache, progress=progress_bar("stats"))
    if not stats.ids:  # every image unreadable: "nothing flagged" would read as "all fine"
        raise CliError(ds.empty_reason())
    flags = detect(ds, stats, detectors=names, use_cache=not args.no_cache, progress=progress_bar("outliers"),
                   options=options)
    if args.json:
        print_json({"dataset": str(ds.source), "n_images": len(stats.ids), "detectors": names or list(DETECTORS),
                    "flags": flags.to_dict("records")})
        return 0
    n_img = flags["image_id"].nunique()
    print(f"{ds.source}: {len(flags)} flags on {n_img} of {len(stats.ids)} images", file=sys.stderr)
    if len(flags):
        _table(flags, args.limit)
    else:
        print("nothing flagged")
    return 0


def register(sub) -> None:
    add_command(sub, "outliers", "flag duplicates, shared masks and unusual images or labels, saying why",
                _args, cmd_outliers)
