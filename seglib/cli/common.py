"""What every area of commands shares: the user-facing error, JSON output, progress bars and
opening a dataset or failing with one line."""
from __future__ import annotations

import json
import sys


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


def progress_bar(label: str):
    """A tqdm bar on stderr, as a (done, total) callback."""
    from tqdm import tqdm
    bar = {"b": None}

    def update(done: int, total: int) -> None:
        if bar["b"] is None:
            bar["b"] = tqdm(total=total, desc=label, file=sys.stderr, leave=False, unit="img")
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


def print_json(doc) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")


def open_or_fail(path: str):
    from ..data import DatasetError, open_dataset
    try:
        ds = open_dataset(path)
    except DatasetError as e:
        raise CliError(str(e)) from None
    if len(ds) == 0:
        first = ds.report.problems[0].problem if ds.report else "no images"
        raise CliError(f"{path}: {first}")
    return ds
