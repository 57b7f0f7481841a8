"""Review commands: ``review status|flag|set|undo|export-flags|export-clean DATASET ...`` and the
corrected masks: ``review correct DATASET ID --mask PNG``, ``review corrections DATASET [--export
DIR]``, ``review revert DATASET ID --to N``.

They read and write the same store as the app's Review and Label pages, so a decision or a
corrected mask saved in one shows in the other at once.
"""
from __future__ import annotations

import sys

from .common import CliError, add_command, open_or_fail, print_json

ACTIONS = ("status", "flag", "set", "undo", "export-flags", "export-clean", "correct", "corrections", "revert")


def _args(p):
    p.add_argument("action", choices=ACTIONS, help="what to do (status: counts per state)")
    p.add_argument("dataset", help="a folder of images and masks, or an .npz file")
    p.add_argument("ids", nargs="*", help="image ids (flag, set, undo; one for correct and revert)")
    p.add_argument("--state", choices=["flagged", "keep", "exclude", "relabel", "cleared"], help="for set")
    p.add_argument("--reason", default="", help="why (flag, set)")
    p.add_argument("--note", default="", help="a note (set, correct, revert)")
    p.add_argument("--mask", help="correct: an index PNG of class ids, the image's size")
    p.add_argument("--to", type=int, help="revert: the version to make current again (0: the file's mask)")
    p.add_argument("--export", metavar="DIR", help="corrections: write the latest corrected masks as index PNGs "
                                                   "named by image id")
    p.add_argument("--detector", default=None, help="the detector that found them (flag)")
    p.add_argument("--score", type=float, default=None, help="0..1, higher = worse (flag)")
    p.add_argument("--out", help="output path (export-flags: CSV, default stdout; export-clean: required)")
    p.add_argument("--overwrite", action="store_true", help="export-clean: replace an existing copy")
    p.add_argument("--db", default=None, help="SQLAlchemy URL of the store (default $SEGLIB_REVIEW_DB or "
                                              "<data dir>/review.db)")
    p.add_argument("--original-masks", action="store_true",
                   help="export-clean: copy the files' masks, not the corrected ones")
    p.add_argument("--json", action="store_true")


def cmd_review(args) -> int:
    from ..review import ReviewStore, dataset_key
    store = ReviewStore(args.db)
    try:
        ds = open_or_fail(args.dataset, args.original_masks, store)
        key = dataset_key(ds)
        doc = _RUN[args.action](args, ds, store, key)
    finally:
        store.close()
    if args.json:
        print_json(doc)
    elif doc.get("message"):
        print(doc["message"])
    return 0


def _unknown(ds, ids: list[str]) -> None:
    missing = [i for i in ids if i not in ds]
    if missing:
        raise CliError(f"{ds.source}: no image with id {', '.join(missing[:5])}"
                       + (f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""))


def _status(args, ds, store, key) -> dict:
    counts = store.counts(key)
    text = ", ".join(f"{k} {v}" for k, v in counts.items())
    return {"dataset": key, "counts": counts, "n_images": len(ds), "message": f"{ds.source}: {text}"}


def _flag(args, ds, store, key) -> dict:
    if not args.ids:
        raise CliError("flag: give the image ids to flag")
    _unknown(ds, args.ids)
    n = store.flag(key, args.ids, reason=args.reason, detector=args.detector, score=args.score)
    return {"flagged": n, "counts": store.counts(key), "message": f"flagged {n} images"}


def _set(args, ds, store, key) -> dict:
    if not args.ids or not args.state:
        raise CliError("set: give --state and the image ids")
    _unknown(ds, args.ids)
    n = store.set_state(key, args.ids, args.state, note=args.note, reason=args.reason)
    return {"changed": n, "state": args.state, "counts": store.counts(key), "message": f"{n} images -> {args.state}"}


def _undo(args, ds, store, key) -> dict:
    done = [store.undo(key, i) for i in args.ids] if args.ids else [store.undo(key)]
    n = sum(done)
    return {"undone": n, "counts": store.counts(key), "message": f"undid {n} events" if n else "nothing to undo"}


def _export_flags(args, ds, store, key) -> dict:
    from ..review.export import export_flags_csv, flags_frame
    if not args.out:
        if args.json:
            return {"flags": flags_frame(store, key).to_dict("records")}
        sys.stdout.write(flags_frame(store, key).to_csv(index=False))
        return {}
    path = export_flags_csv(store, key, args.out)
    n = len(store.decisions(key))
    return {"path": str(path), "n_rows": n, "message": f"wrote {n} rows to {path}"}


