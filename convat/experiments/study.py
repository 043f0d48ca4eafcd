"""The reference study: every model x training seed x data draw under LOSO, as a committed result bundle.

One command (``convat study run``, ``make study``) runs the grid of a :class:`StudySpec` into a bundle folder
(default ``results/study/``). The deep cells are points of a :mod:`convat.sweep` (one LOSO run folder each,
``cells/<model>/seed<S>-draw<D>``, written by :func:`convat.loso.run_loso` through a
:class:`convat.runstore.RunStore`: identity in ``config.json``, checked fold files, a lock), run on this
machine or as a Slurm job array with the sweep's backends; so a killed study resumes at its first missing
fold, and a bundle committed half-way is continued by the next machine instead of restarted.
The linear reference runs on the same folds in every draw. ``bundle.json`` records the spec, the
code fingerprint, the commit, the machine, the date and each cell's wall and CPU time.

:func:`load_study` reads a bundle back (predictions of every cell, curves, provenance); :func:`study_status`
says whether the code that decides results has changed since (the bundle is then *stale*, and says why);
:func:`study_table` and :func:`study_comparisons` give mean +- SD over seeds and the paired verdicts that the
results chapter renders; :func:`reproduce_slice` recomputes a few folds of one cell from scratch, which the
tests compare with the committed predictions.
"""

from __future__ import annotations

import errno
import json
import math
import os
import platform
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from convat import runstore, runtime
from convat.recipe import RECIPE, is_smoke_test

BUNDLE_FILE = "bundle.json"
#: A linear cell's training fit per fold (columns ``fold``, ``train_accuracy``): the reference a deep model's
#: fit of its own training clips is judged against.
TRAIN_FIT_FILE = "train_fit.csv"
LINEAR = "linear"
DEFAULT_MODELS = ("convat_tiny", "ststnet", "offapexnet", "vit_me_tiny", "resnet_me")


@dataclass(frozen=True)
class StudySpec:
    """The grid of a study and the recipe every cell shares (all recorded in ``bundle.json``)."""

    dataset: str = "synthme"
    profile: str = "composite"
    data_seeds: tuple[int, ...] = (0,)
    """SynthME draws (ignored for a real dataset, which has one)."""
    train_seeds: tuple[int, ...] = (0, 1, 2)
    models: tuple[str, ...] = DEFAULT_MODELS
    linear: bool = True
    """Also run the logistic-regression reference on the same folds (deterministic: one run per draw)."""
    img_size: int = RECIPE.img_size
    flow: str = RECIPE.flow
    epochs: int | None = None
    steps: int | None = None
    """The budget per fold, ``epochs`` or ``steps``; neither given is the recipe's budget for the dataset and
    profile (:meth:`convat.recipe.Recipe.budget`), written into the spec so that the bundle records it."""
    train_overrides: dict = field(default_factory=dict)
    """Further :class:`convat.training.loop.TrainConfig` fields shared by every deep cell."""

    def __post_init__(self) -> None:
        if not self.train_seeds or not self.data_seeds:
            raise ValueError("a study needs at least one training seed and one data seed")
        budget = RECIPE.budget(self.dataset, self.profile, epochs=self.epochs, steps=self.steps)
        object.__setattr__(self, "epochs", budget.epochs)
        object.__setattr__(self, "steps", budget.steps)
        if not self.models and not self.linear:
            raise ValueError("a study needs at least one model (or the linear reference)")
        for name, values in (("train_seeds", self.train_seeds), ("data_seeds", self.data_seeds)):
            if len(set(values)) != len(values) or min(values) < 0:
                raise ValueError(f"{name} must be distinct non-negative integers, got {list(values)}")

    def draws(self) -> tuple[int, ...]:
        return self.data_seeds if self.dataset == "synthme" else (0,)

    @property
    def smoke(self) -> bool:
        """SynthME's quick profile (a few subjects): a smoke test, from which no model is ranked."""
        return is_smoke_test(self.dataset, self.profile)

    def cells(self) -> list[tuple[int, str, int | None]]:
        """``(data_seed, model, train_seed)`` of every cell, in the order they run: per draw the linear reference
        (``train_seed`` None; minutes), then every model at the first training seed, then at the next, so that a
        study cut short has compared every model on the same seeds rather than one model on all of them."""
        out: list[tuple[int, str, int | None]] = []
        for draw in self.draws():
            if self.linear:
                out.append((draw, LINEAR, None))
            out += [(draw, model, seed) for seed in self.train_seeds for model in self.models]
        return out

    def to_json(self) -> dict:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_json(cls, value: dict) -> StudySpec:
        value = dict(value)
        for key in ("data_seeds", "train_seeds", "models"):
            value[key] = tuple(value[key])
        return cls(**value)


def default_bundle(name: str = "study") -> Path:
    """A committed bundle, ``results/<name>`` next to the ``convat`` package (a source checkout or an editable
    install; an installed wheel has none): ``study`` is the reference study (``make study``), ``study-quick``
    the smoke-test grid over seeds and draws on the quick profile (``make study-quick``)."""
    return runstore.PACKAGE_ROOT.parent / "results" / name


def _short_commit(commit: str) -> str:
    """A recorded commit for the page: the hash cut to 12 digits, its ``+dirty`` mark kept."""
    sha, plus, tail = commit.partition("+")
    return sha[:12] + plus + tail


#: ``cpu_scope`` of a cell whose ``cpu_s`` counts the study process and its fold and clip workers
#: (:func:`convat.runtime.process_tree_cpu_s`); a cell without it was recorded before, from the parent alone.
CPU_SCOPE = "process tree"


def provenance_lines(study: Study) -> list[str]:
    """What made the bundle, for the page: commit, code fingerprint, machine, date, cells and their time.

    CPU time is summed only over the cells that recorded it for the whole process tree (the folds train in
    worker processes, so the parent's own CPU time says nothing); the others are counted, not guessed."""
    r = study.record
    machine = r.get("machine", {})
    cells = list(r["cells"].values())
    wall = sum(c.get("wall_s", 0.0) for c in cells)
    timed = [c for c in cells if c.get("cpu_scope") == CPU_SCOPE and "cpu_s" in c]
    cpu = sum(c["cpu_s"] for c in timed)
    # cells whose folds were partly written before manifests recorded their times, possibly over several sessions
    partial = sum(1 for c in cells if c.get("untimed_folds"))
    if not timed:
        cpu_text = "CPU time not recorded"
    elif len(timed) == len(cells):
        cpu_text = f"{cpu / 60:.1f} min CPU"
    else:
        cpu_text = (f"{cpu / 60:.1f} min CPU over the {len(timed)} cells that recorded it for the study process "
                    "and its workers (the others' was not recorded)")
    commits = Counter(c.get("commit", "") for c in cells)
    per_cell = ", ".join(f"`{_short_commit(k)}` ({n})" for k, n in sorted(commits.items()) if k)
    if per_cell and (len(commits) > 1 or "" in commits):
        per_cell = f"; cells finished at commit {per_cell}" + (
            f", {commits['']} before cells recorded theirs" if "" in commits else "")
    elif per_cell:
        per_cell = ""  # every cell finished at one commit, the bundle's
    # the CPU each cell finished on, listed when the cells do not all name the bundle's machine's
    processors = Counter(runtime.recorded_cpu(c) or "" for c in cells)
    processor = runtime.recorded_cpu(machine, "processor") or "?"
    per_cpu = ""
    if set(processors) - {""} and set(processors) != {processor}:
        per_cpu = "; cells finished on " + ", ".join(f"{k} ({n})" for k, n in sorted(processors.items()) if k) + (
            f", {processors['']} before cells recorded it" if "" in processors else "")
    return [
        f"made by `convat study run`, last written on {r.get('date', '?')} at commit "
        f"`{_short_commit(r.get('commit', '?'))}`{per_cell}; code fingerprint `{r.get('code', '?')}`",
        f"machine: {machine.get('device', '?')} ({processor}, {machine.get('cpus', '?')} CPUs, "
        f"{machine.get('platform', '?')}, torch {machine.get('torch', '?')}){per_cpu}",
        f"{len(r['cells'])} of {len(study.spec.cells())} cells, {wall / 60:.1f} min wall, {cpu_text}"
        + (f", {r['parallel_folds']} folds at a time" if r.get("parallel_folds", 1) > 1 else "") + (
            f"; for {partial} cell{'s' if partial > 1 else ''} with folds from before folds recorded their times, "
            "the wall time may count only the session that finished the cell" if partial else ""),
    ]


