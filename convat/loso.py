"""Cross-validation by folds, leave-one-subject-out (LOSO) first of all.

For each fold: train a fresh model on the training clips for a fixed budget (or keep the best epoch of an
inner validation split drawn from the *training subjects*), predict the fold's test clips, and write that
fold's predictions and training curve to disk at once. A rerun with the same output folder resumes from the
first missing fold. The test clips take part in no decision: input normalisation statistics, the validation
subjects and every training choice come from the training clips only.

Several folds can train at once (``parallel_folds=N``): worker processes, each with its share of the CPU
threads (or all sharing one GPU), each writing its own fold files; the predictions do not depend on N.

Splits are plain ``{fold name: boolean test mask}`` dictionaries, so LOSO and the random splits of the
protocol-pitfalls chapter run through one engine, :func:`convat.folds.run_folds`; this module gives it the
deep models' ``fit_predict`` (:func:`fit_fold`) and their strategies (sequential, worker pool, batched).
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from convat import runstore
from convat.folds import FoldResult, Splits, fold_predictions, run_folds
from convat.metrics import subject_key
from convat.runstore import RunStore, array_digest, default_cache_dir, json_digest
from convat.training.fit import attach_fit, fold_fit
from convat.training.loop import TrainConfig, predict_proba, train_model


def fold_subjects(table: pd.DataFrame) -> list[str]:
    """LOSO fold order: one fold per ``dataset/subject``, sorted."""
    return sorted(subject_key(table).unique())


def loso_splits(table: pd.DataFrame) -> Splits:
    """One fold per subject; its test mask selects that subject's clips."""
    ids = subject_key(table).to_numpy()
    return {fold: ids == fold for fold in fold_subjects(table)}


def random_splits(table: pd.DataFrame, k: int = 5, seed: int = 0) -> Splits:
    """``k`` stratified random folds that ignore subjects (the leaky protocol, for comparison only)."""
    from sklearn.model_selection import StratifiedKFold

    masks = {}
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for i, (_, test) in enumerate(skf.split(np.zeros(len(table)), table["label"])):
        mask = np.zeros(len(table), dtype=bool)
        mask[test] = True
        masks[f"random{i + 1:02d}"] = mask
    return masks


