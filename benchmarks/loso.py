"""Composite LOSO of ``convat_tiny`` at 64 px: strategies side by side, quiet and under load, wall and CPU time.

The full run takes far longer than the budget of ``make bench`` on a 2-core CPU, so each strategy trains a stated
subset of folds for a stated number of epochs and the time is extrapolated linearly to 68 folds, at two budgets:
30 epochs (the budget the speed issue's 12-minute target was set on) and the reference recipe's tuned step budget
(``RECIPE.steps`` optimiser steps per fold, several times longer). Every sample is a fresh process (so its CPU
time, worker processes included, is measured by the OS and nothing is warm); the strategies alternate within each
round (interleaved repeats), first on the machine as it is, then with two busy background processes that the
benchmark starts and stops itself. The extrapolation uses the training time measured inside the process (worker
start-up excluded: the reusable pool pays it once per session, not once per run); the process wall and CPU times,
start-up included, are reported next to it.

``python -m benchmarks.loso`` runs this part alone; ``--child`` is what each timed process runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.common import child_main, target
from benchmarks.load import busy, load_average, median, timed_child
from convat.recipe import RECIPE

FULL_EPOCHS = 30  # the budget the speed issue's target was set on (the recipe's budget was 30 epochs then)
QUIET_TARGET_MIN = 12.0
LOAD_FACTOR_TARGET = 2.0


def composite_inputs(size: int = RECIPE.img_size, flow: str = "dis"):
    """Composite-profile SynthME tensors (cached under $CONVAT_CACHE); LOSO time does not depend on the flow."""
    from convat.data.synth import generate
    from convat.preprocess.pipeline import PreprocessConfig, preprocess

    return preprocess(generate("composite"), PreprocessConfig(flow=flow, size=size), progress=False)


def steps_per_epoch(table, splits) -> float:
    """Mean optimiser steps per epoch over the folds at the recipe's batch size (training clips of each fold).

    ``splits`` maps each fold to its boolean test mask (:func:`convat.loso.loso_splits`).
    """
    import numpy as np

    from convat.training.config import step_plan

    config = default_config()
    return sum(step_plan(config, int(np.count_nonzero(~np.asarray(test, bool))))[0]
               for test in splits.values()) / len(splits)


def default_config(**changes):
    """The recipe's training of convat_tiny with ``changes`` (e.g. ``epochs``, ``device``)."""
    from convat.book import default_train

    return default_train(RECIPE.model, **changes)


def _child(args: argparse.Namespace) -> None:
    import time

    import numpy as np
    import pandas as pd

    from convat.book import default_train
    from convat.loso import loso_splits, run_loso
    from convat.runtime import configure_threads

    threads = configure_threads()
    x = np.load(args.data / "x.npy")
    table = pd.read_pickle(args.data / "table.pkl")
    splits = dict(list(loso_splits(table).items())[: args.folds])
    config = default_train(RECIPE.model, epochs=args.epochs, device=args.device)
    if args.strategy == "pool":
        from convat.pool import warm_pool

        # start every worker and import torch and the models in it outside the timed part: a worker's first
        # task otherwise pays the imports, which the extrapolation to 68 folds multiplies several hundred times
        warm_pool(args.workers, modules=("convat.loso", "convat.models"))
    start = time.perf_counter()
    run_loso(x, table, config, progress=False, splits=splits, parallel_folds=args.workers,
             strategy=args.strategy)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    print(json.dumps({"train_s": round(time.perf_counter() - start, 2), "threads": threads}))


#: The environment every variant runs with: the thread settings left to convat (not inherited from the caller).
_BASE_ENV: dict[str, str | None] = {"OMP_NUM_THREADS": None, "MKL_NUM_THREADS": None, "CONVAT_ALLOCATOR": None}


def _variants(workers: int) -> dict[str, tuple[list[str], dict[str, str | None]]]:
    """Name -> (child arguments, environment). The last variant is the worker pool with glibc's ``malloc`` at its
    defaults (:func:`convat.runtime.keep_freed_memory` off), to show what keeping freed memory saves."""
    pool = ["--strategy", "pool", "--workers", str(workers)]
    return {"sequential (all cores, passive wait)": (["--strategy", "sequential"], _BASE_ENV),
            f"worker pool ({workers} workers, 1 thread each)": (pool, _BASE_ENV),
            f"worker pool ({workers} workers, 1 thread each), malloc trims (CONVAT_ALLOCATOR=system)":
                (pool, {**_BASE_ENV, "CONVAT_ALLOCATOR": "system"})}