def cell_dir(out: Path, draw: int, model: str, seed: int | None) -> Path:
    """A deep cell's folder is its sweep point's, under ``cells/`` (``cells/<model>/seed<S>-draw<D>``); the
    linear reference's is ``cells/linear/draw<D>``."""
    from convat.sweep import SweepPoint

    if seed is None:
        return Path(out) / "cells" / model / f"draw{draw}"
    return SweepPoint(model, seed, draw).folder(Path(out) / "cells")


def sweep_spec(spec: StudySpec, data_root: str | Path | None = None, device: str = "auto",
               parallel_folds: int = 1, strategy: str = "auto"):
    """The :class:`convat.sweep.SweepSpec` that runs the study's deep cells."""
    from convat.sweep import SweepSpec

    return SweepSpec(dataset=spec.dataset, profile=spec.profile,
                     data_root=str(data_root) if data_root is not None else None, img_size=spec.img_size,
                     flow=spec.flow, epochs=spec.epochs, steps=spec.steps, device=device, strategy=strategy,
                     parallel_folds=parallel_folds, train_overrides=dict(spec.train_overrides))


def machine_record() -> dict:
    """The machine a result was computed on (platform, CPUs, torch and its threads, the GPU's name)."""
    import torch

    return {"platform": platform.platform(), "processor": runtime.cpu_model(), "cpu_kernels": runtime.cpu_kernels(),
            "cpus": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}


def _fold_threads(parallel_folds: int) -> int:
    """The CPU threads each fold trains with: the worker pool's share per worker, or this process's threads."""
    import torch

    from convat import runtime

    return runtime.worker_threads(parallel_folds) if parallel_folds > 1 else torch.get_num_threads()


def _read_bundle(out: Path) -> dict | None:
    path = Path(out) / BUNDLE_FILE
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise runstore.RunStoreError(f"{path}: unreadable study record ({err}); delete it to start over") from None
    if not (isinstance(record, dict) and isinstance(record.get("spec"), dict)
            and isinstance(record.get("cells"), dict)):
        raise runstore.RunStoreError(f"{path}: not a study record (a JSON object with 'spec' and 'cells'); "
                                     "restore it from git or delete it to start over")
    return record


def _write_bundle(out: Path, record: dict) -> None:
    runstore.atomic_write_text(Path(out) / BUNDLE_FILE, json.dumps(record, indent=2, sort_keys=True) + "\n")


def run_study(
    spec: StudySpec, out: str | Path = "results/study", data_root: str | Path | None = None, device: str = "auto",
    parallel_folds: int = 1, progress: bool = True, cells: Sequence[tuple[int, str, int | None]] | None = None,
    backend: str = "local", jobs: int = 1, cluster: str | None = None, strategy: str = "auto",
) -> dict:
    """Run (or resume) every cell of ``spec`` into the bundle folder ``out``; returns the bundle record.

    A folder that holds another spec is refused, naming the differing fields. ``cells`` restricts the run to
    some cells. With the local backend and ``jobs=1`` the cells run one after the other and each records its
    own wall and CPU time; otherwise the deep cells go to :func:`convat.sweep.run_sweep` (``jobs`` local
    workers, or ``backend="submitit"`` for a Slurm job array, ``cluster="debug"``/``"local"`` without Slurm)
    and the record keeps the batch's wall time.
    """
    with runstore.output_folder(out) as out:
        return _run_cells(spec, out, data_root, device, parallel_folds, progress, cells, backend, jobs, cluster,
                          strategy)


def _run_cells(
    spec: StudySpec, out: Path, data_root: str | Path | None, device: str, parallel_folds: int, progress: bool,
    cells: Sequence[tuple[int, str, int | None]] | None, backend: str, jobs: int, cluster: str | None, strategy: str,
) -> dict:
    """The body of :func:`run_study`, in the bundle folder ``out`` (which exists)."""
    from tqdm.auto import tqdm

    from convat.experiments.synth_difficulty import linear_baseline
    from convat.site.environment import git_commit
    from convat.sweep import SweepPoint, point_inputs, run_point, run_sweep

    record = _read_bundle(out)
    if record is not None:
        diffs = runstore.identity_differences(record["spec"], spec.to_json())
        if diffs:
            raise runstore.RunStoreError(f"{out} holds a study with another spec ({'; '.join(diffs)}); "
                                         "use another folder")
    else:
        record = {"spec": spec.to_json(), "cells": {}}
    todo = list(cells) if cells is not None else spec.cells()
    unknown = [c for c in todo if c not in spec.cells()]
    if unknown:
        raise ValueError(f"cells {unknown} are not in the study's grid")
    sweep = sweep_spec(spec, data_root, device, parallel_folds, strategy)
    root = str(out / "cells")

    def note(draw: int, model: str, seed: int | None, took: dict) -> None:
        key = cell_dir(out, draw, model, seed).relative_to(out).as_posix()
        previous = record["cells"].get(key, {})
        # a resumed cell keeps the time of the run that trained it
        keep = previous if previous.get("wall_s", 0) > took.get("wall_s", 0) else took
        if seed is not None:  # a deep cell: its folds record when, and at what CPU cost, each session wrote them
            store = runstore.RunStore(cell_dir(out, draw, model, seed))
            (sessions, untimed), (cpu, cpu_untimed) = store.session_wall_s(), store.session_cpu_s()
            if not untimed:  # every fold timed: the sum over the sessions that trained the cell
                keep = {**keep, "wall_s": sessions}
            keep = {k: v for k, v in keep.items() if k not in ("cpu_s", "cpu_scope")}
            if not cpu_untimed:
                keep.update(cpu_s=cpu, cpu_scope=CPU_SCOPE)
            keep = {**keep, "untimed_folds": untimed, "cpu_untimed_folds": cpu_untimed}
        # the threads each fold of this cell trained with (they change the last bits of the probabilities)
        # (a cell recorded before cells kept their own: the bundle's, which was the same for all of them then)
        threads = (previous.get("fold_threads", record.get("fold_threads")) if previous
                   else _fold_threads(parallel_folds))
        # the commit that finished the cell (kept when a later run notes it again; absent for cells finished before
        # cells recorded it)
        now = git_commit(ignore=[out])
        commit = previous.get("commit") if previous else now
        # the CPU that finished the cell (its float kernels move the last bits; absent for cells finished before
        # cells recorded it)
        cpu = ({k: previous[k] for k in ("cpu", "cpu_kernels") if previous.get(k)} if previous else
               runtime.cpu_record())
        record["cells"][key] = {"draw": draw, "model": model, "train_seed": seed, **keep, "fold_threads": threads,
                                **({"commit": commit} if commit else {}), **cpu}
        record.update(code=runstore.code_fingerprint(), commit=now, machine=machine_record(),
                      date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), parallel_folds=parallel_folds,
                      fold_threads=_fold_threads(parallel_folds))
        _write_bundle(out, record)

    deep = [c for c in todo if c[1] != LINEAR]
    if deep and (backend != "local" or jobs > 1):
        wall = time.perf_counter()
        run_sweep([SweepPoint(m, s_, d) for d, m, s_ in deep], sweep, root, backend=backend, jobs=jobs,
                  cluster=cluster, on_done=lambda p, _row: note(p.draw, p.model, p.seed, {}))
        record["batch_wall_s"] = round(time.perf_counter() - wall, 2)
        for d, m, s_ in deep:
            note(d, m, s_, {})
        deep = []
    bar = tqdm([c for c in todo if c[1] == LINEAR or deep], desc="study", unit="cell", disable=not progress)
    for draw, model, seed in bar:
        bar.set_postfix_str(f"d{draw} {model}" + ("" if seed is None else f" s{seed}"))
        wall, cpu = time.perf_counter(), runtime.process_tree_cpu_s()
        if model == LINEAR:
            folder = cell_dir(out, draw, model, seed)
            folder.mkdir(parents=True, exist_ok=True)
            if not (folder / "predictions.csv").exists() or not (folder / TRAIN_FIT_FILE).exists():
                x, table = point_inputs(SweepPoint(LINEAR, 0, draw), sweep)
                _write_linear_cell(folder, linear_baseline(x, table))
        else:
            run_point(SweepPoint(model, seed, draw), sweep, root)
        spent = None if cpu is None else runtime.process_tree_cpu_s()
        note(draw, model, seed, {"wall_s": round(time.perf_counter() - wall, 2)} if spent is None else
             {"wall_s": round(time.perf_counter() - wall, 2), "cpu_s": round(spent - cpu, 2), "cpu_scope": CPU_SCOPE})
    return record


