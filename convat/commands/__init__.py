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


def check_models(names: list[str], flag: str = "--models") -> None:
    """Every model name is registered with timm; the first that is not is a :class:`UsageError` naming it."""
    from convat.loso import check_model_name

    for name in names:
        try:
            check_model_name(name)
        except ValueError as exc:
            raise UsageError(flag, name, str(exc).split(": ", 1)[-1]) from None


def check_device(value: str, flag: str = "--device", here: bool = True) -> None:
    """``auto``, ``cpu``, ``mps``, ``cuda`` or ``cuda:N``, and, when the work runs ``here`` (not on the nodes of a
    cluster that this machine only submits to), usable on this machine."""
    import re

    from convat.training.loop import resolve_device

    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
        raise UsageError(flag, value, "is not one of auto, cpu, cuda, cuda:N, mps")
    if not here:
        return
    try:
        resolve_device(value)
    except (ValueError, RuntimeError) as exc:
        raise UsageError(flag, value, f"cannot be used: {exc}") from None


#: The file that marks each kind of output folder: a LOSO run (:class:`convat.runstore.RunStore`), a study
#: bundle (:data:`convat.experiments.study.BUNDLE_FILE`) and a sweep (written when the sweep finishes).
FOLDER_MARKERS = {"run folder": "config.json", "bundle folder": "bundle.json", "sweep folder": "sweep.csv"}


def check_folder(value: str | None, flag: str = "--out", what: str = "run folder") -> None:
    """An output folder may be missing (it is created) but must not be empty text (that is the current
    directory), a file, or a folder of another kind (:data:`FOLDER_MARKERS`: a LOSO run inside a study bundle,
    a bundle inside a run, ...; an unfinished sweep by its points' run folders, which exist once its first point
    has preprocessed). A run folder must also not hold other files without being a run."""
    import os

    if value is None:
        return
    if not value.strip():
        raise UsageError(flag, value, f"is empty; give a {what} (an empty value would write into the current "
                                      "directory)")
    if os.path.exists(value) and not os.path.isdir(value):
        raise UsageError(flag, value, f"is a file, not a {what}")
    if not os.path.isdir(value):
        return
    entries = set(os.listdir(value))
    for kind, marker in FOLDER_MARKERS.items():
        if kind != what and marker in entries:
            raise UsageError(flag, value, f"holds a {kind} ({marker}), not a {what}; give another folder")
    import glob

    if what != "sweep folder" and glob.glob(os.path.join(glob.escape(value), "*", "seed*-draw*", "config.json")):
        raise UsageError(flag, value, f"holds a sweep folder (runs in MODEL/seedN-drawM, sweep.csv not written "
                                      f"yet), not a {what}; give another folder")
    if what == "run folder" and FOLDER_MARKERS[what] not in entries:
        # what a run folder holds besides its marker (hidden files such as .lock* and *.tmp files aside): a folder
        # of other files and no config.json is not a run to resume, and a run written into it would mix with them
        from convat.runstore import FINISHED_FILES, SERVED_FROM

        run_entries = {"folds", "curves", *FINISHED_FILES, SERVED_FROM}
        foreign = sorted(e for e in entries - run_entries if not e.startswith(".") and not e.endswith(".tmp"))
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise UsageError(flag, value, f"holds other files ({shown}) and no run (config.json); give a new or "
                                          "empty folder, or a run folder to resume")


def check_data_root(dataset: str, data_root: str | None, flag: str = "--data-root") -> None:
    """SynthME is generated, not read: a data root given with it is said (in one warning line) to be unused,
    so that a user who meant a real dataset notices before the run."""
    import warnings

    if dataset == "synthme" and data_root:
        warnings.warn(f"{flag} {data_root} is not read: synthme is generated by the package (give --dataset to read "
                      "a real dataset from it)", stacklevel=2)


def check_distinct(values: list, flag: str) -> None:
    """Models, seeds and draws name runs: a repeated one would run (and report) the same point twice."""
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise UsageError(flag, " ".join(map(str, values)), f"repeats {repeated}; give each value once")
