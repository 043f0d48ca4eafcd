"""Sweeps: many LOSO runs (model x training seed x data draw) on this machine or on a Slurm cluster.

An experiments-layer module above :mod:`convat.loso`. Every point of the grid is one LOSO run in its own
folder ``ROOT/<model>/seed<S>-draw<D>``, written by :func:`convat.loso.run_loso`, so a point is idempotent: a
rerun (after a crash, a pre-empted job, or on purpose) resumes from its first missing fold and a finished point
is read back, not retrained. Points can therefore be run in any order, in any number of processes or jobs.

Backends (``backend=``):

- ``"local"``: the points in the reusable worker pool of :mod:`convat.pool` (joblib's loky), ``jobs`` at a
  time, each with its share of the cores;
- ``"submitit"``: one Slurm job array through `submitit <https://github.com/facebookincubator/submitit>`_
  (``pip install submitit``), one array task per point, results gathered when all are done. ``cluster=
  "debug"`` (in this process) or ``"local"`` (subprocesses) run the same code without Slurm, as the tests do.

A *draw* is the SynthME generation seed (a new synthetic population); for the real datasets it changes nothing
but the folder name. Command line: ``convat sweep`` (see its ``--help``), or from Python::

    from convat.sweep import SweepSpec, grid, run_sweep
    spec = SweepSpec(profile="composite", epochs=30)
    run_sweep(grid(["convat_tiny", "ststnet"], seeds=[0, 1, 2], draws=[0, 1]), spec, "runs/sweep", jobs=2)
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from convat import runstore
from convat.recipe import RECIPE

#: A Slurm array task's time limit (minutes) when the sweep is not given one.
SLURM_TIMEOUT_MIN = 240


@dataclass(frozen=True)
class SweepPoint:
    """One run of the sweep."""

    model: str
    seed: int
    draw: int

    def folder(self, root: str | Path) -> Path:
        return Path(root) / self.model / f"seed{self.seed}-draw{self.draw}"


@dataclass(frozen=True)
class SweepSpec:
    """What every point shares: the data, the preprocessing and the training budget (the reference recipe's,
    :data:`convat.recipe.RECIPE`, unless given)."""

    dataset: str = RECIPE.dataset
    profile: str = RECIPE.profile
    data_root: str | None = None
    img_size: int = RECIPE.img_size
    flow: str = RECIPE.flow
    epochs: int | None = None
    steps: int | None = None
    """The budget: ``epochs`` or ``steps`` (one); neither is the recipe's for the dataset and profile
    (:meth:`convat.recipe.Recipe.budget`)."""
    device: str = RECIPE.device
    strategy: str = "auto"
    parallel_folds: int = 1
    train_overrides: dict = field(default_factory=dict)
    """Extra :class:`~convat.training.loop.TrainConfig` fields (e.g. ``{"val_fraction": 0.15}``)."""
    synth_overrides: dict = field(default_factory=dict)
    """Extra arguments of :func:`convat.data.synth.generate` (e.g. a smaller population in tests)."""

    def __post_init__(self) -> None:
        if self.epochs is not None and self.steps is not None:
            raise ValueError(f"two budgets given (epochs={self.epochs}, steps={self.steps}); give one")


def grid(models: list[str], seeds: list[int], draws: list[int]) -> list[SweepPoint]:
    """Every combination, in a stable order (models, then seeds, then draws)."""
    return [SweepPoint(m, s, d) for m, s, d in itertools.product(models, seeds, draws)]


def point_inputs(point: SweepPoint, spec: SweepSpec, workers: int | None = None):
    """The preprocessed inputs ``(x, table)`` of a point's data draw (cached tensors after the first call).

    Clips missing from the cache are computed by ``workers`` processes (default: as many as the point trains folds
    with, ``spec.parallel_folds``); the tensors are the same for any count, only the wall time differs."""
    from convat.book import default_preprocess, load_records
    from convat.preprocess.pipeline import preprocess

    if spec.dataset == "synthme" and spec.synth_overrides:
        from convat.data.synth import generate

        records = generate(spec.profile, seed=point.draw, **spec.synth_overrides)
    else:
        records = load_records(spec.dataset, spec.profile, spec.data_root, seed=point.draw)
    return preprocess(records, default_preprocess(spec.img_size, spec.flow), progress=False,
                      workers=workers or spec.parallel_folds)


def point_config(point: SweepPoint, spec: SweepSpec):
    """The :class:`~convat.training.loop.TrainConfig` a point trains with."""
    from convat.book import default_train, training_budget

    budget = training_budget(spec.dataset, spec.profile, spec.epochs, spec.steps)
    return default_train(point.model, budget, device=spec.device, seed=point.seed, **spec.train_overrides)


def run_point(point: SweepPoint, spec: SweepSpec, root: str, progress: bool = False) -> dict:
    """Train (or resume, or read back) one point; its folder and pooled scores. Runs in any process;
    ``progress`` shows its folds' bar (in this process only: workers and array tasks keep quiet)."""
    from convat.loso import run_loso
    from convat.metrics import summarize

    x, table = point_inputs(point, spec)
    out = point.folder(root)
    predictions = run_loso(x, table, point_config(point, spec), out_dir=out, progress=progress,
                           parallel_folds=spec.parallel_folds, strategy=spec.strategy)
    scores = summarize(predictions, labels=sorted(table["label"].unique())).iloc[0].to_dict()
    return {**asdict(point), "folder": str(out), **{k: float(v) for k, v in scores.items()
                                                    if isinstance(v, (int, float))}}


