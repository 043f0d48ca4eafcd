"""Composite LOSO wall time for ``convat_tiny`` at 64 px: sequential vs fold-parallel, in the same run.

The full run (68 folds x the book's 30 epochs) takes far longer than the 15-minute budget of ``make bench`` on a
2-core CPU, so the benchmark times a stated subset of folds for a stated number of epochs with each strategy and
extrapolates linearly to 68 folds x 30 epochs. Per-fold start-up costs (worker processes importing torch) are
counted once per measured fold, so the extrapolation of the parallel run is, if anything, pessimistic.
"""

from __future__ import annotations

import torch

from benchmarks.common import stopwatch, target

FULL_EPOCHS = 30  # convat.book.default_train


def composite_inputs(size: int = 64, flow: str = "dis"):
    """Composite-profile SynthME tensors (cached under $CONVAT_CACHE); LOSO time does not depend on the flow."""
    from convat.data.synth import generate
    from convat.preprocess.pipeline import PreprocessConfig, preprocess

    return preprocess(generate("composite"), PreprocessConfig(flow=flow, size=size), progress=False)


def time_loso(x, table, model: str, epochs: int, n_folds: int, parallel_folds: int, device: str) -> float:
    from convat.book import default_train
    from convat.loso import loso_splits, run_loso

    splits = dict(list(loso_splits(table).items())[:n_folds])
    config = default_train(model, epochs=epochs, device=device)
    with stopwatch() as t:
        run_loso(x, table, config, progress=False, splits=splits, parallel_folds=parallel_folds)
    return t()


def run(x=None, table=None, n_folds: int = 2, epochs: int = 1, workers: int = 2, model: str = "convat_tiny") -> dict:
    from convat.loso import loso_splits

    if x is None:
        x, table = composite_inputs()
    total_folds = len(loso_splits(table))
    scale = (total_folds / n_folds) * (FULL_EPOCHS / epochs)
    rows = []
    for parallel in (1, workers):
        seconds = time_loso(x, table, model, epochs, n_folds, parallel, "cpu")
        rows.append({"strategy": "sequential" if parallel == 1 else f"fold-parallel ({parallel} workers)",
                     "device": "cpu", "model": model, "img_size": int(x.shape[-1]), "folds_timed": n_folds,
                     "epochs_timed": epochs, "seconds_timed": round(seconds, 1),
                     "full_minutes_extrapolated": round(seconds * scale / 60, 1)})
    best = min(r["full_minutes_extrapolated"] for r in rows)
    how = f"best strategy, extrapolated from {n_folds}/{total_folds} folds x {epochs}/{FULL_EPOCHS} epochs"
    targets = [target(f"composite LOSO, {model} at 64 px, {FULL_EPOCHS} epochs, CPU", best, 30.0, "min", how)]
    if torch.cuda.is_available():
        seconds = time_loso(x, table, model, epochs, n_folds, 1, "cuda")
        minutes = seconds * scale / 60
        rows.append({"strategy": "sequential", "device": f"cuda ({torch.cuda.get_device_name(0)})", "model": model,
                     "img_size": int(x.shape[-1]), "folds_timed": n_folds, "epochs_timed": epochs,
                     "seconds_timed": round(seconds, 1), "full_minutes_extrapolated": round(minutes, 1)})
        targets.append(target("composite LOSO on one GPU", minutes, 5.0, "min", "extrapolated, GPU"))
    else:
        targets.append(target("composite LOSO on one GPU", None, 5.0, "min", "not measured: no GPU on this machine"))
    return {"rows": rows, "total_folds": total_folds, "full_epochs": FULL_EPOCHS,
            "extrapolation": f"x {total_folds}/{n_folds} folds x {FULL_EPOCHS}/{epochs} epochs", "targets": targets}