def _write_linear_cell(folder: Path, predictions: pd.DataFrame) -> None:
    """Write a linear cell's predictions and training fit. A cell made before cells recorded their fit gets it
    now, after a check that this code reproduces the predictions it holds (the same predicted classes, every
    probability within 1e-6: the BLAS thread count may move the last bits); else the fit would describe another
    computation, and the cell is refused, naming the file."""
    path = folder / "predictions.csv"
    if path.exists():
        stored = pd.read_csv(path, dtype={"subject": str, "clip": str})
        proba = [c for c in predictions.columns if c.startswith("p_")]
        same = (list(stored.columns) == list(predictions.columns) and len(stored) == len(predictions)
                and stored["prediction"].astype(str).tolist() == predictions["prediction"].astype(str).tolist()
                and np.allclose(stored[proba].to_numpy(float), predictions[proba].to_numpy(float), atol=1e-6))
        if not same:
            raise runstore.RunStoreError(f"{path}: this code's linear reference predicts otherwise than the stored "
                                         "cell, so its training fit cannot be added; run the study into a new folder")
    fit = pd.DataFrame(sorted(predictions.attrs["train_fit"].items()), columns=["fold", "train_accuracy"])
    runstore.atomic_write_bytes(folder / TRAIN_FIT_FILE, runstore.csv_bytes(fit))
    if not path.exists():
        runstore.atomic_write_bytes(path, runstore.csv_bytes(predictions))


def merge_study(source: str | Path, out: str | Path = "results/study") -> dict[str, runstore.MergeCount]:
    """Merge the study bundle ``source`` into ``out``: the same study continued elsewhere (another machine, a
    worktree that ran while the repository changed, a Slurm job array's copy). Returns what was done per cell.

    The two specs must be equal (else an error naming the differing fields). Every deep cell is merged with
    :func:`convat.runstore.merge_run` (finished, intact folds only; identities checked; a fold both hold with
    other predictions is kept as ``out`` has it and counted); a linear cell's files are copied when ``out``
    lacks them. ``bundle.json`` gets the source's record of each cell it finished that ``out`` had not, and the
    source's provenance (code, commit, machine, date) when the source was written later. Merging twice changes
    nothing; ``out`` may not exist yet.
    """
    source, out = Path(source), Path(out)
    src_record = _read_bundle(source)
    if src_record is None:
        raise FileNotFoundError(f"{source}: no {BUNDLE_FILE}, so not a study bundle")
    record = _read_bundle(out)
    if record is not None:
        diffs = runstore.identity_differences(record["spec"], src_record["spec"])
        if diffs:
            raise runstore.RunStoreError(f"{source} and {out} are different studies ({'; '.join(diffs)})")
    else:
        record = {key: value for key, value in src_record.items() if key != "cells"} | {"cells": {}}
    spec = StudySpec.from_json(src_record["spec"])
    done: dict[str, runstore.MergeCount] = {}
    with runstore.output_folder(out):
        for draw, model, seed in spec.cells():
            src, dst = cell_dir(source, draw, model, seed), cell_dir(out, draw, model, seed)
            key = dst.relative_to(out).as_posix()
            if not src.is_dir():
                continue
            if seed is None:  # the linear reference: deterministic files, no folds
                count = runstore.MergeCount()
                for name in ("predictions.csv", TRAIN_FIT_FILE):
                    if not (src / name).exists():
                        continue
                    if not (dst / name).exists():
                        dst.mkdir(parents=True, exist_ok=True)
                        runstore.atomic_write_bytes(dst / name, (src / name).read_bytes())
                        count.copied += 1
                    elif (dst / name).read_bytes() != (src / name).read_bytes():
                        count.differ.append(name)  # kept as out has it, and reported
                count.finished = count.copied > 0
            elif (src / "config.json").exists():
                count = runstore.merge_run(src, dst)
            else:
                continue
            if key in src_record["cells"] and (count.finished or key not in record["cells"]) \
                    and (dst / "predictions.csv").exists():
                record["cells"][key] = src_record["cells"][key]
            done[key] = count
        if src_record.get("date", "") > record.get("date", ""):
            record.update({k: v for k, v in src_record.items() if k not in ("cells", "spec")})
        _write_bundle(out, record)
    return done


@dataclass(frozen=True)
class Study:
    """A bundle read back: every cell's pooled predictions (columns ``model``, ``data_seed``, ``train_seed``
    added), the per-fold training curves of the deep cells, ``bundle.json``, and the linear cells' training fit
    per fold (:data:`TRAIN_FIT_FILE`; empty for a bundle made before cells recorded it)."""

    predictions: pd.DataFrame
    curves: pd.DataFrame
    record: dict
    path: Path
    linear_fit: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def spec(self) -> StudySpec:
        return StudySpec.from_json(self.record["spec"])


def load_study(out: str | Path = "results/study") -> Study:
    """Read a bundle; a cell listed in ``bundle.json`` whose ``predictions.csv`` is missing is an error."""
    out = Path(out)
    record = _read_bundle(out)
    if record is None:
        raise FileNotFoundError(f"{out / BUNDLE_FILE} not found: run `convat study run --out {out}` first")
    preds, curves, fits = [], [], []
    for key, cell in sorted(record["cells"].items()):
        path = out / key / "predictions.csv"
        if not path.exists():
            raise runstore.RunStoreError(f"{path}: listed in {out / BUNDLE_FILE} but missing; rerun the study")
        extra = {"model": cell["model"], "data_seed": cell["draw"],
                 "train_seed": -1 if cell["train_seed"] is None else cell["train_seed"]}
        try:
            frame = pd.read_csv(path, dtype={"subject": str, "clip": str})
        except (ValueError, OSError) as err:  # empty, truncated mid-row, unreadable
            raise runstore.RunStoreError(f"{path}: unreadable predictions ({err}); restore it from git or rerun "
                                         "the study") from None
        missing = {"dataset", "subject", "clip", "label", "prediction"} - set(frame.columns)
        if missing:
            raise runstore.RunStoreError(f"{path}: no column {sorted(missing)[0]!r}; restore it from git or rerun "
                                         "the study")
        preds.append(frame.assign(**extra))
        if (out / key / "curves.csv").exists():
            curves.append(pd.read_csv(out / key / "curves.csv").assign(**extra))
        if (out / key / TRAIN_FIT_FILE).exists():
            fits.append(pd.read_csv(out / key / TRAIN_FIT_FILE).assign(**extra))
    predictions = pd.concat(preds, ignore_index=True)
    _check_same_clips(predictions, record, out)
    return Study(predictions, pd.concat(curves, ignore_index=True) if curves
                 else pd.DataFrame(), record, out, pd.concat(fits, ignore_index=True) if fits else pd.DataFrame())


def _check_same_clips(predictions: pd.DataFrame, record: dict, out: Path) -> None:
    """Every cell of a draw predicts the same clips (one LOSO over the same data); a cell with another clip set
    (a truncated or foreign ``predictions.csv``) is an error naming its file, before any number is computed."""
    keys = predictions["dataset"].astype(str) + "/" + predictions["subject"].astype(str) + "/" + predictions[
        "clip"].astype(str)
    by_cell = {cell: frozenset(k) for cell, k in keys.groupby(
        [predictions["data_seed"], predictions["model"], predictions["train_seed"]], sort=True)}
    for draw in sorted({d for d, _, _ in by_cell}):
        cells = {c: k for c, k in by_cell.items() if c[0] == draw}
        sets = list(cells.values())
        linear = cells.get((draw, LINEAR, -1))  # ties go to the linear reference's clips, then the most common
        common = max(sets, key=lambda k: (sets.count(k), k == linear))
        for (_, model, seed), clips in cells.items():
            if clips != common:
                key = cell_dir(Path("."), draw, model, None if seed == -1 else seed).as_posix()
                raise runstore.RunStoreError(
                    f"{out / key / 'predictions.csv'}: {len(clips)} clips, but the other cells of draw {draw} "
                    f"predict {len(common)} ({len(common - clips)} missing, {len(clips - common)} not theirs): a "
                    "damaged file (restore it from git) or cells made from different data (rerun the study)")


