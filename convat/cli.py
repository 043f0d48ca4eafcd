"""The ``convat`` command line: ``convat --help`` lists the subcommands.

Each subcommand lives in its own module under :mod:`convat.commands` and exposes
``register(subparsers)``; modules are discovered here, so adding a command touches no shared file.

User errors (a bad flag or value, a run folder holding another run, a dataset that cannot be read, ...) print
one line naming what is at fault and exit with status 2; ``--debug`` (anywhere on the line) shows the traceback
instead. Options must be spelled out: abbreviations such as ``--epoch`` for ``--epochs`` are refused.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import re
import sys
import warnings
from pathlib import Path

import convat.commands
from convat.commands import UsageError


class ConvatParser(argparse.ArgumentParser):
    """An argument parser that refuses abbreviated options and reports a bad argument in one line."""

    def __init__(self, *args, **kwargs):
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        self._args = list(sys.argv[1:] if args is None else args)  # for error(): what followed a flag
        return super().parse_known_args(args, namespace)

    def error(self, message: str):
        flags = re.fullmatch(r"argument ([\w/-]+): expected one argument", message)
        if flags:  # argparse reads a value such as -5G as an option; the = form passes it through
            args = getattr(self, "_args", [])
            for flag in flags.group(1).split("/"):
                at = args.index(flag) if flag in args else -1
                if 0 <= at < len(args) - 1 and args[at + 1].startswith("-"):
                    message += f" ({args[at + 1]} was read as an option; write {flag}={args[at + 1]})"
                    break
        parser = self
        if message.startswith("unrecognized arguments"):  # reported by the top parser: name the subcommand's help
            parser = _subcommand_parser(self, getattr(self, "_args", []))
        self.exit(2, f"{parser.prog}: error: {message} (see {parser.prog} --help)\n")


def _subcommand_parser(parser: argparse.ArgumentParser, args: list[str]) -> argparse.ArgumentParser:
    """The parser of the deepest subcommand that ``args`` name (``convat study run ...`` -> ``study run``'s), so
    that an unknown flag sends the reader to the help that lists the flags it meant."""
    for token in args:
        choices = next((a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if choices is None:
            break
        if token in choices:
            parser = choices[token]
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = ConvatParser(
        prog="convat",
        description="ConVAT micro-expression recognition: data, preprocessing, LOSO training, explanations.",
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error (any position)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(convat.commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"convat.commands.{info.name}").register(sub)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that describe a mistake in the command or its inputs (not a bug): shown in one line."""
    from convat.data.readers import DatasetError
    from convat.preprocess.face import FaceNotFoundError

    return (UsageError, ValueError, FileNotFoundError, NotADirectoryError, PermissionError, DatasetError,
            FaceNotFoundError)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    args = build_parser().parse_args(argv)
    shown = warnings.formatwarning
    if not debug:  # a warning to a user is a sentence, not a source line
        warnings.formatwarning = warning_line(args.command)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # the reader went away (`convat study show | head`): stop quietly, as a Unix tool does
        if debug or not _stdout_closed():
            raise  # another pipe (a worker's, a cluster's) broke: that is not the reader leaving
        try:  # so that flushing stdout at exit raises nothing more
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (AttributeError, OSError, ValueError):  # a stdout without a file descriptor
            pass
        return 128 + 13  # killed by SIGPIPE, by the shell's convention
    except _user_errors() as exc:
        if debug:
            raise
        print(f"convat {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = shown


def _stdout_closed() -> bool:
    """Whether standard output is the pipe that broke: the write end of a pipe whose reader has gone reports an
    error condition to ``poll`` (Linux, macOS); a stream without a descriptor is asked by flushing it."""
    import select

    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            return True
        except (OSError, ValueError):
            return False
        return False
    if not hasattr(select, "poll"):  # Windows: no way to ask; a broken pipe there is almost always stdout's
        return True
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


def warning_line(command: str):
    """A :data:`warnings.formatwarning` that shows convat's warnings as one sentence naming the command (no source
    line); another package's keep their category and place, so that they are not taken for convat's."""
    def format_warning(message, category, filename, lineno, line=None) -> str:
        if "convat" in Path(str(filename)).parts:
            return f"convat {command}: warning: {message}\n"
        return f"convat {command}: warning from {Path(str(filename)).name}:{lineno}: {category.__name__}: {message}\n"
    return format_warning


def one_line(exc: BaseException) -> str:
    """A user error in one line: its first line, and when that is only a heading (it ends with ``:``, e.g. "3
    annotation errors ...:") the first item under it too, so that the line names the file and row at fault."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    shown = 2 if lines[0].endswith(":") and len(lines) > 1 else 1
    rest = len(lines) - shown
    more = f" [{rest} more line{'s' if rest != 1 else ''} with --debug]" if rest else ""
    return " ".join(lines[:shown]) + more


if __name__ == "__main__":
    sys.exit(main())
