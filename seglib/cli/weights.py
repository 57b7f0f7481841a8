"""Pretrained encoder weights and SAM 2 models in the Hugging Face cache: ``seglib weights list
[--json]``, ``seglib weights fetch ENCODER [--weights NAME]`` and ``seglib weights fetch
sam2.1-hiera-tiny`` (the one command that uses the network; the rest of seglib reads the cache
only). See seglib.pretrained and seglib.edit.sam."""
from __future__ import annotations

import sys

from .common import CliError, add_command, print_json


def _list_args(p):
    p.add_argument("--encoder", action="append", help="also show what this encoder offers, cached or not "
                                                      "(repeatable); default: the cached weights only")
    p.add_argument("--json", action="store_true", help='print {"cache": DIR, "weights": [{"encoder", "weights", '
                                                       '"repo_id", "revision", "cached", "file", "bytes"}]}')


def _fetch_args(p):
    p.add_argument("encoder", help="an smp encoder (resnet34), a timm one (tu-convnext_atto), or a SAM 2 model "
                                   "for the Label page's clicks (sam2.1-hiera-tiny, -small, -base-plus, -large)")
    p.add_argument("--weights", help="a name smp lists for it (default: imagenet, or timm's default tag)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the fetched weights' row as JSON")


def _size(n) -> str:
    return "?" if n is None else f"{n / 1e6:.1f} MB"


def cmd_list(args) -> int:
    from .. import pretrained

    try:
        rows = pretrained.listing(args.encoder) if args.encoder else pretrained.listing()
    except pretrained.WeightsError as e:
        raise CliError(str(e)) from None
    from ..edit import sam

    models = sam.listing()
    if args.json:
        print_json({"cache": str(pretrained.cache_dir()), "weights": rows, "sam2": models})
        return 0
    print(f"Hugging Face cache: {pretrained.cache_dir()}")
    if not rows:
        print("no pretrained encoder weights cached; fetch some with `seglib weights fetch ENCODER`")
    for r in rows:
        state = f"cached {_size(r['bytes'])}" if r["cached"] else "not cached"
        print(f"{r['encoder']:<28} {r['weights']:<22} {state:<18} {r['repo_id']}@{(r['revision'] or 'main')[:10]}")
    cached = [m for m in models if m["cached"]]
    for m in cached:
        print(f"{m['model']:<28} {'SAM 2 (Label page)':<22} {'cached ' + _size(m['bytes']):<18} {m['repo_id']}")
    if not cached:
        print(f"no SAM 2 model cached (the Label page's click tool); fetch one with "
              f"`seglib weights fetch {sam.DEFAULT}`")
    return 0


def _fetch_sam(args, progress) -> int:
    from ..edit import sam

    try:
        folder = sam.fetch(args.encoder, progress=progress)
    except sam.SamMissing as e:
        raise CliError(str(e)) from None
    row = next((m for m in sam.listing() if m["folder"] == str(folder)),
               {"model": args.encoder, "repo_id": sam.repo_of(args.encoder), "cached": True, "folder": str(folder),
                "bytes": (folder / sam.FILES[-1]).stat().st_size})
    if args.json:
        print_json(row)
    else:
        print(f"{row['model']}: {row['folder']} ({_size(row['bytes'])})")
    return 0


def cmd_fetch(args) -> int:
    from .. import pretrained

    progress = None
    if not args.quiet and not args.json:
        from tqdm import tqdm

        bar = {"b": None}

        def progress(done, total):
            if bar["b"] is None:
                bar["b"] = tqdm(total=total, desc=args.encoder, unit="B", unit_scale=True, file=sys.stderr,
                                leave=False)
            bar["b"].n = done
            bar["b"].refresh()
    from ..edit import sam

    if sam.is_sam_name(args.encoder):
        if args.weights:
            raise CliError("--weights is for encoders; a SAM 2 model is named by itself, e.g. sam2.1-hiera-small")
        return _fetch_sam(args, progress)
    try:
        if not pretrained.weight_names(args.encoder):
            raise pretrained.WeightsError(f"{args.encoder}: no pretrained weights are listed for this encoder "
                                          "(see `seglib models` for encoder names)")
        row = pretrained.fetch(args.encoder, args.weights, progress=progress)
    except pretrained.WeightsError as e:
        raise CliError(str(e)) from None
    if args.json:
        print_json(row)
    else:
        print(f"{row['encoder']} {row['weights']}: {row['file']} ({_size(row['bytes'])})")
    return 0


def register(sub) -> None:
    p = sub.add_parser("weights", help="pretrained encoder weights and SAM 2 models in the Hugging Face cache",
                       description="Pretrained encoder weights, as smp gets them, and SAM 2 models for the Label "
                                   "page's clicks: from the Hugging Face hub into its cache ($HF_HUB_CACHE). "
                                   "Training and labeling read the cache only.")
    area = p.add_subparsers(dest="weights_command", required=True, metavar="ACTION")
    add_command(area, "list", "weights in the cache (with --encoder: what an encoder offers)", _list_args, cmd_list)
    add_command(area, "fetch", "download an encoder's pretrained weights (or a SAM 2 model) into the cache",
                _fetch_args, cmd_fetch)
