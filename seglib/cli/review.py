"""Review commands: ``review status|flag|set|undo|export-flags|export-clean DATASET ...``.

They read and write the same store as the app's Review page, so a decision made in one shows
in the other at once.
"""
from __future__ import annotations

import sys

from .common import CliError, add_command, open_or_fail, print_json

ACTIONS = ("status", "flag", "set", "undo", "export-flags", "export-clean")


def _args(p):
    p.add_argument("action", choices=ACTIONS, help="what to do (status: counts per state)")
    p.add_argument("dataset", help="a folder of images and masks, or an .npz file")
    p.add_argument("ids", nargs="*", help="image ids (flag, set, undo)")
    p.add_argument("--state", choices=["flagged", "keep", "exclude", "relabel", "cleared"], help="for set")
    p.add_argument("--reason", default="", help="why (flag, set)")
    p.add_argument("--note", default="", help="a note (set)")
    p.add_argument("--detector", default=None, help="the detector that found them (flag)")
    p.add_argument("--score", type=float, default=None, help="0..1, higher = worse (flag)")
    p.add_argument("--out", help="output path (export-flags: CSV, default stdout; export-clean: required)")
    p.add_argument("--overwrite", action="store_true", help="export-clean: replace an existing copy")
    p.add_argument("--db", default=None, help="SQLAlchemy URL of the store (default $SEGLIB_REVIEW_DB or "
                                              "<data dir>/review.db)")
    p.add_argument("--json", action="store_true")


def cmd_review(args) -> int:
    from ..review import ReviewStore, dataset_key
    ds = open_or_fail(args.dataset)
    store = ReviewStore(args.db)
    key = dataset_key(ds)
    try:
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


_RUN = {"status": _status, "flag": _flag, "set": _set, "undo": _undo,
        "export-flags": _export_flags, "export-clean": _export_clean}


def register(sub) -> None:
    add_command(sub, "review", "flags and decisions of the review store; export flags or a cleaned copy",
                _args, cmd_review)