def standardize(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Per-channel scaling by the training set's RMS (zero stays zero: no motion remains no motion)."""
    rms = np.sqrt((train.astype(np.float64) ** 2).mean(axis=(0, 2, 3), keepdims=True)) + 1e-8
    return [(a / rms).astype(np.float32) for a in (train, *others)]


def _stable_seed(*parts: object) -> int:
    """A seed from strings (Python's ``hash`` changes between processes; this does not)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:4], "little")


def inner_validation_mask(table: pd.DataFrame, train: np.ndarray, fraction: float, seed: int,
                          fold: str = "") -> np.ndarray:
    """Rows of whole *training* subjects set aside for model selection (``fraction`` of them, at least one).

    Only subjects with a row in ``train`` are candidates, so the test subject can never be drawn; the draw
    depends on the seed and the fold name only. Returns a boolean mask over ``table``'s rows.
    """
    train = np.asarray(train, dtype=bool)
    ids = subject_key(table).to_numpy()
    candidates = sorted(set(ids[train]))
    if len(candidates) < 2:
        raise ValueError(f"fold {fold!r}: an inner validation split needs >= 2 training subjects, "
                         f"got {candidates}")
    n_val = min(len(candidates) - 1, max(1, int(round(fraction * len(candidates)))))
    rng = np.random.default_rng(_stable_seed(seed, fold, "inner-validation"))
    chosen = set(rng.choice(candidates, size=n_val, replace=False).tolist())
    return train & np.isin(ids, list(chosen))


@dataclass
class FoldInputs:
    """One fold's data as training sees it, scaled with the statistics of the fitting clips only."""

    test: np.ndarray
    """Boolean mask over the table's rows: the held-out clips."""
    fit: np.ndarray
    """Boolean mask: the clips the model is fitted on (training clips minus any inner validation group)."""
    y: np.ndarray
    """Integer labels (indices into the classes) of every row."""
    x_fit: np.ndarray
    x_test: np.ndarray
    val: tuple[np.ndarray, np.ndarray] | None
    """Inner-validation inputs and labels when ``config.val_fraction > 0``, else ``None``."""


def fold_inputs(
    x: np.ndarray, table: pd.DataFrame, fold: str, classes: list[str], config: TrainConfig,
    test_mask: np.ndarray | None = None,
) -> FoldInputs:
    """Split and scale one fold exactly as :func:`fit_fold` trains it (also used to rebuild a fold's model).

    Without ``test_mask``, ``fold`` names a ``dataset/subject`` to hold out (LOSO). With
    ``config.val_fraction > 0``, whole training subjects are set aside as an inner validation split.
    """
    if test_mask is None:
        test_mask = (subject_key(table) == fold).to_numpy()
    test = np.asarray(test_mask, dtype=bool)
    if not test.any():
        raise ValueError(f"fold {fold!r} selects no clip; subjects are {fold_subjects(table)}")
    index = {c: i for i, c in enumerate(classes)}
    y = table["label"].map(index).to_numpy()
    if config.val_fraction > 0:
        inner = inner_validation_mask(table, ~test, config.val_fraction, config.seed, fold)
        fit = ~test & ~inner
        x_fit, x_val, x_test = standardize(x[fit], x[inner], x[test])
        return FoldInputs(test, fit, y, x_fit, x_test, (x_val, y[inner]))
    fit = ~test
    x_fit, x_test = standardize(x[fit], x[test])
    return FoldInputs(test, fit, y, x_fit, x_test, None)


def fit_fold(
    x: np.ndarray, table: pd.DataFrame, fold: str, classes: list[str], config: TrainConfig,
    test_mask: np.ndarray | None = None, progress: bool = False,
) -> FoldResult:
    """Train on everything outside ``test_mask``; return the predictions for the clips inside it and the fold's
    training curve (the deep models' ``fit_predict`` of :func:`convat.folds.run_folds`).

    Without ``test_mask``, ``fold`` names a ``dataset/subject`` to hold out (LOSO). With
    ``config.val_fraction > 0``, whole training subjects are set aside as an inner validation split and the
    best validation epoch is kept. The curve has one row per epoch; the row of the returned epoch also carries
    the model's fit to its training clips and its bottleneck's statistics (:func:`convat.training.fit.fold_fit`).
    """
    data = fold_inputs(x, table, fold, classes, config, test_mask)
    history: list = []
    model = train_model(data.x_fit, data.y[data.fit], len(classes), config, progress=progress, val=data.val,
                        history=history)
    proba = predict_proba(model, data.x_test, amp=config.amp)
    attach_fit(history, fold_fit(model, data.x_fit, data.y[data.fit], len(classes), data.x_test, seed=config.seed))
    rows = [{"fold": fold, **row} for row in history]
    return FoldResult(fold_predictions(table, data.test, classes, proba, fold), pd.DataFrame(rows))


def _pool_fold(shared, table, fold, classes, config, mask) -> tuple[str, FoldResult]:
    """One fold in a pool worker: ``x`` arrives as a memory-mapped shared array, not a pickled copy."""
    return fold, fit_fold(shared.load(), table, fold, classes, config, mask)


def check_model_name(name: str) -> None:
    """Raise ``ValueError`` naming the model when timm does not know it (before any work is done)."""
    import timm

    if not timm.is_model(name):
        raise ValueError(f"unknown model {name!r}: not registered with timm (e.g. convat_tiny, convat_small, "
                         "ststnet, offapexnet, vit_me_tiny, resnet_me)")


def run_identity(x: np.ndarray, table: pd.DataFrame, config: TrainConfig, splits: Splits,
                 data: dict | None = None) -> dict:
    """Everything that decides a run's predictions, as recorded in (and compared with) ``config.json``.

    ``data`` adds what the table cannot tell (e.g. ``dataset``, ``profile`` and ``seed`` of the data);
    the table's ``attrs["preprocess"]`` (every preprocessing parameter, see :func:`convat.preprocess.preprocess`)
    and a digest of the input tensors cover the preprocessing, the fold masks cover the splits and
    :func:`convat.runstore.code_fingerprint` the code.
    """
    clips = table[["dataset", "subject", "clip", "label"]].astype(str)
    return {
        "data": {**(data or {}), "clips": len(table), "datasets": sorted(clips["dataset"].unique()),
                 "clip_list": json_digest(clips.to_numpy().tolist())},
        "preprocess": dict(table.attrs.get("preprocess", {})),
        "inputs": {"shape": list(x.shape), "dtype": str(x.dtype), "sha256": array_digest(x)},
        "training": asdict(config),
        "classes": sorted(table["label"].unique()),
        "folds": {"names": list(splits), "masks": json_digest([np.flatnonzero(m).tolist() for m in splits.values()])},
        "code": runstore.code_fingerprint(),
    }


STRATEGIES = ("auto", "sequential", "pool", "batched")
"""How :func:`run_loso` executes its folds; ``auto``: batched on CUDA, the worker pool with
``parallel_folds > 1`` on the CPU, else sequential."""


def resolve_strategy(strategy: str, config: TrainConfig, parallel_folds: int) -> str:
    """The concrete strategy (``sequential``, ``pool`` or ``batched``) for ``strategy`` (``auto`` resolved)."""
    from convat.training.loop import resolve_device

    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {list(STRATEGIES)}")
    if strategy != "auto":
        return strategy
    if resolve_device(config.device).type == "cuda" and _batched_supported(config):
        return "batched"
    return "pool" if parallel_folds > 1 else "sequential"


def _batched_supported(config: TrainConfig) -> bool:
    try:
        from convat.training.batched import supports
    except ImportError:
        return False
    return supports(config)


def task_folds(folds: list[str], task_index: int, num_tasks: int) -> list[str]:
    """The share of ``folds`` that task ``task_index`` of ``num_tasks`` trains (every ``num_tasks``-th fold
    from ``task_index``, so shares are balanced and disjoint and together cover every fold)."""
    if num_tasks < 1 or not 0 <= task_index < num_tasks:
        raise ValueError(f"task index must be in [0, {num_tasks}) with num_tasks >= 1, got {task_index} of "
                         f"{num_tasks}")
    return list(folds)[task_index::num_tasks]


def run_loso(
    x: np.ndarray,
    table: pd.DataFrame,
    config: TrainConfig | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
    splits: Splits | None = None,
    parallel_folds: int = 1,
    data: dict | None = None,
    strategy: str = "auto",
    folds: list[str] | None = None,
) -> pd.DataFrame:
    """Pooled predictions (one row per clip) over the folds of ``splits`` (default: LOSO).

    With ``out_dir``, the folder is a :class:`convat.runstore.RunStore`: its ``config.json`` records the run's
    identity (:func:`run_identity`: data, preprocessing, inputs, training configuration, classes, folds, code);
    a folder holding another run is refused before any work, naming the differing fields. Every finished fold
    is saved at once (``folds/<fold>.csv``, its training curve ``curves/<fold>.csv`` and a manifest with their
    checksums); a rerun checks the finished folds (a damaged one is named and recomputed) and trains the rest.
    At the end the folder also holds ``predictions.csv``, ``curves.csv`` and ``metrics.csv``. A lock file
    stops a second process from writing into the same folder.

    ``parallel_folds=N`` trains N folds at a time in worker processes (CPU threads split between them).
    *Identical* means: for a fixed number of threads per fold, the predictions (probabilities to the last bit)
    do not depend on N or on interruptions. The number of threads itself can change the last bits of the
    probabilities (about 1e-7: the order of floating-point sums in the CPU kernels depends on the thread
    split), so runs with another thread count agree to about 1e-6, not bit for bit.
    Workers are *spawned* (fork is unsafe after CUDA or OpenMP use), so a script that uses it must call it under
    ``if __name__ == "__main__":``, as for any spawned multiprocessing; notebooks need nothing.

    ``strategy`` (see :data:`STRATEGIES`) chooses how the folds run: ``sequential`` in this process, ``pool``
    in the reusable worker pool of :mod:`convat.pool` (``parallel_folds`` workers), ``batched`` all folds as
    one batched model (:mod:`convat.training.batched`, for GPUs). ``folds`` restricts this call to training
    those folds (a task of a split run, see :func:`task_folds`): it trains only its missing share, and the
    pooled files are written by whichever call finds every fold's file present; it then returns the
    predictions of the folds present so far.
    """
    config = config or TrainConfig()
    if parallel_folds < 1:
        raise ValueError(f"parallel_folds must be >= 1, got {parallel_folds}")
    check_model_name(config.model)
    classes = sorted(table["label"].unique())
    splits = splits if splits is not None else loso_splits(table)
    strategy = resolve_strategy(strategy, config, parallel_folds)
    store = RunStore(out_dir) if out_dir is not None else None
    identity = run_identity(x, table, config, splits, data) if store is not None else None
    info = _run_info(config, classes, parallel_folds) if store is not None else None

    def fit_predict(fold: str, mask: np.ndarray) -> FoldResult:
        return fit_fold(x, table, fold, classes, config, mask, progress=progress)

    execute = None
    if strategy == "batched":
        def execute(todo):
            from convat.training.batched import run_batched

            for fold, part in run_batched(x, table, classes, config, dict(todo), fold_inputs).items():
                yield fold, FoldResult(part, part.attrs.pop("curve", None))
    elif strategy == "pool" and parallel_folds > 1:
        def execute(todo):
            if len(todo) <= 1:
                yield from ((fold, fit_predict(fold, mask)) for fold, mask in todo.items())
            else:
                yield from _run_parallel(x, table, classes, config, todo, parallel_folds)
    return run_folds(table, splits, fit_predict, store=store, identity=identity, info=info, only=folds,
                     execute=execute, progress=progress, desc=f"LOSO {config.model}")


def _run_parallel(x, table, classes, config, todo, workers):
    """Folds in the reusable worker pool (:mod:`convat.pool`), yielded as they finish (the engine writes each
    at once, so a crash loses only folds in flight). ``x`` is written once to a memory-mapped file the workers
    share."""
    from concurrent.futures import FIRST_COMPLETED, wait

    from convat.pool import share_array, worker_pool

    pool = worker_pool(min(workers, len(todo)))
    shared = share_array(x)
    pending = {pool.submit(_pool_fold, shared, table, fold, classes, config, mask) for fold, mask in todo.items()}
    try:
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                yield future.result()
    finally:
        for future in pending:
            future.cancel()


def load_curves(out_dir: str | Path, folds: list[str] | None = None) -> pd.DataFrame | None:
    """Per-epoch training curves of a run folder (one row per fold and epoch), or ``None`` if there are none.

    An unreadable curve file is an error naming it.
    """
    store = RunStore(out_dir)
    if folds is None:
        folds = [p.stem.replace("__", "/") for p in sorted((store.path / "curves").glob("*.csv"))]
    return store.read_curves(folds)


def run_key(x: np.ndarray, table: pd.DataFrame, config: TrainConfig, splits: Splits | None = None,
            data: dict | None = None) -> str:
    """A key covering the inputs, the labels, the folds, the configuration, ``data`` (when given: what names
    the data, see :func:`run_identity`) and :func:`convat.runstore.code_fingerprint`."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(x).tobytes())
    digest.update(table[["dataset", "subject", "clip", "label"]].to_csv(index=False).encode())
    if splits is not None:
        for name, mask in splits.items():
            digest.update(name.encode() + np.packbits(mask).tobytes())
    digest.update(json.dumps(asdict(config), sort_keys=True, default=str).encode())
    if data:
        digest.update(json.dumps(data, sort_keys=True, default=str).encode())
    digest.update(runstore.code_fingerprint().encode())
    return digest.hexdigest()[:24]


@dataclass(frozen=True)
class LosoRun:
    """A finished run: pooled predictions, per-fold training curves and the folder that holds them."""

    predictions: pd.DataFrame
    curves: pd.DataFrame | None
    path: Path
    config: TrainConfig


def cached_run(
    x: np.ndarray, table: pd.DataFrame, config: TrainConfig | None = None, progress: bool = True,
    splits: Splits | None = None, cache_dir: str | Path | None = None, parallel_folds: int = 1,
    data: dict | None = None, strategy: str = "auto", folds: list[str] | None = None,
) -> LosoRun:
    """:func:`run_loso` in a folder under ``$CONVAT_CACHE/runs`` named by :func:`run_key`, with its curves.

    ``parallel_folds``, ``strategy`` and ``folds`` (a task's share of a split run) are not part of the key:
    they change the speed, not the predictions. The key covers the inputs, labels, folds, configuration and
    :func:`convat.runstore.code_fingerprint`; the folder's ``config.json`` records the full identity (see
    :func:`run_loso`).
    """
    config = config or TrainConfig()
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "runs"
    out = base / f"{config.model}-{run_key(x, table, config, splits, data)}"
    predictions = run_loso(x, table, config, out_dir=out, progress=progress, splits=splits,
                           parallel_folds=parallel_folds, data=data, strategy=strategy, folds=folds)
    all_folds = list(splits) if splits is not None else fold_subjects(table)
    return LosoRun(predictions, load_curves(out, all_folds), out, config)


def _run_info(config: TrainConfig, classes: list[str], parallel_folds: int = 1) -> dict:
    """What ``config.json`` records beside the identity: seeds and the environment (informational only)."""
    from convat.training.loop import resolve_device

    return {
        "config": asdict(config),
        "classes": classes,
        "seeds": {
            "training": config.seed,
            "note": "every fold seeds Python, NumPy and torch with the training seed before building its model; "
                    "inner validation subjects are drawn from sha256(seed, fold)",
        },
        "parallel_folds": parallel_folds,
        "environment": {
            "resolved_device": str(resolve_device(config.device)),
            "torch_threads": torch.get_num_threads(),
            "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "platform": platform.platform(),
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        },
    }
