"""Class file commands: classes (show a dataset's classes and its masks' colours; write a class
file from those colours)."""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from .common import CliError, add_command, open_or_fail, print_json, progress_bar


def _args(p):
    p.add_argument("dataset", help="a folder of images and masks, or an .npz file")
    p.add_argument("--json", action="store_true")
    p.add_argument("--write-from-masks", action="store_true",
                   help="write a class file with one class per colour of the masks (the class file's names "
                        "matched by order, or as --names-by says); the original is kept as classes.orig.json")
    p.add_argument("--names-by", default="order", metavar="order|NAME=HEX,...",
                   help="'order' (default): colours the file has keep their class, the others take the file's "
                        "other names in its order, most pixels first; or NAME=#RRGGBB pairs for the colours to "
                        "name, the rest by order")
    p.add_argument("--out", metavar="FILE",
                   help="write the class file here instead of over the dataset's ('-': print it)")


def _class_rows(class_map, stats) -> list[dict]:
    per_class = stats.per_class().set_index("id")
    bg = class_map.background_id
    return [{"id": c.id, "name": c.name, "color": c.color, "ignore": c.ignore, "background": c.id == bg,
             "pixels": int(per_class.loc[c.id, "pixels"]) if c.id in per_class.index else 0} for c in class_map]


def _colour_rows(colours, class_map) -> list[dict]:
    return [{"color": c.color, "pixels": c.pixels, "masks": c.masks,
             "class": class_map.name_of(c.class_id) if c.class_id is not None else None} for c in colours]


def cmd_classes(args) -> int:
    from ..data.class_fix import (
        class_file_from_mask_colours,
        class_file_path,
        fix_problem,
        mask_colours,
        parse_names,
        save_class_file,
    )
    from ..stats import compute_stats
    if args.out == "-" and args.json:
        raise CliError("--out - prints the class file and --json a report: use one of them")
    if (args.out or args.names_by != "order") and not args.write_from_masks:
        raise CliError("--out and --names-by go with --write-from-masks")
    try:
        names = None if args.names_by == "order" else parse_names(args.names_by)
    except ValueError as e:
        raise CliError(f"--names-by: {e}") from None
    ds = open_or_fail(args.dataset, original_masks=True)  # a class file describes the files' masks
    stats = compute_stats(ds, progress=progress_bar("stats"))
    colours = mask_colours(stats) if ds.encoding == "rgb" else []
    doc = {"dataset": str(ds.source), "encoding": ds.encoding,
           "class_file": ds.class_map_file, "inferred": ds.class_map.inferred,
           "classes": _class_rows(ds.class_map, stats), "mask_colours": _colour_rows(colours, ds.class_map),
           "problems": [p.to_dict() for p in ds.report.dataset_problems()]}
    if not args.write_from_masks:
        if args.json:
            print_json(doc)
        else:
            _print_classes(doc)
        return 0
    problem = fix_problem(ds, stats)
    if problem:
        raise CliError(problem)
    try:
        fix = class_file_from_mask_colours(ds, stats, names)
    except ValueError as e:
        raise CliError(str(e)) from None
    if args.out == "-":
        sys.stdout.write(fix.text())
        return 0
    target = Path(args.out).expanduser() if args.out else class_file_path(ds)
    try:
        backup = save_class_file(replace(fix, path=target))
    except OSError as e:
        raise CliError(f"{target}: cannot write the class file ({e.strerror or e})") from None
    written = {"written": str(target), "backup": str(backup) if backup else None,
               "classes": [c.to_dict() for c in fix.class_map]}
    if args.json:
        print_json({**doc, **written})
        return 0
    print(f"wrote {target} ({len(fix.class_map)} classes from the masks' colours)"
          + (f"; the original is kept as {backup}" if backup else ""))
    for c in fix.class_map:
        print(f"{c.id:>3}  {c.color}  {c.name}")
    return 0


def _print_classes(doc: dict) -> None:
    source = doc["class_file"] or "none (names and colours made up)"
    print(f"{doc['dataset']}: {doc['encoding']} masks, class file {source}")
    print(f"{'id':>3}  {'colour':<8} {'class':<24} {'pixels':>12}")
    for c in doc["classes"]:
        tags = [t for t, on in (("ignored", c["ignore"]), ("background", c["background"])) if on]
        print(f"{c['id']:>3}  {c['color']:<8} {c['name'][:24]:<24} {c['pixels']:>12,}"
              + (f"  ({', '.join(tags)})" if tags else ""))
    if doc["mask_colours"]:
        print("colours in the masks:")
        for c in doc["mask_colours"]:
            print(f"  {c['color']}  {c['pixels']:>12,} px in {c['masks']:,} masks  "
                  + (c["class"] or "NOT IN THE CLASS FILE"))
    for p in doc["problems"]:
        print(f"{p['severity']}: {p['file']}: {p['problem']}")


def register(sub) -> None:
    add_command(sub, "classes", "a dataset's classes and its masks' colours; write a class file from those colours",
                _args, cmd_classes)