def _export_clean(args, ds, store, key) -> dict:
    from ..review.export import excluded_ids, export_clean
    if not args.out:
        raise CliError("export-clean: give --out (a folder, or a .npz for an .npz dataset)")
    try:
        summary = export_clean(ds, args.out, excluded_ids(store, key), overwrite=args.overwrite)
    except (FileExistsError, ValueError, OSError) as e:
        raise CliError(str(e)) from None
    summary["message"] = (f"wrote {summary['path']}: {summary['n_images']} images kept, "
                          f"{summary['n_excluded']} excluded")
    return summary


def _one_id(args, ds, action: str) -> str:
    if len(args.ids) != 1:
        raise CliError(f"{action}: give exactly one image id")
    _unknown(ds, args.ids)
    return args.ids[0]


def _read_index_png(path: str):
    import numpy as np
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "P"):
                raise CliError(f"{path}: an image of mode {im.mode}; the mask must be an index PNG "
                               "(one channel of class ids)")
            return np.asarray(im)
    except (OSError, UnidentifiedImageError) as e:
        raise CliError(f"{path}: cannot read the mask ({e})") from None


def _correct(args, ds, store, key) -> dict:
    from ..review.corrections import save_correction
    image_id = _one_id(args, ds, "correct")
    if not args.mask:
        raise CliError("correct: give --mask PNG (an index PNG of class ids)")
    mask = _read_index_png(args.mask)
    try:
        v = save_correction(ds, image_id, mask, store=store, tool="cli", note=args.note)
    except ValueError as e:
        raise CliError(f"{args.mask}: {e}") from None
    changed = "" if v.changed_px is None else f", {v.changed_px:,} pixels changed"
    return {"image_id": image_id, "version": v.number, "changed_px": v.changed_px,
            "message": f"{image_id}: saved as version {v.number}{changed}"}


def _revert(args, ds, store, key) -> dict:
    from ..review.corrections import revert_correction
    image_id = _one_id(args, ds, "revert")
    if args.to is None:
        raise CliError("revert: give --to N (0: the file's mask)")
    try:
        v = revert_correction(ds, image_id, args.to, store=store, note=args.note)
    except KeyError:
        raise CliError(f"{image_id}: no version {args.to}") from None
    return {"image_id": image_id, "version": v.number, "reverts_to": args.to,
            "message": f"{image_id}: version {v.number} puts back "
                       + ("the file's mask" if args.to == 0 else f"version {args.to}")}


def _int(value) -> int | None:
    """A table's integer that may be missing (pandas gives NaN) as an int or None."""
    return None if value is None or value != value else int(value)


def _corrections(args, ds, store, key) -> dict:
    from ..review.corrections import corrections_table, export_corrections
    table = corrections_table(ds, store)
    doc = {"dataset": key, "n_versions": len(table), "n_corrected": len(ds.corrected_ids),
           "versions": [{**r, "at": str(r["at"]), "changed_px": _int(r["changed_px"]),
                         "reverts_to": _int(r["reverts_to"])} for r in table.to_dict("records")]}
    if args.export:
        try:
            written = export_corrections(ds, args.export, store)
        except OSError as e:
            raise CliError(f"{args.export}: {e}") from None
        doc["exported"] = [str(p) for p in written]
        doc["message"] = f"wrote {len(written)} corrected masks to {args.export}"
    elif not args.json:
        if table.empty:
            doc["message"] = f"{ds.source}: no corrected masks"
        else:
            n_img = table["image_id"].nunique()
            lines = [f"{ds.source}: {len(table)} version{'s' * (len(table) != 1)} of {n_img} image{'s' * (n_img != 1)} "
                     f"({len(ds.corrected_ids)} corrected now)"]
            for r in table.itertuples():
                px = _int(r.changed_px)
                what = "the file's mask" if r.original else f"{'?' if px is None else f'{px:,}'} px changed"
                lines.append(f"  {r.image_id}  v{r.number}{' *' if r.current else '  '} {r.at:%Y-%m-%d %H:%M} "
                             f"{r.who:<10} {r.tool:<10} {what}  {r.note}")
            doc["message"] = "\n".join(lines)
    return doc


_RUN = {"status": _status, "flag": _flag, "set": _set, "undo": _undo,
        "export-flags": _export_flags, "export-clean": _export_clean,
        "correct": _correct, "corrections": _corrections, "revert": _revert}


def register(sub) -> None:
    add_command(sub, "review", "flags, decisions and corrected masks of the review store; export flags, corrected "
                               "masks or a cleaned copy",
                _args, cmd_review)
