"""Inference commands: ``seglib evaluate`` scores runs and their ensemble on a dataset, ``seglib
predict`` writes their masks. Both run the Compare page's library (seglib.predict): batched,
optional flips (--tta), ensembles, cached on disk by weights and dataset content. Every image is
predicted at its own size: by overlapping windows of the run's training crop (``--tile S`` sets
the window, ``--tile 0`` whole images), resized as the run trained, or whole.

A checkpoint that cannot be used (missing or truncated weights, other classes or channels) is
reported on one line and left out; the others still run. Nothing usable: exit status 1.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

from .common import CliError, add_command, add_original_masks, open_or_fail, print_json, progress_bar

ENSEMBLES = ("mean", "weighted", "vote")


def _common_args(p, splits: tuple[str, ...], default_split: str, split_help: str) -> None:
    p.add_argument("--checkpoint", nargs="+", required=True, metavar="RUN",
                   help="one or more run folders (from `seglib train` or the app)")
    p.add_argument("--data", required=True, metavar="DATASET", help="a folder of images and masks, or an .npz file")
    p.add_argument("--split", choices=splits, default=default_split, help=split_help)
    p.add_argument("--ensemble", choices=ENSEMBLES,
                   help="also combine the runs: mean of probabilities, weighted mean, or majority vote")
    p.add_argument("--weights", help="weights of --ensemble weighted, one per RUN, e.g. 0.6,0.4 "
                                     "(default: fitted on the runs' shared validation images)")
    p.add_argument("--tta", action="store_true", help="test-time augmentation: average over the four flips")
    p.add_argument("--which", choices=("best", "last"), default="best", help="which weights of each run (default best)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps (default auto)")
    p.add_argument("--batch-size", type=int, default=16, help="images per batch, and windows per batch when tiled")
    p.add_argument("--tile", type=int, metavar="S",
                   help="predict by overlapping windows of S pixels, blended smoothly (default: the run's "
                        "training crop; a run trained on whole or resized images predicts them so); "
                        "0: whole images")
    p.add_argument("--no-cache", action="store_true", help="predict again even if cached")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_original_masks(p)


def _evaluate_args(p) -> None:
    _common_args(p, ("all", "val", "test"), "all",
                 "all: every labeled image (default); val: the runs' shared validation images; "
                 "test: the unlabeled images (nothing to score: an error)")
    p.add_argument("--json", action="store_true", help='print {"models": {NAME: {miou, ..., per_class_iou}}}')


def _predict_args(p) -> None:
    _common_args(p, ("all", "labeled", "val", "test"), "all",
                 "all: every image (default); labeled; val: the runs' shared validation images; "
                 "test: the unlabeled ones")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for <image id>.png masks (created)")
    p.add_argument("--colour", "--color", action="store_true", help="also colour previews in DIR/colour/")
    p.add_argument("--each", action="store_true", help="with several runs, also each run's masks in DIR/runs/NAME/")
    p.add_argument("--json", action="store_true", help="print what was written as JSON")


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _setup(args, default_ensemble: str | None = None):
    """(dataset, layout, members, ensembles, ids) for the flags, warnings for unusable runs."""
    from ..predict import Ensemble, dataset_layout, open_members, shared_val_ids

    if args.tile is not None and args.tile != 0 and args.tile < 32:
        raise CliError(f"--tile {args.tile}: a window of at least 32 pixels (0: whole images)")
    ds = open_or_fail(args.data, args.original_masks)
    layout = dataset_layout(ds)
    members, problems = open_members(args.checkpoint, layout, args.which, source=args.data)
    if not members:
        if len(problems) > 1:
            for p in problems[:-1]:
                _warn(p)
            raise CliError(f"none of the {len(problems)} checkpoints can be used; last: {problems[-1]}")
        raise CliError(problems[0])
    for p in problems:
        _warn(f"{p} (left out)")
    weights = None
    if args.weights:
        try:
            given = [float(v) for v in args.weights.split(",")]
        except ValueError:
            raise CliError(f"--weights {args.weights!r}: numbers separated by commas, e.g. 0.6,0.4") from None
        if len(given) != len(args.checkpoint):
            raise CliError(f"--weights has {len(given)} values for {len(args.checkpoint)} checkpoints")
        usable = {str(m.run_dir) for m in members}
        weights = [w for run, w in zip(args.checkpoint, given, strict=True) if str(Path(run).expanduser()) in usable]
        if args.ensemble != "weighted":
            _warn("--weights is used by --ensemble weighted only")
    kind = args.ensemble or (default_ensemble if len(members) > 1 else None)
    ensembles = []
    if kind and len(members) < 2:
        _warn(f"--ensemble {kind} left out: only one usable run")
    elif kind:
        try:
            ensembles = [Ensemble(kind, tuple(m.name for m in members),
                                  tuple(weights) if kind == "weighted" and weights else None, name="ensemble")]
        except ValueError as e:
            raise CliError(str(e)) from None
    if args.split == "val":
        ids = shared_val_ids(members, ds)
        if not ids:
            raise CliError(f"the runs share no labeled validation images in {args.data}")
        # The files decide (a run trained before or after a correction has the same split).
        trained_on = {m.config.resolved.get("files_fingerprint") or m.config.resolved.get("dataset_fingerprint")
                      for m in members}
        if not trained_on <= {ds.fingerprint(), ds.files_fingerprint()}:
            _warn(f"{args.data} is not the file the runs were trained on (or it changed since): "
                  "their validation split is taken by image id")
    elif args.split == "test":
        ids = ds.unlabeled_ids
    elif args.split == "labeled":
        ids = ds.labeled_ids
    else:
        ids = None  # the command decides
    return ds, layout, members, ensembles, ids


def _run(args, ds, layout, members, ensembles, ids, label: str, crossfit: bool):
    from ..predict import predict

    try:
        pred = predict(ds, members, ensembles, ids, tta=args.tta, device=args.device, batch_size=args.batch_size,
                       progress=None if args.quiet else progress_bar(label), use_cache=not args.no_cache,
                       layout=layout, crossfit=crossfit, tile=args.tile,
                       fit_progress=None if args.quiet else progress_bar("fitting ensemble weights"))
    except ValueError as e:  # an ensemble with nothing to fit its weights on
        raise CliError(str(e)) from None
    if ids and len(pred.skipped) >= len(ids):  # nothing read: one error, not "0 masks written" with exit 0
        raise CliError(f"none of the {len(ids)} images of {args.data} can be read; first: {pred.skipped[0][1]}")
    for image_id, why in pred.skipped:
        _warn(f"{image_id}: {why} (left out)")
    return pred


def _clean(value):
    """JSON has no NaN: a metric that does not exist (a class in no image) is null."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _ensemble_doc(pred) -> dict | None:
    if not pred.ensembles:
        return None
    e = pred.ensembles[0]
    doc = {"name": e.name, "kind": e.kind, "members": list(e.members), "weights": list(e.member_weights()),
           "fitted": e.fit_info}
    if e.crossfit is not None:
        # The scores above are honest: each fold of the fitting images used weights fitted without it.
        doc["scored"] = {"cross_fitted": True, "folds": len(e.crossfit.folds),
                         "fold_weights": [list(w) for w in e.crossfit.weights]}
    return doc