def bundled_run(x, table: pd.DataFrame, config, bundle: str | Path | None = None, progress: bool = True,
                splits=None, data: dict | None = None, parallel_folds: int = 1):
    """A LOSO run (:class:`convat.loso.LosoRun`) served from a finished cell of a committed bundle when that cell
    is exactly this run; otherwise :func:`convat.loso.cached_run` (from ``$CONVAT_CACHE``, or trained now).
    A run already in this machine's cache with a finished fold of its own wins over the bundle, so a page shows
    the numbers an earlier chapter of the same build computed, and a killed training resumes instead of being
    replaced (a folder left by a run killed before its first fold finished is replaced by the cell). With
    :data:`SERVE_ENV` set to ``0`` nothing is served: the run trains (replacing a copy served earlier).

    *Exactly*: the cell's ``config.json`` records the same identity as this run would
    (:func:`convat.loso.run_identity`: the input tensors' digest, labels, folds, training configuration and the
    code fingerprint), so a bundle made by other code, on other data or with another recipe is never served;
    after any change to the code that decides results the run is trained again, and so is a cell made on another
    device (a CPU cell on a CUDA machine) or with another torch version.

    The cell is copied into the cache folder :func:`convat.loso.cached_run` keys this run by (the committed folder
    is never written), so every later ``cached_run`` of the same run -- another chapter's, an exercise's -- reads
    it instead of training it again; it is read through :func:`convat.loso.run_loso` (which checks every fold file
    against its manifest and recomputes a damaged one) and marked with :data:`convat.runstore.SERVED_FROM` (which
    bundle and cell, its commit and date, the CPUs and threads its folds were trained with), which
    :func:`convat.book.cache_note` names on the page and :func:`recheck_served` uses to retrain a fold here. A
    bundle may have been made with another number of threads per fold, which changes the order of floating-point
    sums: on the quick profile's 30-epoch runs, 1 thread against 2 moved probabilities by up to 2.4e-4 and no
    predicted label (measured for convat_tiny, 100 clips). ``bundle`` defaults to the smoke-test grid,
    ``results/study-quick`` (:func:`default_bundle`).
    """
    import shutil

    from convat.loso import cached_run

    bundle = Path(bundle) if bundle is not None else default_bundle("study-quick")
    record = _read_bundle(bundle) if bundle.is_dir() else None
    target = _cache_folder(x, table, config, splits, data)
    if not serving_bundles():
        if (target / runstore.SERVED_FROM).exists() and not runstore.live_locks(target):
            shutil.rmtree(target)  # a copy served earlier: train the run instead, as asked
        return cached_run(x, table, config, progress=progress, splits=splits, data=data,
                          parallel_folds=parallel_folds)
    identity, source = _servable_cell(x, table, config, bundle, record, splits, data)
    if source is not None and target.exists() and not list((target / "folds").glob("*.json")) \
            and not runstore.live_locks(target):
        shutil.rmtree(target)  # a run killed before its first fold finished: nothing of its own to resume
    if source is not None and not target.exists():
        cell = source.relative_to(bundle).as_posix()
        tmp = runstore.tmp_name(target)  # `convat cache` lists it as a tmp entry
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(source, tmp, ignore=shutil.ignore_patterns(".lock*", "*.tmp"))
        runstore.atomic_write_text(tmp / runstore.SERVED_FROM, json.dumps({
            "bundle": bundle.name, "cell": cell, "code": identity["code"],
            "bundle_commit": record.get("commit"), "bundle_date": record.get("date"),
            # the CPUs that trained its folds (None: not recorded), which cache_note compares with this machine's
            "cpus": sorted({c or "" for c in runstore.RunStore(source).fold_cpus().values()}),
            # each fold's thread count (it decides the order of float sums): what recheck_served retrains with
            "fold_threads": record.get("cells", {}).get(cell, {}).get("fold_threads", record.get("fold_threads")),
        }, indent=2))
        try:
            os.replace(tmp, target)
        except OSError as error:  # another process filled the same folder meanwhile: keep its run
            shutil.rmtree(tmp, ignore_errors=True)
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
    return cached_run(x, table, config, progress=progress, splits=splits, data=data, parallel_folds=parallel_folds)


def _cache_folder(x, table: pd.DataFrame, config, splits=None, data: dict | None = None) -> Path:
    """The folder :func:`convat.loso.cached_run` keeps this run in (a test holds the two to the same path)."""
    from convat.loso import run_key

    return runstore.default_cache_dir() / "runs" / f"{config.model}-{run_key(x, table, config, splits, data)}"


def _servable_cell(x, table: pd.DataFrame, config, bundle: Path, record: dict | None, splits=None,
                   data: dict | None = None) -> tuple[dict, Path | None]:
    """This run's identity, and the bundle's finished cell that is exactly this run made on this machine's
    device and torch version (None if there is none)."""
    from convat.loso import loso_splits, run_identity

    identity = run_identity(x, table, config, splits if splits is not None else loso_splits(table), data)
    source = (runstore.find_run(identity, [bundle / key for key in sorted(record.get("cells", {}))])
              if record else None)
    if source is not None and not _same_platform(source, config):
        source = None  # made on another device or torch: not what this machine computes
    return identity, source


def available_predictions(x, table: pd.DataFrame, config, bundle: str | Path | None = None, splits=None,
                          data: dict | None = None) -> pd.DataFrame | None:
    """The pooled predictions of the run :func:`bundled_run` would return, where they can be read without
    training anything: the finished run in this machine's cache, else the committed cell it would serve (unless
    :data:`SERVE_ENV` turns serving off, in which case a copy served earlier does not count either: bundled_run
    would train the run instead); None otherwise. Lets a page compare the fold models it trains itself with the
    run another chapter scored, at no training cost."""
    folder = _cache_folder(x, table, config, splits, data)
    if (folder / "predictions.csv").is_file() and (serving_bundles() or not (folder / runstore.SERVED_FROM).exists()):
        return pd.read_csv(folder / "predictions.csv")
    bundle = Path(bundle) if bundle is not None else default_bundle("study-quick")
    record = _read_bundle(bundle) if bundle.is_dir() and serving_bundles() else None
    _, source = _servable_cell(x, table, config, bundle, record, splits, data)
    return pd.read_csv(source / "predictions.csv") if source is not None else None


def agreement(run: pd.DataFrame | None, fold: str, clips, predicted) -> str:
    """How many of ``predicted`` (class names, one per clip of ``clips``, all of ``fold``) equal a run's
    predictions of the same clips in that fold, as ``"8 / 10"``; ``"not on this machine"`` without the run
    (:func:`available_predictions` gave None). Clips are matched within the fold, since clip names repeat across
    subjects (CASME II); a clip the fold does not hold, or holds twice, is an error naming it."""
    if run is None:
        return "not on this machine"
    by_clip = run.loc[run["fold"] == fold].set_index("clip")["prediction"]
    bad = [c for c in clips if c not in by_clip.index or isinstance(by_clip[c], pd.Series)]
    if bad:
        raise ValueError(f"the run has no single prediction in fold {fold} for clip(s) {bad[:3]}")
    same = sum(str(by_clip[c]) == str(p) for c, p in zip(clips, predicted, strict=True))
    return f"{same} / {len(predicted)}"


#: Set to ``0`` (or ``no``, ``false``, ``off``) to make :func:`bundled_run` train every run instead of serving
#: committed cells, e.g. ``CONVAT_SERVE_BUNDLES=0 make book`` for a book whose every LOSO run trains live.
SERVE_ENV = "CONVAT_SERVE_BUNDLES"


def serving_bundles() -> bool:
    """Whether :func:`bundled_run` may serve committed cells (:data:`SERVE_ENV`; default yes)."""
    return os.environ.get(SERVE_ENV, "1").strip().lower() not in ("0", "no", "false", "off")


def _same_platform(cell: Path, config) -> bool:
    """Whether a bundle's run folder was made on the device this machine resolves ``config.device`` to and with
    this torch version (what the run identity leaves out, and what changes the numbers)."""
    import torch

    from convat.training.loop import resolve_device

    env = (runstore.RunStore(cell).read_config() or {}).get("environment", {})
    return (env.get("resolved_device") == str(resolve_device(config.device))
            and env.get("torch") == torch.__version__)


def _missing_cells(study: Study) -> list[tuple[int, str, int | None]]:
    """The cells of the study's grid that ``bundle.json`` does not list as finished."""
    return [c for c in study.spec.cells()
            if cell_dir(study.path, *c).relative_to(study.path).as_posix() not in study.record["cells"]]


def _finished_folds(study: Study, draw: int, model: str, seed: int | None) -> int:
    """How many folds of a cell are on disk, finished (a fold's manifest is written last)."""
    folds = cell_dir(study.path, draw, model, seed) / "folds"
    return len(list(folds.glob("*.json"))) if folds.is_dir() else 0


def study_status(study: Study) -> list[str]:
    """Why the bundle is not (yet) the current study: ``stale: ...`` when the code that decides results changed
    since it was made, ``incomplete: ...`` while cells are missing (empty: complete and current)."""
    reasons = []
    now = runstore.code_fingerprint()
    if study.record.get("code") != now:
        reasons.append(f"stale: the code that decides results changed (bundle {study.record.get('code')}, now {now})")
    missing = _missing_cells(study)
    if missing:
        reasons.append(f"incomplete: {len(missing)} of {len(study.spec.cells())} cells not yet run")
        for draw, model, seed in missing:  # a cell a killed run left half done resumes at its first missing fold
            done = _finished_folds(study, draw, model, seed)
            if done:
                reasons.append(f"in progress: {model} seed {seed} draw {draw} has {done} finished folds")
    return reasons


