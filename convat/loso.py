"""Leave-one-subject-out (LOSO) evaluation.

For each subject: train a fresh model on all the other subjects for a fixed budget, predict the held-out
subject, and write that fold's predictions to disk at once. A rerun with the same output folder resumes from
the first missing fold. The held-out subject takes part in no decision: input normalisation statistics and
every training choice come from the training subjects only.
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from convat.training.loop import TrainConfig, predict_proba, train_model


def fold_subjects(table: pd.DataFrame) -> list[str]:
    """Fold order: one fold per ``dataset/subject``, sorted."""
    return sorted((table["dataset"] + "/" + table["subject"]).unique())


def standardize(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Per-channel scaling by the training set's RMS (zero stays zero: no motion remains no motion)."""
    rms = np.sqrt((train.astype(np.float64) ** 2).mean(axis=(0, 2, 3), keepdims=True)) + 1e-8
    return [(a / rms).astype(np.float32) for a in (train, *others)]


def _fold_file(out_dir: Path, fold: str) -> Path:
    return out_dir / "folds" / (fold.replace("/", "__") + ".csv")


def run_fold(
    x: np.ndarray, table: pd.DataFrame, fold: str, classes: list[str], config: TrainConfig
) -> pd.DataFrame:
    """Train without ``fold`` (a ``dataset/subject`` name) and return its predictions table."""
    ids = table["dataset"] + "/" + table["subject"]
    test = (ids == fold).to_numpy()
    if not test.any():
        raise ValueError(f"fold {fold!r} matches no clip; subjects are {sorted(ids.unique())}")
    index = {c: i for i, c in enumerate(classes)}
    y = table["label"].map(index).to_numpy()
    x_train, x_test = standardize(x[~test], x[test])
    model = train_model(x_train, y[~test], len(classes), config)
    proba = predict_proba(model, x_test)
    out = table.loc[test, ["dataset", "subject", "clip", "label"]].reset_index(drop=True)
    out["prediction"] = [classes[i] for i in proba.argmax(1)]
    out["fold"] = fold
    for k, c in enumerate(classes):
        out[f"p_{c}"] = proba[:, k]
    return out


def run_loso(
    x: np.ndarray,
    table: pd.DataFrame,
    config: TrainConfig | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Pooled LOSO predictions (one row per clip). With ``out_dir``, folds are saved and resumed."""
    config = config or TrainConfig()
    classes = sorted(table["label"].unique())
    folds = fold_subjects(table)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        (out / "folds").mkdir(parents=True, exist_ok=True)
        _write_run_info(out, config, classes, folds)
    parts = []
    for fold in tqdm(folds, desc=f"LOSO {config.model}", disable=not progress, unit="fold"):
        path = _fold_file(out, fold) if out is not None else None
        if path is not None and path.exists():
            parts.append(pd.read_csv(path, dtype={"subject": str, "clip": str}))
            continue
        part = run_fold(x, table, fold, classes, config)
        if path is not None:
            tmp = path.with_suffix(".tmp")
            part.to_csv(tmp, index=False)
            tmp.replace(path)
        parts.append(part)
    predictions = pd.concat(parts, ignore_index=True)
    if out is not None:
        predictions.to_csv(out / "predictions.csv", index=False)
    return predictions


def _write_run_info(out: Path, config: TrainConfig, classes: list[str], folds: list[str]) -> None:
    info = {
        "config": asdict(config),
        "classes": classes,
        "folds": folds,
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "platform": platform.platform(),
        },
    }
    path = out / "config.json"
    if path.exists():
        previous = json.loads(path.read_text())
        if previous["config"] != info["config"] or previous["classes"] != classes:
            raise ValueError(
                f"{out} holds a run with another configuration ({path}); use a new folder or delete it"
            )
    path.write_text(json.dumps(info, indent=2, default=str))
