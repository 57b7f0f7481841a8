"""Command line: ``seglib COMMAND ...`` or ``python -m seglib COMMAND ...`` (a public interface: keep it stable).

``--json`` prints one JSON document on stdout; progress goes to stderr; exit status 0 on
success, 1 with a one-line error on stderr otherwise.

One module per area of commands; each has ``register(subparsers)``, which adds its commands
with ``set_defaults(run=fn)`` where ``fn(args) -> int``. A new area is a new module here, imported
and registered below.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import augment, classes, data, label_next, outliers, predict, quality, review, train, weights
from .common import CliError

AREAS = (data, classes, outliers, review, augment, train, quality, predict, label_next, weights)
DESCRIPTION = "Review, clean and augment semantic-segmentation datasets; train and compare models."


def build_parser() -> argparse.ArgumentParser:
    prog = "python -m seglib" if Path(sys.argv[0]).name == "__main__.py" else "seglib"
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for area in AREAS:
        area.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # An entry point: no network at run time (albumentations' update check, the Hugging Face hub).
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except CliError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # the review store's database down or refusing: its one line, no traceback
        store = sys.modules.get("seglib.review.store")
        if store is None or not isinstance(e, store.ReviewStoreError):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 1