def run(x=None, table=None, n_folds: int = 2, epochs: int = 6, workers: int = 2, repeats: int = 2,
        loads: tuple[int, ...] = (0, 2)) -> dict:
    from benchmarks.threads import save_inputs
    from convat.loso import loso_splits

    if x is None:
        x, table = composite_inputs()
    splits = loso_splits(table)
    total_folds = len(splits)
    scale = (total_folds / n_folds) * (FULL_EPOCHS / epochs)
    per_epoch = steps_per_epoch(table, splits)
    recipe_scale = (total_folds / n_folds) * (RECIPE.steps / (epochs * per_epoch))
    rows = []
    variants = _variants(workers)
    with tempfile.TemporaryDirectory() as tmp:
        data = save_inputs(x, table, Path(tmp))
        for n_busy in loads:
            samples: dict[str, list[dict]] = {name: [] for name in variants}
            with busy(n_busy):
                for _ in range(repeats):
                    for name, (extra, env) in variants.items():
                        argv = ["-m", "benchmarks.loso", "--child", "--data", str(data), "--folds", str(n_folds),
                                "--epochs", str(epochs), *extra]
                        r = timed_child(argv, env)
                        r.update(json.loads(r.pop("stdout")))
                        samples[name].append(r)
            for name, rs in samples.items():
                train = median([r["train_s"] for r in rs])
                allocator = "glibc defaults" if variants[name][1].get("CONVAT_ALLOCATOR") else "kept"
                rows.append({"strategy": name, "busy_processes": n_busy, "device": "cpu", "repeats": len(rs),
                             "freed_memory": allocator,
                             "folds_timed": n_folds, "epochs_timed": epochs, "train_s_median": train,
                             "process_wall_s_median": median([r["wall_s"] for r in rs]),
                             "process_cpu_s_median": median([r["cpu_s"] for r in rs]),
                             "process_sys_s_median": median([r["sys_s"] for r in rs]),
                             "load_avg_max": max((r["load_after"] or 0) for r in rs),
                             "full_minutes_extrapolated": round(train * scale / 60, 1),
                             "recipe_minutes_extrapolated": round(train * recipe_scale / 60, 1)})
    for row in rows:
        quiet = next((r for r in rows if r["strategy"] == row["strategy"] and r["busy_processes"] == 0), None)
        row["slowdown_vs_no_busy"] = round(row["train_s_median"] / quiet["train_s_median"], 2) if quiet else None
    # the targets are convat's own settings (freed memory kept); the glibc-defaults row is a contrast
    quiet_rows = [r for r in rows if r["busy_processes"] == 0 and r["freed_memory"] == "kept"]
    best = min(quiet_rows, key=lambda r: r["full_minutes_extrapolated"]) if quiet_rows else None
    how = (f"best strategy without busy processes, extrapolated from {n_folds}/{total_folds} folds x "
           f"{epochs}/{FULL_EPOCHS} epochs; load average up to (its own processes included) "
           f"{max((r['load_avg_max'] for r in quiet_rows), default=0)}")
    targets = [target(f"composite LOSO, convat_tiny at 64 px, {FULL_EPOCHS} epochs, CPU", best and
                      best["full_minutes_extrapolated"], QUIET_TARGET_MIN, "min", how)]
    loaded = [r for r in rows if r["busy_processes"] > 0]
    if best and loaded:
        same = next(r for r in loaded if r["strategy"] == best["strategy"])
        targets.append(target("composite LOSO with 2 busy background processes, x its time without",
                              same["slowdown_vs_no_busy"], LOAD_FACTOR_TARGET, "x",
                              f"{best['strategy']}, medians of {repeats} interleaved repeats"))
    return {"rows": rows, "total_folds": total_folds, "full_epochs": FULL_EPOCHS, "recipe_steps": RECIPE.steps,
            "steps_per_epoch_mean": round(per_epoch, 2),
            "recipe_extrapolation": (f"x {total_folds}/{n_folds} folds x {RECIPE.steps} steps / ({epochs} epochs x "
                                     f"{per_epoch:.1f} steps per epoch)"),
            "extrapolation": f"x {total_folds}/{n_folds} folds x {FULL_EPOCHS}/{epochs} epochs",
            "load_average_end": load_average(), "targets": targets}


def _arguments(p) -> None:
    import argparse

    p.add_argument("--strategy", default="sequential", help=argparse.SUPPRESS)
    p.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    p.add_argument("--workers", type=int, default=1, help="fold workers of the pool scenario (at least 2)")
    p.add_argument("--folds", type=int, default=2, help="composite folds measured (extrapolated to all 68)")


def main(argv: list[str] | None = None) -> int:
    return child_main("python -m benchmarks.loso", __doc__, _child, lambda args: run(
        n_folds=args.folds, epochs=args.epochs, workers=max(2, args.workers), repeats=args.repeats),
        _arguments, argv)


if __name__ == "__main__":
    sys.exit(main())
