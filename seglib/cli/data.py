"""Dataset commands: demo-data, stats."""
from __future__ import annotations

from .common import CliError, add_command, add_original_masks, open_or_fail, print_json, progress_bar


# --- demo-data -------------------------------------------------------------------------
def _demo_args(p):
    p.add_argument("out", help="the .npz to write; its truth file goes next to it as *.truth.json")
    p.add_argument("--n", type=int, default=2600, help="labeled images (default 2600)")
    p.add_argument("--n-test", type=int, default=None, help="unlabeled test images (default 40%% of --n)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")


def cmd_demo(args) -> int:
    from ..data.demo import write_demo
    try:
        summary = write_demo(args.out, n=args.n, seed=args.seed, n_test=args.n_test)
    except ValueError as e:
        raise CliError(str(e)) from None
    if args.json:
        print_json(summary)
    else:
        print(f"wrote {summary['path']} ({summary['n_images']} labeled + {summary['n_test']} test images) "
              f"and {summary['truth']}")
        print("injected: " + ", ".join(f"{k} {v}" for k, v in summary["problems"].items()))
    return 0


# --- stats -----------------------------------------------------------------------------
def _stats_args(p):
    p.add_argument("dataset", help="a folder of images and masks, or an .npz file")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-cache", action="store_true", help="recompute even if cached")
    add_original_masks(p)


def cmd_stats(args) -> int:
    from ..stats import compute_stats
    ds = open_or_fail(args.dataset, args.original_masks)
    stats = compute_stats(ds, use_cache=not args.no_cache, progress=progress_bar("stats"))
    doc = stats.to_json(ds)
    if args.json:
        print_json(doc)
        return 0
    fixed = len(ds.corrected_ids)
    print(f"{ds.source}: {doc['n_images']} images, {doc['n_labeled']} labeled, {len(ds.class_map)} classes "
          f"({ds.kind}, {ds.encoding} masks"
          + (f"; {fixed} corrected mask{'s' * (fixed != 1)} from the review store" if fixed else "")
          + ")")
    print(f"{'id':>3}  {'class':<20} {'pixels':>12} {'share':>8} {'images':>7}")
    for c in doc["classes"]:
        tag = "  (ignored)" if c["ignore"] else ""
        print(f"{c['id']:>3}  {c['name'][:20]:<20} {c['pixels']:>12,} {c['pixel_fraction']:>8.2%} "
              f"{c['images_with_class']:>7}{tag}")
    sizes = ", ".join(f"{s['width']}x{s['height']}x{s['channels']} ({s['count']})" for s in doc["sizes"][:5])
    print(f"sizes (WxHxC): {sizes}")
    if doc["problems"]:
        print(f"{len(doc['problems'])} problems:")
        for p in doc["problems"][:20]:
            print(f"  {p['file']}: {p['problem']}")
        if len(doc["problems"]) > 20:
            print(f"  ... and {len(doc['problems']) - 20} more (use --json for all)")
    return 0


def register(sub) -> None:
    add_command(sub, "demo-data", "write the Mars-like demo dataset and its truth file",
                _demo_args, cmd_demo)
    add_command(sub, "stats", "class distribution, image sizes and problems of a dataset",
                _stats_args, cmd_stats)