def status_summary(study: Study) -> str:
    """:func:`study_status` in a few words for a key-results line: ``"13 of 16 cells, incomplete (2 in
    progress)"``, ``"..., stale: made by other code"`` or ``"16 of 16 cells, complete, made by this code"``."""
    reasons = study_status(study)
    text = f"{len(study.record['cells'])} of {len(study.spec.cells())} cells, "
    parts = []
    if any(r.startswith("incomplete:") for r in reasons):
        running = sum(r.startswith("in progress:") for r in reasons)
        parts.append("incomplete" + (f" ({running} in progress)" if running else ""))
    if any(r.startswith("stale:") for r in reasons):
        parts.append("stale: made by other code")
    return text + ("; ".join(parts) or "complete, made by this code")


#: Finished folds a cell in progress needs before its wall time per fold stands for its model's cells.
MIN_TIMED_FOLDS = 5


def _in_progress_fold_wall(study: Study, missing: list[tuple[int, str, int | None]]) -> dict[str, float]:
    """Per model, the wall seconds per finished fold of its cells in progress whose folds all record their time
    (:meth:`convat.runstore.RunStore.session_wall_s`) and that have at least :data:`MIN_TIMED_FOLDS` of them."""
    spent: dict[str, list[float]] = {}
    for draw, model, seed in missing:
        folder = cell_dir(study.path, draw, model, seed)
        done = _finished_folds(study, draw, model, seed)
        if done < MIN_TIMED_FOLDS:  # the first folds carry the start-up and say little about the rate
            continue
        wall, untimed = runstore.RunStore(folder).session_wall_s()
        if not untimed and wall > 0:
            spent.setdefault(model, [0.0, 0.0])
            spent[model][0] += wall
            spent[model][1] += done
    return {model: wall / folds for model, (wall, folds) in spent.items()}


def remaining_estimate(study: Study) -> str | None:
    """The wall time the missing cells will take on the machine that made the bundle, estimated from the
    recorded cells of the same model (less the in-progress cells' finished folds), or ``None`` when nothing is
    missing. Only a planning figure: a model's cells whose folds predate time records may understate it, and a
    model with no recorded cell is not estimated; the sentence says both."""
    cells = study.record["cells"]
    missing = _missing_cells(study)
    if not missing:
        return None
    folds_per_draw = study.predictions.groupby("data_seed")["fold"].nunique().to_dict()
    rates = _in_progress_fold_wall(study, missing)
    total, partial, unknown, from_folds = 0.0, set(), set(), set()
    for draw, model, seed in missing:
        timed = [c["wall_s"] for c in cells.values() if c["model"] == model and "wall_s" in c
                 and not c.get("untimed_folds")]
        any_time = [c["wall_s"] for c in cells.values() if c["model"] == model and "wall_s" in c]
        n = folds_per_draw.get(draw) or max(folds_per_draw.values(), default=0)
        if not timed and model in rates and n:  # an in-progress cell's timed folds beat a cell that lacks some
            wall = rates[model] * n
            from_folds.add(model)
        elif any_time:
            wall = float(np.mean(timed or any_time))
            if not timed:
                partial.add(model)
        else:
            unknown.add(model)
            continue
        done = _finished_folds(study, draw, model, seed)
        total += wall * (1 - min(done, n) / n) if n else wall
    text = (f"remaining: {len(missing)} cells, about {total / 3600:.1f} h of wall time at this bundle's recorded "
            "cell times")
    if from_folds:
        text += (f" ({', '.join(sorted(from_folds))}: at the wall time per fold of the folds finished so far in a cell"
                 " in progress)")
    if partial:
        text += f" (at least: {', '.join(sorted(partial))} only have cells whose time may cover their last session)"
    if unknown:
        text += f"; not estimated: {', '.join(sorted(unknown))} (no finished cell yet)"
    return text


def _runs(study: Study, model: str) -> list[pd.DataFrame]:
    part = study.predictions[study.predictions["model"] == model]
    return [g.drop(columns=["model", "data_seed", "train_seed"]) for _, g in
            part.groupby(["data_seed", "train_seed"], sort=True)]


def _runs_per_draw(study: Study, model: str) -> list[list[pd.DataFrame]]:
    part = study.predictions[study.predictions["model"] == model]
    return [_runs(Study(g, study.curves, study.record, study.path), model)
            for _, g in part.groupby("data_seed", sort=True)]


def study_table(study: Study) -> pd.DataFrame:
    """Per model: pooled UF1 / UAR / accuracy as mean +- SD over its runs (seeds x draws), the number of runs,
    and ``train_accuracy``, the training fit: the mean over folds of the returned model's accuracy on its own
    training clips (evaluation mode, no augmentation: the curves' ``fit_accuracy``, measured as the linear
    reference's is), or where a run predates that record the last epoch's running training accuracy; for the
    linear reference where its cells recorded their fit. ``UF1_seed_sd`` is what the training seed alone does:
    the SD of UF1 over training seeds within a draw, averaged over the draws that have at least two seeds (NaN
    for the linear reference and for a model with one seed per draw); ``UF1_sd`` also contains the draws. Every
    ``*_sd`` is NaN for a model with one run: one run has no spread, and 0 would read as "no variance"."""
    from convat.metrics import seed_summary

    labels = sorted(study.predictions["label"].unique())
    rows = {}
    for model in study.predictions["model"].unique():
        row = seed_summary(_runs(study, model), labels)
        within = [seed_summary(runs, labels)["UF1_sd"] for runs in _runs_per_draw(study, model) if len(runs) > 1]
        row["UF1_seed_sd"] = float(np.mean(within)) if within and model != LINEAR else np.nan
        if not study.curves.empty and model in set(study.curves["model"]):
            c = study.curves[study.curves["model"] == model]
            chosen = c[c["selected"].astype(bool)] if "selected" in c else c.iloc[:0]
            if "fit_accuracy" in chosen and len(chosen) and chosen["fit_accuracy"].notna().all():
                row["train_accuracy"] = float(chosen["fit_accuracy"].mean())
            else:
                last = c.loc[c.groupby(["data_seed", "train_seed", "fold"])["epoch"].idxmax()]
                row["train_accuracy"] = float(last["train_accuracy"].mean())
        elif model == LINEAR and not study.linear_fit.empty:
            row["train_accuracy"] = float(study.linear_fit["train_accuracy"].mean())
        rows[model] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table["runs"] = table["runs"].astype(int)
    sd_columns = [c for c in table.columns if c.endswith("_sd") and c != "UF1_seed_sd"]
    table.loc[table["runs"] < 2, sd_columns] = np.nan
    table.index.name = "model"
    return table.sort_values("UF1", ascending=False)


def measured_seed_sd(model: str, dataset: str, profile: str, budget=None, img_size: int | None = None,
                     flow: str | None = None) -> float | None:
    """How far the training seed alone moves ``model``'s pooled UF1 on ``dataset`` and ``profile``: its
    ``UF1_seed_sd`` (:func:`study_table`) in the committed bundle made on them (the smoke-test grid for SynthME's
    quick profile, the reference study otherwise), or ``None`` when no such bundle measures it. ``budget`` (a
    :class:`convat.recipe.Budget`), ``img_size`` and ``flow``, when given, must be the bundle's too: another
    recipe's spread is not this one's. A single run's difference smaller than this is not a finding."""
    bundle = default_bundle("study-quick" if is_smoke_test(dataset, profile) else "study")
    if not (bundle / BUNDLE_FILE).exists():
        return None
    study = load_study(bundle)
    spec = study.spec
    made = RECIPE.budget(spec.dataset, spec.profile, spec.epochs, spec.steps)
    if ((spec.dataset, spec.profile) != (dataset, profile) or model not in set(study.predictions["model"])
            or (budget is not None and (budget.epochs, budget.steps) != (made.epochs, made.steps))
            or (img_size is not None and img_size != spec.img_size) or (flow is not None and flow != spec.flow)):
        return None
    sd = study_table(study).loc[model, "UF1_seed_sd"]
    return float(sd) if np.isfinite(sd) else None


#: Training seeds a deep model needs on a draw before a comparison with it is called. With one seed the bootstrap
#: resamples subjects only and holds no training variance (one seed of a model has been "significantly" better
#: than another seed of the same model); with two it resamples them too, but two runs cannot measure that
#: variance. The linear reference is deterministic and needs one run.
MIN_SEEDS = 3


