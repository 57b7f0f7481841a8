"""``seglib label-next DATASET --checkpoint RUN... [--strategy S] [--n N] [--json]``: the unlabeled
images in the order to label them (seglib.edit.label_next), best first. ``random`` and
``kcenter`` need no run. ``--unlabeled FOLDER`` ranks a new batch kept in another folder."""
from __future__ import annotations

import sys

from .common import CliError, add_command, add_original_masks, add_unlabeled, open_or_fail, print_json, progress_bar


def _args(p):
    from ..edit.strategies import STRATEGIES

    p.add_argument("dataset", help="a folder of images and masks, or an .npz file (its unlabeled images are ranked)")
    p.add_argument("--checkpoint", action="append", default=[], metavar="RUN",
                   help="a trained run folder (repeatable: several make an ensemble and their disagreement counts)")
    p.add_argument("--strategy", default="score", choices=list(STRATEGIES),
                   help="; ".join(f"{k}: {v}" for k, v in STRATEGIES.items()) + " (default score)")
    p.add_argument("--n", type=int, default=20, help="how many to list (default 20; 0: all)")
    p.add_argument("--seed", type=int, default=0, help="the random strategy's seed")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    add_unlabeled(p)
    add_original_masks(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true",
                   help='print {"strategy", "candidates", "images": [{"image_id", "score", "entropy", '
                        '"disagreement", "similar_to", "why"}]}, best first')


def cmd_label_next(args) -> int:
    from ..edit.assist import AssistError
    from ..edit.label_next import NEEDS_RUNS, candidates, label_next

    ds = open_or_fail(args.dataset, args.original_masks, unlabeled=args.unlabeled)
    if args.strategy in NEEDS_RUNS and not args.checkpoint:
        raise CliError(f"--strategy {args.strategy} ranks by the runs' predictions: give --checkpoint RUN "
                       "(or use --strategy random or kcenter)")
    ids = candidates(ds)
    if not ids:
        raise CliError(f"{args.dataset}: every image is labeled; nothing to rank")
    bar = None if args.quiet or args.json else progress_bar("predicting")
    try:
        queue = label_next(ds, args.checkpoint, ids, strategy=args.strategy, seed=args.seed, device=args.device,
                           progress=bar)
    except (AssistError, ValueError) as e:
        raise CliError(str(e)) from None
    shown = queue if args.n <= 0 else queue.head(args.n)
    if args.json:
        rows = [{k: (None if v != v else v) for k, v in r.items()} for r in shown.to_dict("records")]
        print_json({"strategy": args.strategy, "candidates": len(ids), "images": rows})
        return 0
    print(f"{len(ids)} unlabeled images, ranked by {args.strategy}; the first {len(shown)}:", file=sys.stderr)
    for r in shown.itertuples():
        print(f"{r.image_id}\t{r.score:.3f}\t{r.why}")
    return 0


def register(sub) -> None:
    add_command(sub, "label-next", "the unlabeled images in the order to label them (best first)", _args,
                cmd_label_next)
