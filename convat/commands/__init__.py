"""Subcommands of the ``convat`` command line, one module each, each with ``register(subparsers)``."""

from __future__ import annotations

import argparse


class UsageError(Exception):
    """A command-line value that cannot work; the message names the flag and the value."""

    def __init__(self, flag: str, value: object, reason: str):
        super().__init__(f"argument {flag}: {value!r} {reason}")


def int_at_least(minimum: int):
    """An argparse ``type`` for integers >= ``minimum`` (the message names the value and the bound)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below the minimum {minimum}")
        return value
    parse.__name__ = f"integer >= {minimum}"
    return parse


def float_in(low: float, high: float | None = None, low_open: bool = False, high_open: bool = True):
    """An argparse ``type`` for floats in a range (``(low, high)`` open or closed as given)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        too_low = value <= low if low_open else value < low
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high or value != value:
            left, right = "(" if low_open else "[", ")" if high_open else "]"
            raise argparse.ArgumentTypeError(f"{value} is outside {left}{low}, {high if high is not None else 'inf'}"
                                             f"{right}")
        return value
    parse.__name__ = "number"
    return parse
