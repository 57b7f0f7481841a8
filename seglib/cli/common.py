"""What every area of commands shares: the user-facing error, JSON output, progress bars and
opening a dataset or failing with one line."""
from __future__ import annotations

import json
import math
import sys


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


def progress_bar(label: str):
    """A tqdm bar on stderr, as a (done, total) callback."""
    from tqdm import tqdm
    bar = {"b": None}

    def update(done: int, total: int) -> None:
        if bar["b"] is None:
            # initial: the images done before the first report do not count toward the rate (tqdm
            # would divide them by the few microseconds since the bar opened).
            bar["b"] = tqdm(total=total, initial=done, desc=label, file=sys.stderr, leave=False, unit="img")
        bar["b"].n = done
        bar["b"].refresh()
        if done >= total:
            bar["b"].close()
    return update


def add_command(sub, name: str, help_text: str, add_arguments, run) -> None:
    """A subcommand ``name`` with its flags (``add_arguments(parser)``) that calls ``run(args) -> int``."""
    p = sub.add_parser(name, help=help_text, description=help_text)
    add_arguments(p)
    p.set_defaults(run=run)


def finite(value):
    """``value`` with every NaN or infinite float replaced by None: JSON has no NaN (a metric of a class
    that no image holds), and ``json.dumps`` would write a bare ``NaN`` that JSON readers refuse."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def print_json(doc) -> None:
    sys.stdout.write(json.dumps(finite(doc), indent=2, default=str, allow_nan=False) + "\n")


def add_original_masks(p) -> None:
    p.add_argument("--original-masks", action="store_true",
                   help="read the dataset files' masks, ignoring the corrected ones saved in the review store")


def add_unlabeled(p) -> None:
    p.add_argument("--unlabeled", action="append", default=[], metavar="FOLDER",
                   help="a folder of new, unlabeled images joining the dataset (repeatable; ids FOLDER_NAME/<name>); "
                        "their masks saved in the review store count as labels")


def open_or_fail(path: str, original_masks: bool = False, store=None, unlabeled=()):
    """The dataset at ``path`` (with the images of the ``unlabeled`` folders) with its corrected
    masks (from ``store``, default the review store), or its files' masks only when
    ``original_masks``; one line and exit 1 if it cannot open."""
    from ..data import DatasetError, open_dataset
    from ..review.corrections import apply_corrections
    try:
        ds = open_dataset(path, unlabeled)
    except DatasetError as e:
        raise CliError(str(e)) from None
    if len(ds) == 0:
        raise CliError(ds.empty_reason())
    return ds if original_masks else apply_corrections(ds, store)
