"""Thread settings of one training fold, quiet and under load, side by side (interleaved repeats).

Each variant trains the same composite fold in a fresh process (the OpenMP wait policy is fixed when torch
loads, so it cannot change within one process):

- ``torch default``: torch's own thread count (all cores) and the OpenMP runtime's default wait policy, as
  before :mod:`convat.runtime` (:func:`load_torch` removes the passive policy that importing convat set);
- ``N thread(s), passive``: :func:`convat.runtime.configure_threads` with ``OMP_WAIT_POLICY=PASSIVE``.

Run as ``python -m benchmarks.threads`` for the table, or through ``make bench`` (part ``threads``). The child
mode (``--child``) is what each timed process runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from benchmarks.common import child_main
from benchmarks.load import busy, load_average, median, timed_child
from convat.recipe import RECIPE

VARIANTS = {"torch default": None, "1 thread, passive": 1, "2 threads, passive": 2}


def load_torch(threads: int | None) -> str | None:
    """Load torch for a variant and return the ``OMP_WAIT_POLICY`` its OpenMP runtime started with: ``None`` (the
    runtime's default) for ``torch default`` (``threads`` None), else the passive policy convat set.

    Why: this module's imports already imported convat, which puts ``OMP_WAIT_POLICY=PASSIVE`` into the
    environment, and libgomp reads it once, when torch loads it. Until 2026-12-07 the ``torch default`` rows
    therefore measured the passive policy too."""
    import os
    import sys

    if "torch" in sys.modules:
        raise RuntimeError("torch is already loaded: its OpenMP wait policy can no longer be chosen")
    if threads is None:
        os.environ.pop("OMP_WAIT_POLICY", None)
    policy = os.environ.get("OMP_WAIT_POLICY")
    import torch  # noqa: F401  (loads libgomp, which reads the policy now)

    return policy


def _child(args: argparse.Namespace) -> None:
    import time

    load_torch(args.threads)
    import numpy as np
    import pandas as pd

    from convat.book import default_train
    from convat.loso import fit_fold, fold_subjects
    from convat.runtime import configure_threads

    if args.threads is not None:
        configure_threads(args.threads)
    x = np.load(args.data / "x.npy")
    table = pd.read_pickle(args.data / "table.pkl")
    fold = fold_subjects(table)[0]
    classes = sorted(table["label"].unique())
    start = time.perf_counter()
    fit_fold(x, table, fold, classes, default_train(RECIPE.model, epochs=args.epochs, device="cpu"))
    print(json.dumps({"train_s": round(time.perf_counter() - start, 2)}))


def save_inputs(x, table, folder: Path) -> Path:
    import numpy as np

    np.save(folder / "x.npy", x)
    table.to_pickle(folder / "table.pkl")
    return folder


def run(x=None, table=None, epochs: int = 2, repeats: int = 2, loads: tuple[int, ...] = (0, 2)) -> dict:
    """Median wall and CPU seconds of one fold per variant, quiet (0 busy processes) and under load."""
    if x is None:
        from benchmarks.loso import composite_inputs

        x, table = composite_inputs()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = save_inputs(x, table, Path(tmp))
        for n_busy in loads:
            samples: dict[str, list[dict]] = {v: [] for v in VARIANTS}
            with busy(n_busy):
                for _ in range(repeats):  # interleaved: every variant once per round
                    for name, threads in VARIANTS.items():
                        argv = ["-m", "benchmarks.threads", "--child", "--data", str(data), "--epochs", str(epochs)]
                        env = {"OMP_NUM_THREADS": None, "MKL_NUM_THREADS": None, "CONVAT_THREADS": None}
                        if threads is not None:
                            argv += ["--threads", str(threads)]
                            env["OMP_WAIT_POLICY"] = "PASSIVE"
                        else:
                            env["OMP_WAIT_POLICY"] = None
                        r = timed_child(argv, env)
                        r["train_s"] = json.loads(r.pop("stdout"))["train_s"]
                        samples[name].append(r)
            for name, rs in samples.items():
                rows.append({"variant": name, "busy_processes": n_busy, "repeats": len(rs),
                             "train_s_median": median([r["train_s"] for r in rs]),
                             "process_wall_s_median": median([r["wall_s"] for r in rs]),
                             "process_cpu_s_median": median([r["cpu_s"] for r in rs]),
                             "load_avg_max": max((r["load_after"] or 0) for r in rs)})
    for row in rows:
        quiet = next(r for r in rows if r["variant"] == row["variant"] and r["busy_processes"] == 0)
        row["slowdown_vs_quiet"] = round(row["train_s_median"] / quiet["train_s_median"], 2) if loads[0] == 0 \
            else None
    return {"rows": rows, "epochs": epochs, "fold": "first composite fold", "load_average_end": load_average(),
            "how": f"one composite fold, convat_tiny 64 px, {epochs} epochs, fresh process per sample, "
                   f"{repeats} interleaved repeats per variant"}


def main(argv: list[str] | None = None) -> int:
    import argparse

    return child_main("python -m benchmarks.threads", __doc__, _child,
                      lambda args: run(epochs=args.epochs, repeats=args.repeats),
                      lambda p: p.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS), argv)


if __name__ == "__main__":
    sys.exit(main())
