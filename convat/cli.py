"""The ``convat`` command line: ``convat --help`` lists the subcommands.

Each subcommand lives in its own module under :mod:`convat.commands` and exposes
``register(subparsers)``; modules are discovered here, so adding a command touches no shared file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import convat.commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convat",
        description="ConVAT micro-expression recognition: data, preprocessing, LOSO training, explanations.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(convat.commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"convat.commands.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
