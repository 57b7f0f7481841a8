"""Augmentation commands: ``augment list|show|preview|check``."""
from __future__ import annotations

from .common import CliError, add_command, open_or_fail, print_json


def _args(p):
    p.add_argument("action", choices=["list", "show", "preview", "check"],
                   help="list: saved pipelines and offered transforms; show NAME: file, Python code; "
                        "preview NAME --data D --out PNG: a grid of draws; check NAME --data D: warnings")
    p.add_argument("name", nargs="?", help="a saved pipeline name or a .json/.yaml file (A.save format)")
    p.add_argument("--data", help="dataset (folder or .npz) for preview and check")
    p.add_argument("--out", help="preview: the PNG to write")
    p.add_argument("--n", type=int, default=8, help="preview: images (default 8)")
    p.add_argument("--draws", type=int, default=4, help="preview: draws per image (default 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")


def _samples(args, n: int):
    from ..augment import pick_images
    if not args.data:
        raise CliError(f"{args.action} needs --data DATASET")
    ds = open_or_fail(args.data)
    ids = ds.labeled_ids
    if not ids:
        raise CliError(f"{args.data}: no labeled images")
    pick = pick_images(ids, n, args.seed)
    pairs = [(img, m) for img, m, _ in (ds.load_pair(i) for i in pick) if img is not None]
    return ds, pick, pairs


def cmd_augment(args) -> int:
    from .. import augment as aug
    if args.action == "list":
        transforms = [{"name": s.name, "group": s.group, "spatial": s.spatial} for s in aug.TRANSFORMS.values()]
        doc = {"saved": aug.list_pipelines(), "dir": str(aug.pipelines_dir()), "transforms": transforms}
        if args.json:
            print_json(doc)
        else:
            print(f"saved in {doc['dir']}: " + (", ".join(doc["saved"]) or "none"))
            print("transforms: " + ", ".join(t["name"] for t in doc["transforms"]))
        return 0
    if not args.name:
        raise CliError(f"augment {args.action} needs a pipeline NAME or file")
    try:
        compose = aug.load_pipeline(args.name, seed=args.seed)
        steps = aug.steps_from_compose(compose)
        path = aug.pipeline_path(args.name)
        if args.action == "show":
            if args.json:
                print_json({"path": str(path), "steps": steps, "python": aug.to_python(steps)})
            else:
                print(f"# {path}\n{aug.to_python(steps)}", end="")
            return 0
        if args.action == "check":
            _, _, pairs = _samples(args, 4)
            found = aug.check_pipeline(steps, pairs)
            if args.json:
                print_json({"path": str(path), "findings": [f.__dict__ for f in found]})
            else:
                for f in found:
                    print(f"{f.level}: step {'-' if f.step is None else f.step + 1} {f.transform}: {f.message}")
                print(f"{len(found)} findings")
            return 1 if any(f.level == "error" for f in found) else 0
        return _preview(args, aug, compose)
    except aug.PipelineError as e:
        raise CliError(str(e)) from None


def _preview(args, aug, compose) -> int:
    import numpy as np
    from PIL import Image

    from .. import viz
    if not args.out:
        raise CliError("preview needs --out FILE.png")
    ds, pick, pairs = _samples(args, args.n)
    rows = aug.preview(compose, pairs, args.draws, args.seed)
    cells = [viz.overlay(img, m, ds.class_map, 0.4) for (img, m), row in zip(pairs, rows, strict=True)
             for img, m in [(img, m)] + row]
    h = max(c.shape[0] for c in cells)
    w = max(c.shape[1] for c in cells)
    cells = [np.pad(c, ((0, h - c.shape[0]), (0, w - c.shape[1]), (0, 0)), constant_values=255) for c in cells]
    Image.fromarray(viz.tile(cells, cols=args.draws + 1)).save(args.out)
    if args.json:
        print_json({"out": args.out, "images": pick, "draws": args.draws, "seed": args.seed})
    else:
        print(f"wrote {args.out}: {len(pick)} images x (original + {args.draws} draws), seed {args.seed}")
    return 0


def register(sub) -> None:
    add_command(sub, "augment", "list, show, preview and check saved augmentation pipelines",
                _args, cmd_augment)