def resampled(fewest: float | None) -> str:
    """What a paired test resampled, given the fewest training seeds of a deep model in the pair (``None`` or NaN:
    no deep model had fewer than :data:`MIN_SEEDS`, or the count is unknown for a pair not called)."""
    if fewest is None or not np.isfinite(fewest) or fewest >= MIN_SEEDS:
        return "subjects and seeds"
    if fewest <= 1:
        return "subjects only (one training seed)"
    return f"subjects and only {int(fewest)} training seeds (fewer than {MIN_SEEDS})"


def study_comparisons(study: Study, reference: str, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """:func:`convat.metrics.paired_seed_test` of ``reference`` against every other model, per data draw
    (SynthME draws are different datasets, so they are compared separately and never pooled). The verdict
    calls no winner while a deep model of the pair has fewer than :data:`MIN_SEEDS` training seeds on the draw."""
    from convat.metrics import paired_seed_test, seed_verdict

    labels = sorted(study.predictions["label"].unique())
    rows = []
    for draw, part in study.predictions.groupby("data_seed", sort=True):
        sub = Study(part, study.curves, study.record, study.path)
        for other in part["model"].unique():
            if other == reference:
                continue
            runs_ref, runs_other = _runs(sub, reference), _runs(sub, other)
            test = paired_seed_test(runs_ref, runs_other, labels, n_boot=n_boot, seed=seed)
            few = {name: len(runs) for name, runs in ((reference, runs_ref), (other, runs_other))
                   if name != LINEAR and len(runs) < MIN_SEEDS}
            if few:
                counts = ", ".join(f"{name} {n} training seed{'s' if n != 1 else ''}" for name, n in few.items())
                verdict = (f"not called yet: {counts} so far; a difference is called only over at least {MIN_SEEDS} "
                           f"seeds each (UF1 difference {reference} − {other} {test['difference']:+.3f}, "
                           f"95 % interval {test['low']:+.3f} to {test['high']:+.3f} over "
                           f"{resampled(min(few.values()))}).")
                outcome = None
            else:
                verdict = seed_verdict(test, reference, other)
                outcome = reference if test["low"] > 0 else other if test["high"] < 0 else TIE
            rows.append({"data_seed": draw, "model": other, **test, "n_boot": n_boot, "verdict": verdict,
                         "outcome": outcome, "fewest_seeds": min(few.values()) if few else np.nan})
    return pd.DataFrame(rows)


#: The ``outcome`` of a called comparison whose interval contains zero.
TIE = "neither"


def draw_disagreements(comparisons: pd.DataFrame, reference: str, smoke: bool = False) -> list[str]:
    """Sentences naming each model whose called verdict against ``reference`` differs between SynthME draws.

    Each draw is a different dataset, so a verdict holds for the draw it was measured on; when the draws
    disagree, the comparison says something about that dataset and not about the method. ``smoke`` (a smoke-test
    bundle) words each draw's outcome as which score was higher, not as which model is better.
    """
    if comparisons.empty or "outcome" not in comparisons.columns:
        return []
    out = []
    for other, part in comparisons.dropna(subset=["outcome"]).groupby("model", sort=True):
        if part["outcome"].nunique() < 2:
            continue
        words = ({reference: f"{reference} higher", other: f"{other} higher", TIE: "not separated"} if smoke else
                 {reference: f"{reference} better", other: f"{other} better", TIE: "cannot be told apart"})
        by_outcome = part.groupby("outcome", sort=False)["data_seed"].apply(lambda d: sorted(int(v) for v in d))
        said = "; ".join(f"draw{'s' if len(d) > 1 else ''} {', '.join(map(str, d))}: {words[o]}"
                         for o, d in sorted(by_outcome.items(), key=lambda kv: kv[1][0]))
        test = "paired test" if smoke else "verdict"
        out.append(f"The {test} of {reference} against {other} changes with the SynthME draw ({said}): a {test} "
                   "measured on one draw holds for that dataset, not for the method.")
    return out


#: Largest |difference| of a probability that still counts as the same computation (the bundles' CSVs keep 7-8
#: significant digits; the same code on the same CPU gives identical bits).
REPRODUCE_ATOL = 1e-5


def _retrain(x, table: pd.DataFrame, config, splits, threads: int | None, workers: int = 1) -> pd.DataFrame:
    """``splits`` trained now, in memory, with ``threads`` per fold (``None``: as this process is set), sorted
    by fold and clip. The thread count decides the order of floating-point sums, hence the last bits of the
    probabilities, so a recomputation that is to match a bundle uses the count its folds were trained with."""
    import torch

    from convat.loso import run_loso

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        fresh = run_loso(x, table, config, progress=False, splits=splits, parallel_folds=workers)
    finally:
        torch.set_num_threads(before)
    return fresh.sort_values(["fold", "dataset", "subject", "clip"], kind="stable").reset_index(drop=True)


def _stored_folds(folder: Path, table: pd.DataFrame, splits, columns) -> pd.DataFrame:
    """The predictions of ``splits`` in a run folder, each fold checked against its manifest
    (:meth:`convat.runstore.RunStore.read_fold`), in :func:`_retrain`'s order and columns."""
    store = runstore.RunStore(folder)
    stored = pd.concat([store.read_fold(f, store.clip_ids(table, splits[f])) for f in sorted(splits)],
                       ignore_index=True)
    stored = stored.sort_values(["fold", "dataset", "subject", "clip"], kind="stable").reset_index(drop=True)
    return stored[list(columns)]


def reproduce_slice(study: Study, model: str, train_seed: int, folds: Sequence[str], draw: int | None = None,
                    data_root: str | Path | None = None, device: str = "cpu") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Recompute ``folds`` of one deep cell from scratch, with the thread count its folds were trained with (as
    many folds at a time as the bundle trained, when this machine gives each worker that same thread count);
    returns ``(recomputed, committed)`` predictions of those folds, row for row, for the caller to compare.

    The committed predictions are read from the cell's fold files, each checked against its manifest
    (:meth:`convat.runstore.RunStore.read_fold`), so a finished fold of a cell still in progress counts too."""
    from convat.loso import loso_splits
    from convat.sweep import SweepPoint, point_config, point_inputs

    spec = study.spec
    draw = spec.draws()[0] if draw is None else draw
    point, sweep = SweepPoint(model, train_seed, draw), sweep_spec(spec, data_root, device)
    x, table = point_inputs(point, sweep, workers=runtime.cpu_cores())  # clips not cached: every core
    splits = {f: m for f, m in loso_splits(table).items() if f in set(folds)}
    missing = set(folds) - set(splits)
    if missing:
        raise ValueError(f"folds {sorted(missing)} are not subjects of the study's data")
    # the folds train side by side, as the bundle's did, whenever this machine gives each worker that same count
    cell = study.record.get("cells", {}).get(cell_dir(Path("."), draw, model, train_seed).as_posix(), {})
    threads = cell.get("fold_threads", study.record.get("fold_threads"))
    workers = min(len(splits), int(study.record.get("parallel_folds") or 1))
    if workers > 1 and (not threads or runtime.worker_threads(workers) != int(threads)):
        workers = 1
    fresh = _retrain(x, table, point_config(point, sweep), splits, threads, workers)
    return fresh, _stored_folds(cell_dir(study.path, draw, model, train_seed), table, splits, fresh.columns)


@dataclass(frozen=True)
class ServedCheck:
    """Folds of a run served from a committed bundle, retrained in this process and compared with the served
    predictions (:func:`recheck_served`)."""

    folds: tuple[str, ...]
    total_folds: int
    """How many folds the served run has (the others were not retrained)."""
    clips: int
    same_labels: int
    max_gap: float
    """The largest |difference| of a class probability between the served and the retrained predictions."""
    threads: int | None
    """Threads per fold of the retraining: the bundle's, recorded when it was served (``None``: not recorded, so
    this process's threads, which may differ from the bundle's)."""
    seconds: float
    served_cpus: tuple[str, ...]
    """The CPUs that trained the served folds (``""``: not recorded), from the served run's marker."""
    cpu: str
    """This machine's CPU (:func:`convat.runtime.cpu_identity`)."""
    path: str
    """The served run's folder in the cache."""

    @property
    def agrees(self) -> bool:
        """Every label equal and every probability within :data:`REPRODUCE_ATOL`."""
        return self.same_labels == self.clips and self.max_gap <= REPRODUCE_ATOL

    @property
    def same_cpu(self) -> bool:
        """Whether every served fold records this machine's CPU, so exact agreement is to be expected."""
        return bool(self.served_cpus) and set(self.served_cpus) == {self.cpu}

    @property
    def cpu_unknown(self) -> bool:
        """Whether some served fold does not record the CPU that trained it."""
        return not self.served_cpus or "" in self.served_cpus