def run_sweep(points: list[SweepPoint], spec: SweepSpec, root: str | Path, backend: str = "local", jobs: int = 1,
              cluster: str | None = None, slurm: dict | None = None,
              on_done: Callable[[SweepPoint, dict], None] | None = None, progress: bool = False) -> pd.DataFrame:
    """Run every point; one row per point (its parameters, folder and pooled scores), also written to
    ``ROOT/sweep.csv``. ``slurm``: extra ``submitit`` parameters (e.g. ``{"slurm_partition": "gpu",
    "gpus_per_node": 1, "timeout_min": 60, "slurm_array_parallelism": 16}``). ``on_done(point, row)`` is called
    as each point finishes (in this process), so a caller can record it before the others end. ``progress``
    shows the folds of points that run in this process (the local backend, one run at a time)."""
    on_done = on_done or (lambda point, row: None)
    if backend not in ("local", "submitit"):
        raise ValueError(f"unknown sweep backend {backend!r}; choose 'local' or 'submitit'")
    with runstore.output_folder(root) as root:  # a sweep that fails before writing leaves no empty folders
        if backend == "local":
            rows = _run_local(points, spec, str(root), jobs, on_done, progress)
        else:
            rows = _run_submitit(points, spec, str(root), cluster, slurm or {}, on_done)
    frame = pd.DataFrame(rows)
    tmp = root / "sweep.csv.tmp"
    frame.to_csv(tmp, index=False)
    tmp.replace(root / "sweep.csv")
    return frame


def _run_local(points: list[SweepPoint], spec: SweepSpec, root: str, jobs: int, on_done,
               progress: bool = False) -> list[dict]:
    rows: dict[SweepPoint, dict] = {}
    if jobs <= 1 or len(points) <= 1:
        for p in points:
            rows[p] = run_point(p, spec, root, progress)
            on_done(p, rows[p])
        return [rows[p] for p in points]
    from concurrent.futures import as_completed

    from convat.pool import worker_pool

    pool = worker_pool(min(jobs, len(points)))
    futures = {pool.submit(run_point, p, spec, root): p for p in points}
    for future in as_completed(futures):
        rows[futures[future]] = future.result()
        on_done(futures[future], rows[futures[future]])
    return [rows[p] for p in points]


def _run_submitit(points: list[SweepPoint], spec: SweepSpec, root: str, cluster: str | None,
                  slurm: dict, on_done) -> list[dict]:
    try:
        import submitit
    except ImportError as err:
        raise ImportError("the submitit backend needs submitit: pip install submitit") from err

    executor = submitit.AutoExecutor(folder=Path(root) / "submitit" / "%j", cluster=cluster)
    params = {"timeout_min": SLURM_TIMEOUT_MIN, "name": "convat-sweep", **slurm}
    if executor.cluster == "slurm":
        params.setdefault("slurm_array_parallelism", len(points))
    executor.update_parameters(**params)
    n = len(points)
    job_list = executor.map_array(run_point, points, [spec] * n, [root] * n)
    rows = []
    for point, job in zip(points, job_list, strict=True):
        rows.append(job.result())
        on_done(point, rows[-1])
    return rows
