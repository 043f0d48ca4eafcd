"""What the chapters share: loading a dataset by name and the default configurations.

Chapters import these instead of repeating settings, so two chapters that run the same experiment hit the
same cached run (see :func:`convat.loso.cached_run`) and a reader switches every chapter to the real data by
changing the parameters cell only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from convat.data.records import ClipRecord
from convat.preprocess.pipeline import PreprocessConfig
from convat.recipe import RECIPE, Budget, is_smoke_test
from convat.training.config import TrainConfig

if TYPE_CHECKING:
    import pandas as pd

def inline_figures() -> bool:
    """Draw figures inline when running in a Jupyter kernel whose matplotlib backend would drop them.

    A kernel started with ``MPLBACKEND=Agg`` (common on headless servers and in CI) renders no figure: the
    notebook's outputs, and so the book's pages, silently lose every plot. Every chapter imports this module in
    its parameters cell, and importing it calls this function, so the chapters show their figures under any
    ``MPLBACKEND`` and on any Jupyter front end. Outside a kernel (scripts, tests) it does nothing. Returns
    whether it switched the backend.
    """
    import sys

    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    kernel = shell is not None and ("IPKernelApp" in getattr(shell, "config", {})
                                    or any(c.__name__ == "ZMQInteractiveShell" for c in type(shell).__mro__))
    if not kernel:
        return False
    from convat.site.execution import INLINE_BACKEND

    backend = os.environ.get("MPLBACKEND", "")
    if "matplotlib" in sys.modules:
        backend = sys.modules["matplotlib"].get_backend()
    if not backend or "inline" in backend.lower():
        return False
    shell.run_line_magic("matplotlib", "inline")
    os.environ["MPLBACKEND"] = INLINE_BACKEND
    return True


def find_data_root(data_root: str | Path | None = None) -> Path | None:
    """The data root: the argument, else ``$CONVAT_DATA``, else ``None`` (SynthME needs none)."""
    if data_root is not None:
        return Path(data_root).expanduser()
    env = os.environ.get("CONVAT_DATA")
    return Path(env).expanduser() if env else None


def describe_data_root(data_root: str | Path | None = None, shown: int = 12) -> str:
    """One sentence on the data root a chapter would read (:func:`find_data_root`): none set (the chapters use
    SynthME), a folder and its first ``shown`` entries, or a path that does not exist (and what to check)."""
    root = find_data_root(data_root)
    if root is None:
        return "No data root is set (`DATA_ROOT` is `None` and `$CONVAT_DATA` is unset), so the chapters use SynthME."
    if root.is_dir():
        entries = sorted(root.iterdir())
        listed = ", ".join(f"`{p.name}`" for p in entries[:shown])
        more = f" and {len(entries) - shown} more" if len(entries) > shown else ""
        return f"The data root is `{root}`; it holds: {listed or 'nothing'}{more}."
    if root.exists():
        return f"The data root `{root}` is a file, not a folder: check `DATA_ROOT` or `$CONVAT_DATA`."
    return f"The data root `{root}` does not exist: check `DATA_ROOT` or `$CONVAT_DATA`."


def dataset_names() -> list[str]:
    """Every name :func:`load_records` (and ``convat loso --dataset``) accepts."""
    from convat.data.readers import DATASETS, PROTOCOLS

    return ["synthme", *DATASETS, *PROTOCOLS]


def load_records(dataset: str = RECIPE.dataset, profile: str = RECIPE.profile, data_root: str | Path | None = None,
                 seed: int = RECIPE.data_seed) -> list[ClipRecord]:
    """Clip records of a dataset by name: ``synthme`` (built in) or a real dataset under the data root.

    Real datasets (``casme2``, ``samm``, ``smic``, ``megc2019``) and named protocols (``casme2_5class``,
    ``samm_5class``, ``casme2_megc3``, ``samm_megc3``: one class scheme each, with its own label map) are read
    strictly from ``data_root`` (default ``$CONVAT_DATA``): annotation errors raise with the report (see
    ``convat data check``); ``profile`` and ``seed`` (the data seed: which SynthME draw) apply to SynthME only.
    """
    if dataset == "synthme":
        from convat.data.synth import generate

        return generate(profile, seed=seed)
    from convat.data.readers import DATASETS, PROTOCOLS, read_protocol

    if dataset in DATASETS or dataset in PROTOCOLS:
        return read_protocol(dataset, find_data_root(data_root), strict=True)[0]
    raise ValueError(f"unknown dataset {dataset!r}; available: {', '.join(map(repr, dataset_names()))}")


def protocol_sizes(data_root: str | Path) -> pd.DataFrame:
    """Per protocol of the readers (and the MEGC2019 composite): its clip count on the copy in ``data_root`` (a
    lenient read; ``None`` where the copy lacks that dataset) beside the count on the official annotation files
    (:data:`convat.data.errata.PROTOCOL_COUNTS`), so a reader sees at once which protocols their copy
    reproduces."""
    import pandas as pd

    from convat.data import errata
    from convat.data.readers import PROTOCOLS, DatasetError, read_protocol

    def size(name: str) -> int | None:
        try:
            return len(read_protocol(name, data_root, strict=False)[0])
        except DatasetError:  # a copy that holds only some of the datasets
            return None

    return pd.DataFrame([{"protocol": name, "clips on this copy": size(name),
                          "official files": errata.PROTOCOL_COUNTS[PROTOCOLS.get(name, (name, "megc3"))]}
                         for name in (*PROTOCOLS, "megc2019")]).set_index("protocol")


def key_results(items: Mapping[str, object], dataset: str, profile: str) -> str:
    """The "Key results" box of a chapter: its headline numbers, each computed by the chapter's cells and passed in
    as ``label -> value`` (floats shown to three decimals), under a title that says what data they come from (the
    quick SynthME profile is labelled a smoke test)."""
    if not items:
        raise ValueError("key_results needs at least one item")
    source = (f"SynthME, {profile} profile" + (": a smoke test, no ranking" if profile == "quick" else "")
              if dataset == "synthme" else dataset)
    lines = [f"> **Key results** (computed on this page; {source})", ">"]
    for label, value in items.items():
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        lines.append(f"> - {label}: **{shown}**")
    return "\n".join(lines)


def profile_note(dataset: str, profile: str) -> str:
    """The label every results page shows beside its numbers: the quick SynthME profile is a smoke test.

    Ten subjects and one training seed show that the method runs and what its outputs look like; they cannot
    rank models (the smoke-test grid, ``results/study-quick``, measures how far a seed alone moves a deep model's
    UF1 there). Model comparisons come from
    the reference study (``make study``, rendered in the results chapter) or the real data.
    """
    if is_smoke_test(dataset, profile):
        return ("> **Smoke test.** These numbers come from SynthME's *quick* profile: 10 subjects, 100 clips, "
                "one training seed. They show the method running, not which model is better; no ranking is "
                "drawn from them. Rankings come from the reference study over seeds (results chapter) or from "
                "`PROFILE = \"composite\"` and the real data.")
    if dataset == "synthme":
        return (f"> SynthME, *{profile}* profile: synthetic data generated by this package; comparisons need "
                "several training seeds and draws (the reference study), not one run.")
    return (f"> Real data: `{dataset}`. One training seed: compare models over several seeds (the reference "
            "study) before calling one better.")


def default_preprocess(size: int | None = None, flow: str | None = None, input: str | None = None
                       ) -> PreprocessConfig:
    """The reference recipe's preprocessing (:data:`convat.recipe.RECIPE`), with the chapter's input size, flow
    method or ``input`` (the apex face image ``apex_grey`` / ``apex_rgb``, or flow and apex together) when given.
    """
    changes = {k: v for k, v in {"img_size": size, "flow": flow, "input": input}.items() if v is not None}
    return RECIPE.with_(**changes).preprocess_config()


def training_budget(dataset: str = RECIPE.dataset, profile: str = RECIPE.profile, epochs: int | None = None,
                    steps: int | None = None) -> Budget:
    """The recipe's training budget per fold for ``dataset`` and ``profile`` (:meth:`convat.recipe.Recipe.budget`):
    a short smoke-test budget on SynthME's quick profile, the tuned step budget otherwise; ``epochs`` or ``steps``
    (a chapter's ``EPOCHS`` / ``STEPS`` parameters) replace it."""
    return RECIPE.budget(dataset, profile, epochs=epochs, steps=steps)


def default_train(model: str | None = None, budget: Budget | int | None = None, device: str | None = None,
                  seed: int | None = None, **overrides) -> TrainConfig:
    """The reference recipe's training (:data:`convat.recipe.RECIPE`) for ``model``, on ``device``, with the
    training seed ``seed`` and the budget ``budget`` (a :class:`~convat.recipe.Budget`, e.g. from
    :func:`training_budget`; an int is a number of epochs; None: the recipe's own); ``overrides`` are further
    :class:`~convat.training.loop.TrainConfig` fields (e.g. ``lr``, ``beta``)."""
    changes: dict = {k: v for k, v in {"model": model, "device": device, "seed": seed}.items() if v is not None}
    if isinstance(budget, Budget):
        changes.update(budget.train_fields())
    elif budget is not None:
        changes.update(epochs=int(budget), steps=None)
    return RECIPE.train_config(**{**changes, **overrides})


# --- one switch for the real data: environment variables drive every chapter's parameters cell ----------------

#: The environment variable behind each chapter parameter that :func:`param` reads; any other parameter ``NAME``
#: is read from ``CONVAT_NAME``.
PARAM_ENV = {"DATASET": "CONVAT_DATASET", "PROFILE": "CONVAT_PROFILE", "DATA_ROOT": "CONVAT_DATA",
             "DEVICE": "CONVAT_DEVICE"}

_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def fold_workers() -> int:
    """Folds a chapter trains at once on the CPU (its ``PARALLEL_FOLDS``): one worker process per core, each with
    one thread.

    Why: on the reference machine (2 cores) two workers with one thread each trained composite folds 1.42x
    faster than one process with two threads (``benchmarks/results/loso.json``; a fold's small convolutions use
    a second thread poorly), and one thread per fold makes the probabilities independent of how many cores a
    reader's machine has (the thread split decides the order of floating-point sums). On a GPU the engine trains
    all folds as one batched model and does not use this number.
    """
    from convat.runtime import cpu_cores

    return cpu_cores()


def param_env(name: str) -> str:
    """The environment variable that sets the chapter parameter ``name`` (``DATASET`` -> ``CONVAT_DATASET``)."""
    return PARAM_ENV.get(name, f"CONVAT_{name}")


def param(name: str, default, environ: Mapping[str, str] | None = None):
    """A chapter parameter: the value of its environment variable (see :func:`param_env`), else ``default``.

    This is what lets ``make book DATASET=casme2 DATA=/path`` (or ``export CONVAT_DATASET=casme2``) switch every
    chapter at once without editing nine parameters cells. The text of the variable is converted to the type of
    ``default`` (``int``, ``float``, ``bool``; ``None`` and ``str`` defaults take the text as is); an empty
    variable counts as unset. Papermill and ``convat chapter -p NAME=VALUE`` inject their values after the
    parameters cell, so they override both.
    """
    environ = os.environ if environ is None else environ
    variable = param_env(name)
    text = environ.get(variable, "")
    if text == "":
        return default
    try:
        if isinstance(default, bool):
            if text.lower() not in _TRUE | _FALSE:
                raise ValueError
            return text.lower() in _TRUE
        if isinstance(default, int | float):
            return type(default)(text)
    except ValueError:
        raise ValueError(f"${variable}={text!r} is not a valid {type(default).__name__} for {name}") from None
    return text


# --- time budgets: how long each chapter may take, stated and checked against the build's measurement -----------

#: Seconds each chapter may take in the quick profile on the reference machine (2 CPU cores, quiet), executed in
#: book order with a fresh cache. Every budget is far below the 900 s cell timeout of ``_config.yml`` so that a
#: machine three times slower (a busy CI runner) still builds. The build log and the environment page compare
#: the measured times with these.
CHAPTER_BUDGETS_S: dict[str, float] = {
    "01_paper": 30, "02_data": 60, "02b_real_datasets": 30, "03_preprocessing": 60, "04_model": 90,
    "05_loso": 60, "06_results": 45, "07_explainability": 75, "08_pitfalls": 120, "09_real_data": 30,
    "10_environment": 30, "course_guide": 30,
}

#: The cell timeout of the book build (``execute.timeout`` in ``_config.yml``).
CELL_TIMEOUT_S = 900


def budget_table(times: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Each chapter's budget, and (when ``times`` maps chapter names or ``book/<name>`` to seconds) the measured
    time, its share of the budget and whether it is within it. Chapters without a budget are listed too."""
    import pandas as pd

    measured = {Path(k).name: float(v) for k, v in (times or {}).items()}
    names = list(CHAPTER_BUDGETS_S) + [n for n in measured if n not in CHAPTER_BUDGETS_S]
    rows = []
    for name in names:
        budget = CHAPTER_BUDGETS_S.get(name)
        row = {"chapter": name, "budget (s)": budget}
        if times is not None:
            seconds = measured.get(name)
            row["measured (s)"] = None if seconds is None else round(seconds, 1)
            row["of budget"] = None if seconds is None or budget is None else f"{seconds / budget:.0%}"
            row["within budget"] = None if seconds is None or budget is None else seconds <= budget
        rows.append(row)
    return pd.DataFrame(rows).set_index("chapter")


# --- which results a page served from the package's caches, and keyed on what ------------------------------------

def served_from_cache(run, since: float) -> tuple[int, int]:
    """``(folds served from the cache, folds in the run)`` of a finished :class:`convat.loso.LosoRun`.

    A fold file written before ``since`` (a ``time.time()`` taken before the run was requested) was computed by
    an earlier build or chapter and served from ``$CONVAT_CACHE``; the others were trained now.
    """
    files = sorted((Path(run.path) / "folds").glob("*.csv"))
    return sum(f.stat().st_mtime < since for f in files), len(files)


def served_cpu_note(cpus: list[str]) -> str:
    """A sentence for runs served from a committed bundle whose folds were trained on another CPU than this
    machine's (``cpus``: the :func:`convat.runtime.cpu_identity` of each, ``""`` where not recorded): the page
    shows the bundle's numbers, and a recomputation here may move a few predictions, because another CPU's float
    kernels change the last bits of every training step. Empty when every fold names this CPU."""
    from convat import runtime

    here = runtime.cpu_identity() or "unknown"
    named = sorted({c for c in cpus if c})
    if not cpus or (named == [here] and "" not in cpus):
        return ""
    trained = ", ".join(named + (["a CPU not recorded"] if "" in cpus else []))
    return (f" The served folds were trained on {trained}; this machine is {here}. Recomputed here, a few of their "
            "predictions could differ, since another CPU's float kernels change the last bits of every training "
            "step.")


def cache_note(runs: Mapping[str, object], since: float) -> str:
    """One Markdown paragraph saying, for each named run, whether this execution trained it or served it from
    the cache (or from a committed result bundle that holds exactly this run, see
    :func:`convat.experiments.study.bundled_run`), and the key the cache used (so a reader knows a cached number
    is the one this code computes): runs served from the same committed bundle share one clause, which names the
    bundle and its cells, and the others name their cache folder."""
    import json

    from convat.runstore import SERVED_FROM

    parts: list[str] = []
    served: dict[tuple[str, str, str], list[tuple[str, str, int]]] = {}  # (bundle, code, commit): runs
    served_cpus: list[str] = []
    for name, run in runs.items():
        cached, total = served_from_cache(run, since)
        folder = Path(run.path).name
        marker = Path(run.path) / SERVED_FROM
        if marker.exists():
            src = json.loads(marker.read_text())
            key = (src["bundle"], str(src.get("code")), str(src.get("bundle_commit", src.get("commit")))[:12])
            served.setdefault(key, []).append((name, src["cell"], total - cached))
            served_cpus.extend(src.get("cpus") or [])  # absent in markers written before they recorded it
            continue
        if cached == total and total:
            how = f"served from the cache ({total} folds)"
        elif cached == 0:
            how = f"trained in this execution ({total} folds)"
        else:
            how = f"resumed: {cached} of {total} folds from the cache, {total - cached} trained now"
        parts.append(f"{name}: {how}, run `{folder}`")
    clauses = []
    for (bundle, code, commit), items in served.items():
        names = ", ".join(name for name, _, _ in items)
        tails = {cell.rsplit("/", 1)[-1] for _, cell, _ in items}
        if len(items) > 1 and len(tails) == 1 and all(cell == f"cells/{name}/{next(iter(tails))}"
                                                      for name, cell, _ in items):
            where = f"each from its cell `cells/<model>/{next(iter(tails))}`"
        else:
            where = ("cell " if len(items) == 1 else "cells ") + ", ".join(f"`{cell}`" for _, cell, _ in items)
        damaged = ", ".join(f"{name} {n}" for name, _, n in items if n)
        clauses.append(f"{names}: served from the committed bundle `results/{bundle}` ({where}, made by the same "
                       f"code, fingerprint `{code}`, for this machine's device type and torch version; the bundle "
                       f"was last updated at commit `{commit}`) and copied into the cache"
                       + (f" (damaged folds recomputed now: {damaged})" if damaged else ""))
    return ("LOSO runs on this page — " + "; ".join(clauses + parts) + ". A run's folder is named by a hash of the "
            "motion maps, the labels, the folds, the training configuration and the source of the `convat` package "
            "(`convat.loso.run_key`), so a cached run is the run this code would train; `$CONVAT_CACHE` is "
            f"`{_cache_root()}`." + served_cpu_note(served_cpus))


def _cache_root() -> str:
    from convat.preprocess.cache import default_cache_dir

    return str(default_cache_dir())


inline_figures()