def recheck_served(run, x, table: pd.DataFrame, folds: int | str | Sequence[str] = 1,
                   splits=None) -> ServedCheck | None:
    """Retrain ``folds`` (a number of the run's first folds, or one fold's name, or several) of a run that
    :func:`bundled_run` served from a committed bundle, here and now, with the thread count the bundle trained
    them with, and compare the predictions with the served ones. ``splits``: the run's own, when it was made with
    other folds than :func:`convat.loso.loso_splits`. ``None`` for a run this machine trained itself (nothing to
    check).

    Why: a served run saves its training time, and this shows on the page, at the cost of one fold, whether that
    fold reproduces here; identical bits are expected when the folds were trained on this CPU with the same
    threads per fold, a few moved probabilities (and rarely a label) on another CPU."""
    marker = Path(run.path) / runstore.SERVED_FROM
    if not marker.exists():
        return None
    from convat.loso import loso_splits

    info = json.loads(marker.read_text())
    every = sorted(run.predictions["fold"].unique())
    if isinstance(folds, int):
        if folds < 1:
            raise ValueError(f"folds={folds}: retrain at least one fold")
        names = every[:folds]
    else:
        names = [folds] if isinstance(folds, str) else list(folds)
    own = {f: m for f, m in (splits if splits is not None else loso_splits(table)).items() if f in set(names)}
    if set(names) - set(own) or not own:
        raise ValueError(f"folds {sorted(set(names) - set(own)) or names} are not folds of this run")
    threads = info.get("fold_threads")
    start = time.perf_counter()
    fresh = _retrain(x, table, run.config, own, threads)
    seconds = time.perf_counter() - start
    served = _stored_folds(Path(run.path), table, own, fresh.columns)
    if not (fresh["clip"].to_numpy() == served["clip"].to_numpy()).all():
        raise runstore.RunStoreError(f"{run.path}: the served folds {sorted(own)} hold other clips than this "
                                     f"run's data; rerun with {SERVE_ENV}=0 to train the run here")
    probs = [c for c in fresh.columns if c.startswith("p_")]
    gap = float(np.abs(fresh[probs].to_numpy() - served[probs].to_numpy()).max()) if probs else 0.0
    return ServedCheck(folds=tuple(sorted(own)), total_folds=len(every), clips=len(fresh),
                       same_labels=int((fresh["prediction"] == served["prediction"]).sum()), max_gap=gap,
                       threads=int(threads) if threads else None, seconds=seconds,
                       served_cpus=tuple(info.get("cpus") or ()), cpu=runtime.cpu_identity() or "unknown",
                       path=str(run.path))


def served_check_note(check: ServedCheck | None) -> str:
    """One Markdown paragraph on a :class:`ServedCheck` (folds of a served run retrained here): agreement, or how
    far apart, and what can explain it (another CPU, a CPU or thread count not recorded) or, when nothing does, a
    bold warning with the way to train the run here. Empty for ``None`` (the run was trained in this execution,
    so there is nothing to check)."""
    if check is None:
        return ""
    folds = ", ".join(f"`{f}`" for f in check.folds)
    threads = (f"{check.threads} thread{'s' if check.threads != 1 else ''} per fold, as the bundle trained it"
               if check.threads else "this process's threads (the bundle did not record its own)")
    noun = "Fold" if len(check.folds) == 1 else "Folds"
    what = (f"{noun} {folds} of the served run, retrained in this execution ({check.clips} held-out clips, "
            f"{threads}, {check.seconds:.0f} s)")
    rest = len(check.folds) < check.total_folds
    unchecked = f" The other {check.total_folds - len(check.folds)} folds are served as committed." if rest else ""
    if check.agrees:
        return (f"{what}: every predicted label equals the served one and every class probability agrees within "
                f"{REPRODUCE_ATOL:.0e} (largest difference {check.max_gap:.2g}): "
                f"{'this fold reproduces' if len(check.folds) == 1 else 'these folds reproduce'} here."
                + unchecked)
    apart = (f"{check.same_labels} of {check.clips} predicted labels equal, class probabilities up to "
             f"{check.max_gap:.2g} apart")
    if check.cpu_unknown or not check.same_cpu:
        trained = ", ".join(sorted({c or "a CPU not recorded" for c in check.served_cpus})) or "a CPU not recorded"
        return (f"{what}: {apart}. The served folds were trained on {trained}, and this machine is {check.cpu}: "
                "another CPU's float kernels change the last bits of every training step and training amplifies "
                "them, which is consistent with a difference of this kind (it does not prove it)." + unchecked)
    if not check.threads:
        return (f"{what}: {apart}. The bundle did not record its threads per fold, and another thread count "
                "changes the order of float sums, which is consistent with a difference of this kind." + unchecked)
    return (f"**{what}: {apart}, although the served folds were trained on this CPU with these threads.** The "
            f"served run is not what this code computes here: rerun with `{SERVE_ENV}=0` in the environment to "
            f"train it in this execution (its served copy, `{check.path}`, is then replaced), and report the "
            "difference.")


def fold_cpus(study: Study, model: str, train_seed: int, draw: int = 0) -> dict[str, str | None]:
    """``fold -> CPU`` that trained it, for a cell of the bundle (:meth:`convat.runstore.RunStore.fold_cpus`)."""
    return runstore.RunStore(cell_dir(study.path, draw, model, train_seed)).fold_cpus()


def recorded_cell_wall_s(study: Study) -> dict[str, float]:
    """``model -> seconds``: the shortest wall time the bundle records for one finished cell of each deep model.

    Every cell of a study runs the same folds, so this ranks the models by what a fold costs them; the shortest
    of a model's cells is the one least slowed by other work on its machine. A model without a finished cell
    is absent (its cost is unknown)."""
    cost: dict[str, float] = {}
    for cell in study.record["cells"].values():
        wall = cell.get("wall_s")
        if cell["model"] != LINEAR and isinstance(wall, (int, float)) and wall > 0:
            cost[cell["model"]] = min(float(wall), cost.get(cell["model"], math.inf))
    return cost


def slice_to_reproduce(study: Study, cpu: str | None = None, n_folds: int = 2, first: Sequence[str] = ("convat_tiny",)
                       ) -> tuple[tuple[str, int, int], list[str]] | str:
    """Which ``n_folds`` finished folds of which deep cell (finished, or in progress) a from-scratch reproduction
    on the CPU ``cpu`` (a :func:`convat.runtime.cpu_identity`, default this machine's) can be held to exactly:
    ``((model, train_seed, draw), folds)``, or, when none can, the reason.

    Another CPU's float kernels move the last bits of every step, and over thousands of steps training amplifies
    them into other predictions for a few clips, so exact agreement is only asked of folds trained on the same
    CPU. In order of preference: folds that record this CPU's name and kernels; folds that record its name only
    (written before manifests recorded kernels); folds that predate the record (their CPU unknown: the check as it
    was before folds recorded it) in a cell not finished on another CPU. Folds recorded on other CPUs only are not
    a test of this machine, and the reason says so.

    Within each of those, the models named in ``first`` come first (in that order), then the others by their
    recorded cost (:func:`recorded_cell_wall_s`, cheapest first), so a caller with a time budget passes
    ``first=()``: in the full study's record a convat_tiny fold cost 5-7 CPU-minutes, an ststnet fold under 1.5,
    and both run the same data, preprocessing and training engine."""
    cpu = cpu or runtime.cpu_identity() or "unknown"
    name = runtime.cpu_name(cpu)
    # finished cells, then cells in progress (their finished folds are as final as any)
    deep = [c for c in study.record["cells"].values() if c["model"] != LINEAR]
    deep += [{"model": m, "train_seed": s, "draw": d} for d, m, s in _missing_cells(study)
             if m != LINEAR and _finished_folds(study, d, m, s) >= n_folds]
    cost = recorded_cell_wall_s(study)
    order = {m: i for i, m in enumerate(first)}
    deep.sort(key=lambda c: (order.get(c["model"], len(order)), cost.get(c["model"], math.inf), c["model"],
                             c["train_seed"], c["draw"]))
    if not deep:
        return f"the bundle has no deep cell with {n_folds} finished folds yet"
    tiers: list[tuple[tuple[str, int, int], list[str]] | None] = [None, None, None]
    seen: set[str] = set()
    for cell in deep:
        cpus = fold_cpus(study, cell["model"], cell["train_seed"], cell["draw"])
        seen.update(c for c in cpus.values() if c)
        key = (cell["model"], cell["train_seed"], cell["draw"])
        cell_cpu = runtime.recorded_cpu(cell)
        for tier, folds in enumerate((
                [f for f, c in cpus.items() if c == cpu],
                [f for f, c in cpus.items() if c == name != cpu],
                [f for f, c in cpus.items() if c is None] if cell_cpu in (None, cpu, name) else [])):
            if tiers[tier] is None and len(folds) >= n_folds:
                tiers[tier] = (key, sorted(folds)[:n_folds])
    for chosen in tiers:
        if chosen is not None:
            return chosen
    return (f"no deep cell has {n_folds} finished folds trained on this CPU ({cpu}); its folds were trained on "
            f"{', '.join(sorted(seen)) or 'CPUs not recorded'}, whose float kernels give other last bits")


