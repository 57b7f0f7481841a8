"""``seglib quality DATASET --folds K --out DIR [train options] [--json]``: every labeled image
scored out-of-fold (seglib.quality): K fold runs trained (or reused) under DIR, then each image
predicted by the fold model that never saw it and scored, most suspicious first."""
from __future__ import annotations

import sys

from .common import CliError, add_command, print_json, progress_bar
from .train import add_train_options, config_from_args


def _quality_args(p):
    p.add_argument("dataset", help="a folder of images and masks, or an .npz file")
    p.add_argument("--out", required=True, help="folder of the fold runs and the scores (made if missing; "
                                                "finished folds there are reused)")
    p.add_argument("--folds", type=int, default=5, help="K, the number of fold models (default 5)")
    p.add_argument("--score-only", action="store_true",
                   help="train nothing: score with the fold runs already in --out")
    p.add_argument("--devices", default="",
                   help="train folds side by side, one per device: e.g. cuda:0,cuda:1 (default: one after the "
                        "other on --device); each fold takes the next free device")
    p.add_argument("--top", type=int, default=20, help="without --json: how many images to list (default 20)")
    add_train_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true",
                   help='print {"folds", "runs", "images": [{"image_id", "score", "quality", "surprise", '
                        '"issue_pixels", "reasons"}]}, most suspicious first')


def cmd_quality(args) -> int:
    from ..data import DatasetError
    from ..models import ModelError
    from ..quality import cross_validate, score_labels
    from ..train import CheckpointError, ConfigError, ProgressBar, TrainingError
    from ..train.data import usable_images

    if args.folds < 2:
        raise CliError(f"--folds {args.folds}: need at least 2")
    cfg = config_from_args(args)
    log = (lambda _m: None) if args.quiet and args.json else (lambda m: print(m, file=sys.stderr))
    try:
        if not args.score_only:
            devices = [d.strip() for d in args.devices.split(",") if d.strip()]
            side_by_side = len(devices) > 1     # one progress bar would be fed by several trainings at once
            results = cross_validate(cfg, args.out, args.folds,
                                     callbacks=[] if args.quiet or side_by_side else [ProgressBar()], log=log,
                                     devices=devices)
            stopped = [r for r in results if r["status"] != "done"]
            if stopped:
                r = stopped[0]
                raise CliError(f"fold {r['fold'] + 1} of {args.folds} {r['status']} ({r['run']}); the finished folds "
                               f"are kept: run the same command again to go on")
        ds = usable_images(cfg, log)[0]   # as the folds read it: corrected masks unless --original-masks
        scores = score_labels(ds, args.out, folds=args.folds, device=args.device or "auto",
                              progress=None if args.quiet else progress_bar("scoring"))
    except (ConfigError, ModelError, TrainingError, CheckpointError, DatasetError) as e:
        raise CliError(str(e)) from None
    doc = scores.to_json()
    if args.json:
        print_json(doc)
        return 0
    print(f"{len(scores.table)} labeled images scored by {scores.folds} fold models ({args.out}); "
          f"most suspicious first:", file=sys.stderr)
    for row in scores.table.head(args.top).itertuples():
        why = "; ".join(row.reasons) or "nothing stands out"
        print(f"{row.score:.3f}  {row.image_id}  (fold {row.fold + 1})  {why}")
    for image_id, why in scores.unscored.items():
        print(f"  -    {image_id}  {why}")
    return 0


def register(sub) -> None:
    add_command(sub, "quality", "score every labeled image with K fold models that never saw it (label errors)",
                _quality_args, cmd_quality)