def cmd_evaluate(args) -> int:
    from ..predict import Comparison
    from ..predict.run import member_plans

    ds, layout, members, ensembles, ids = _setup(args)
    if args.split == "test":
        raise CliError(f"{args.data}: the test split is unlabeled, there is nothing to score; "
                       "`seglib predict --split test` writes its masks")
    ids = ds.labeled_ids if ids is None else ids
    if not ids:
        raise CliError(f"{args.data}: no labeled images to score")
    cmp = Comparison(_run(args, ds, layout, members, ensembles, ids, "evaluate", crossfit=True))
    plans = member_plans(members, args.tile)
    doc = {"models": {name: _clean(cmp.scores(name)) for name in cmp.names},
           "split": args.split, "n_images": len(cmp.labeled_ids), "tta": args.tta,
           "runs": {m.name: {"run": str(m.run_dir), "weights": str(m.weights), "model": m.spec.label,
                             "inference": plans[m.name].to_dict()} for m in members},
           "ensemble": _ensemble_doc(cmp.pred)}
    if args.json:
        print_json(doc)
        return 0
    width = max(len(n) for n in cmp.names)
    print(f"{'':<{width}}  mIoU    no-bg   pix.acc mean.acc Dice   ({doc['n_images']} images, split {args.split})")
    for name, s in doc["models"].items():
        vals = [s[k] for k in ("miou", "miou_no_bg", "pixel_accuracy", "mean_pixel_accuracy", "dice")]
        print(f"{name:<{width}}  " + " ".join("  -   " if v is None else f"{v:.4f}" for v in vals))
    for name, plan in plans.items():
        if plan.mode != "full":
            print(f"{name}: {plan.why}")
    if doc["ensemble"]:
        e = doc["ensemble"]
        fitted = " (fitted on validation images)" if e["fitted"] else ""
        if e.get("scored"):
            fitted += (f"; scored cross-fitted: each of {e['scored']['folds']} folds of those images with weights "
                       "fitted on the others")
        print(f"ensemble: {e['kind']} of {', '.join(e['members'])}, weights "
              f"{', '.join(f'{w:.2f}' for w in e['weights'])}{fitted}")
    return 0


def cmd_predict(args) -> int:
    from ..predict import write_masks
    from ..predict.run import member_plans

    ds, layout, members, ensembles, ids = _setup(args, default_ensemble="mean")
    ids = ds.ids if ids is None else ids
    if not ids:
        raise CliError(f"{args.data}: no images in split {args.split}")
    pred = _run(args, ds, layout, members, ensembles, ids, "predict", crossfit=False)  # the weights fitted on all
    final = ensembles[0].name if ensembles else members[0].name
    column = pred.columns[final]
    written = [i for i in ids if i in column]
    try:
        doc = write_masks(column, args.out, written, ds.class_map, colour=args.colour, npz=ds.kind == "npz")
        if args.each and len(members) > 1:
            doc["runs"] = {m.name: write_masks(pred.columns[m.name], f"{args.out}/runs/{m.name}", written,
                                               ds.class_map, colour=args.colour)["out"] for m in members}
    except (OSError, ValueError) as e:
        raise CliError(f"{args.out}: {e}") from None
    plans = member_plans(members, args.tile)
    doc.update(column=final, ensemble=_ensemble_doc(pred), n_images=len(written),
               inference={name: plan.to_dict() for name, plan in plans.items()},
               skipped=[{"image_id": i, "why": w} for i, w in pred.skipped])
    if args.json:
        print_json(doc)
    else:
        print(f"{len(written)} masks of {final} written to {args.out}" + (f" and {doc['npz']}" if doc["npz"] else ""),
              file=sys.stderr)
    return 0


def register(sub) -> None:
    add_command(sub, "evaluate", "score runs (and their ensemble) on a dataset: mIoU, Dice, pixel accuracy, "
                                 "IoU per class", _evaluate_args, cmd_evaluate)
    add_command(sub, "predict", "write the predicted masks of runs (or their ensemble) as index PNGs",
                _predict_args, cmd_predict)
