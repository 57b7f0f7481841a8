"""Command line: ``python -m seglib COMMAND ...`` (a public interface: keep it stable).

``--json`` prints one JSON document on stdout; progress goes to stderr; exit status 0 on
success, 1 with a one-line error on stderr otherwise.
"""
from __future__ import annotations

import argparse
import json
import sys

COMMANDS: dict[str, tuple] = {}  # name -> (help, run); run.add_arguments(parser) sets its flags


def command(name: str, help: str):
    """Register ``run(args) -> int``; give it ``run.add_arguments = fn(parser)`` for its flags.

    New commands go in a module of ``seglib/commands/``; it is imported automatically."""
    def wrap(fn):
        COMMANDS[name] = (help, fn)
        return fn
    return wrap


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


def print_json(doc) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")


def open_or_fail(path: str):
    from .data import DatasetError, open_dataset
    try:
        ds = open_dataset(path)
    except DatasetError as e:
        raise CliError(str(e)) from None
    if len(ds) == 0:
        first = ds.report.problems[0].problem if ds.report else "no images"
        raise CliError(f"{path}: {first}")
    return ds


# =======================================================================================
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m seglib", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, fn) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        fn.add_arguments(p)
        p.set_defaults(run=fn)
    return parser


def _load_commands() -> None:
    """Every module of ``seglib.commands`` registers its commands with @command on import."""
    import importlib
    import pkgutil

    from . import commands
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{info.name}")


def main(argv: list[str] | None = None) -> int:
    _load_commands()
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except CliError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