#: Final training accuracy below which a deep model is called under-trained whatever the linear reference fits.
UNDERFIT = 0.9


def describe_study(table: pd.DataFrame, comparisons: pd.DataFrame, reference: str, smoke: bool = False) -> str:
    """Markdown sentences over :func:`study_table` and :func:`study_comparisons`, computed from the numbers.

    ``smoke`` (a bundle on SynthME's quick profile, :attr:`StudySpec.smoke`) names no best model and no model
    above or below the linear reference: its few subjects show the spread over seeds and draws, not a ranking.
    """
    lines = []
    if len(table) < 2:
        only = ", ".join(table.index) or "nothing"
        return f"Only {only} has finished so far: no model is compared yet."
    if smoke:
        from convat.data.synth import PROFILES

        line = (f"**Smoke test** (SynthME's quick profile, {PROFILES['quick'].n_subjects} subjects): no model is "
                "ranked from it. It measures how far the training seed and the SynthME draw move each model")
        seed_sd = table["UF1_seed_sd"].dropna() if "UF1_seed_sd" in table.columns else pd.Series(dtype=float)
        parts = []
        if len(seed_sd):
            parts.append(f"within a draw, the training seed alone moves UF1 by an SD of {seed_sd.min():.3f} "
                         f"({seed_sd.idxmin()}) to {seed_sd.max():.3f} ({seed_sd.idxmax()})")
        if LINEAR in table.index and table.loc[LINEAR, "runs"] > 1:
            parts.append(f"the draw alone moves the linear reference, which has no seed, by an SD of "
                         f"{table.loc[LINEAR, 'UF1_sd']:.3f}")
        lines.append(line + (": " + "; ".join(parts) if parts else "") + ".")
    else:
        top = table.index[0]
        runs = int(table.loc[top, "runs"])
        sd = table.loc[top, "UF1_sd"]
        spread = f" ± {sd:.3f}, {runs} runs" if runs > 1 and np.isfinite(sd) else f", {runs} run, so no SD"
        lines.append(f"Highest mean UF1 over seeds: **{top}** ({table.loc[top, 'UF1']:.3f}{spread}).")
    if LINEAR in table.index and reference in table.index and not smoke:
        lin, ref = table.loc[LINEAR, "UF1"], table.loc[reference, "UF1"]
        side = "above" if ref > lin else "below"
        lines.append(f"{reference} averages {ref:.3f}, {side} the linear reference ({lin:.3f}).")
    seed_sd = table["UF1_seed_sd"].dropna() if "UF1_seed_sd" in table.columns else pd.Series(dtype=float)
    if len(seed_sd) and not smoke:  # the yardstick for every difference above: what the seed alone does
        lines.append("The training seed alone moves UF1 by an SD of " + ", ".join(
            f"{v:.3f} ({m}, {int(table.loc[m, 'runs'])} runs)" for m, v in seed_sd.sort_values().items())
            + ": a difference of that size between two models is not a finding.")
    if "train_accuracy" in table.columns:
        fit = table["train_accuracy"]
        linear_fit = fit.get(LINEAR, np.nan)
        if np.isfinite(linear_fit):  # the yardstick: what a linear model fits of the same training clips
            under = fit[(fit < linear_fit) & (fit.index != LINEAR)]
            if len(under):
                lines.append(f"Fit their training clips less well than the linear reference does ({linear_fit:.3f}"
                             f" mean accuracy on its own training clips): " + ", ".join(
                                 f"{m} ({a:.3f})" for m, a in under.sort_values().items())
                             + ". A held-out score of a model that has not fit its own training set measures the "
                             "recipe more than the architecture.")
        if "accuracy" in table.columns:
            gap = (fit - table["accuracy"]).dropna().sort_values()
            if len(gap) > 1:  # how much of the training fit each model keeps on subjects it never saw
                lines.append("Generalisation gap (accuracy on the training clips − held-out accuracy): " + ", ".join(
                    f"{m} {g:+.3f}" for m, g in gap.items()) + ".")
        under = fit[(fit < UNDERFIT) & (fit.index != LINEAR)]
        if len(under):
            lines.append(f"Training fit below {UNDERFIT:.2f} (the recipe under-trains these, so their held-out score"
                         f" says little about the architecture): {', '.join(under.index)}.")
    lines += draw_disagreements(comparisons, reference, smoke)
    if smoke and len(comparisons):
        lines.append(f"Paired tests of {reference} against each model, draw by draw (subjects and seeds of that draw "
                     "resampled). On a smoke test they show how much a comparison moves with the draw; none of them "
                     "ranks the models:")
    for _, row in comparisons.iterrows():
        said = _smoke_comparison(row, reference) if smoke else row["verdict"]
        lines.append(f"- draw {int(row['data_seed'])}: {said}")
    return "\n".join(lines)


def _smoke_comparison(row: pd.Series, reference: str) -> str:
    """A paired test's numbers without a verdict: what a smoke-test bundle lists instead of "A beats B", with what
    the test resampled (:func:`resampled`: a pair with fewer than :data:`MIN_SEEDS` training seeds says how few)."""
    apart = row["low"] > 0 or row["high"] < 0
    n_boot = row.get("n_boot")
    p = row["p"]
    floor = 1.0 / n_boot if isinstance(n_boot, (int, float)) and n_boot > 0 else None
    shown = ("" if not np.isfinite(p) else f", p < {floor:.2g}" if floor and p < floor else f", p = {p:.3f}")
    called = pd.notna(row.get("outcome"))  # None: too few seeds to call it (study_comparisons)
    fewest = row.get("fewest_seeds")
    by = ("subjects and seeds" if called else resampled(fewest) if pd.notna(fewest)
          else f"subjects and fewer than {MIN_SEEDS} training seeds")
    return (f"{reference} − {row['model']} {row['difference']:+.3f} (95 % interval {row['low']:+.3f} to "
            f"{row['high']:+.3f}{shown}): this draw's {by} "
            + ("separate them" if apart else "do not separate them") + ".")


@dataclass(frozen=True)
class StudyReport:
    """What a chapter shows of a bundle: its provenance and status (Markdown), the per-model table over seeds
    and draws, the paired verdicts against the reference model and the sentences over both."""

    study: Study
    status: list[str]
    provenance: str
    table: pd.DataFrame
    verdicts: pd.DataFrame
    summary: str

    def display(self) -> None:
        """Show it in a notebook: the provenance, the table (three decimals) and the sentences."""
        from IPython.display import Markdown, display

        display(Markdown(self.provenance))
        numbers = [c for c in self.table.columns if c != "runs"]
        display(self.table.style.format("{:.3f}", subset=numbers, na_rep="–"))
        display(Markdown(self.summary))


def study_report(out: str | Path, reference: str = "convat_tiny", n_boot: int = 2000,
                 command: str = "make study") -> StudyReport | None:
    """:class:`StudyReport` of the bundle in ``out`` (``None`` when there is none); ``command`` is what the
    page tells the reader to run to complete or refresh it."""
    out = Path(out)
    if not (out / BUNDLE_FILE).exists():
        return None
    study = load_study(out)
    status = study_status(study)
    lines = provenance_lines(study) + ([f"**{reason}**; `{command}` completes or refreshes it" for reason in status]
                                       or ["complete and current: made by this code"])
    table = study_table(study)
    verdicts = (study_comparisons(study, reference, n_boot=n_boot) if reference in table.index
                else pd.DataFrame())
    return StudyReport(study, status, "\n".join(f"- {line}" for line in lines), table, verdicts,
                       describe_study(table, verdicts, reference, smoke=study.spec.smoke))


__all__ = ["DEFAULT_MODELS", "LINEAR", "MIN_SEEDS", "REPRODUCE_ATOL", "SERVE_ENV", "TIE", "ServedCheck", "Study",
           "StudyReport", "StudySpec", "agreement", "available_predictions", "bundled_run", "cell_dir",
           "default_bundle", "describe_study", "draw_disagreements", "load_study", "measured_seed_sd",
           "provenance_lines", "recheck_served",
           "recorded_cell_wall_s", "reproduce_slice", "run_study", "served_check_note", "serving_bundles",
           "status_summary", "study_comparisons", "study_report", "study_status", "study_table"]
