"""Cross-validation by folds, leave-one-subject-out (LOSO) first of all.

For each fold: train a fresh model on the training clips for a fixed budget, predict the fold's test clips,
and write that fold's predictions to disk at once. A rerun with the same output folder resumes from the first
missing fold. The test clips take part in no decision: input normalisation statistics and every training
choice come from the training clips only.

Splits are plain ``{fold name: boolean test mask}`` dictionaries, so LOSO and the random splits of the
protocol-pitfalls chapter run through one engine.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from convat.preprocess.cache import default_cache_dir
from convat.training.loop import TrainConfig, predict_proba, train_model

Splits = dict[str, np.ndarray]


def subject_ids(table: pd.DataFrame) -> pd.Series:
    """``dataset/subject`` for every row: subjects are only unique within a dataset."""
    return table["dataset"].astype(str) + "/" + table["subject"].astype(str)


def fold_subjects(table: pd.DataFrame) -> list[str]:
    """LOSO fold order: one fold per ``dataset/subject``, sorted."""
    return sorted(subject_ids(table).unique())


def loso_splits(table: pd.DataFrame) -> Splits:
    """One fold per subject; its test mask selects that subject's clips."""
    ids = subject_ids(table).to_numpy()
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


def _fold_file(out_dir: Path, fold: str) -> Path:
    return out_dir / "folds" / (fold.replace("/", "__") + ".csv")


def run_fold(
    x: np.ndarray, table: pd.DataFrame, fold: str, classes: list[str], config: TrainConfig,
    test_mask: np.ndarray | None = None,
) -> pd.DataFrame:
    """Train on everything outside ``test_mask`` and return the predictions for the clips inside it.

    Without ``test_mask``, ``fold`` names a ``dataset/subject`` to hold out (LOSO).
    """
    if test_mask is None:
        test_mask = (subject_ids(table) == fold).to_numpy()
    test = np.asarray(test_mask, dtype=bool)
    if not test.any():
        raise ValueError(f"fold {fold!r} selects no clip; subjects are {fold_subjects(table)}")
    index = {c: i for i, c in enumerate(classes)}
    y = table["label"].map(index).to_numpy()
    x_train, x_test = standardize(x[~test], x[test])
    model = train_model(x_train, y[~test], len(classes), config)
    proba = predict_proba(model, x_test)
    out = table.loc[test, ["dataset", "subject", "clip", "label"]].reset_index(drop=True)
    out["prediction"] = [classes[i] for i in proba.argmax(1)]
    out["fold"] = fold
    for k, c in enumerate(classes):
        out[f"p_{c}"] = proba[:, k].astype(np.float64)  # float64 round-trips exactly through CSV
    return out


def run_loso(
    x: np.ndarray,
    table: pd.DataFrame,
    config: TrainConfig | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
    splits: Splits | None = None,
) -> pd.DataFrame:
    """Pooled predictions (one row per clip) over the folds of ``splits`` (default: LOSO).

    With ``out_dir``, every finished fold is saved at once and a rerun resumes from the first missing one.
    """
    config = config or TrainConfig()
    classes = sorted(table["label"].unique())
    splits = splits if splits is not None else loso_splits(table)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        (out / "folds").mkdir(parents=True, exist_ok=True)
        _write_run_info(out, config, classes, list(splits))
    parts = []
    for fold, mask in tqdm(splits.items(), desc=f"LOSO {config.model}", disable=not progress, unit="fold"):
        path = _fold_file(out, fold) if out is not None else None
        if path is not None and path.exists():
            parts.append(pd.read_csv(path, dtype={"subject": str, "clip": str}))
            continue
        part = run_fold(x, table, fold, classes, config, test_mask=mask)
        if path is not None:
            tmp = path.with_suffix(".tmp")
            part.to_csv(tmp, index=False)
            tmp.replace(path)
        parts.append(part)
    predictions = pd.concat(parts, ignore_index=True)
    if out is not None:
        predictions.to_csv(out / "predictions.csv", index=False)
    return predictions


def source_fingerprint() -> str:
    """Hash of the installed ``convat`` sources: cached runs never outlive a code change."""
    root = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def run_key(x: np.ndarray, table: pd.DataFrame, config: TrainConfig, splits: Splits | None = None) -> str:
    """A key covering the inputs, the labels, the folds, the configuration and the package source."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(x).tobytes())
    digest.update(table[["dataset", "subject", "clip", "label"]].to_csv(index=False).encode())
    if splits is not None:
        for name, mask in splits.items():
            digest.update(name.encode() + np.packbits(mask).tobytes())
    digest.update(json.dumps(asdict(config), sort_keys=True, default=str).encode())
    digest.update(source_fingerprint().encode())
    return digest.hexdigest()[:24]


def cached_loso(
    x: np.ndarray, table: pd.DataFrame, config: TrainConfig | None = None, progress: bool = True,
    splits: Splits | None = None, root: str | Path | None = None,
) -> pd.DataFrame:
    """:func:`run_loso` in a folder under ``$CONVAT_CACHE/runs`` named by :func:`run_key`.

    Chapters that need the same run (the LOSO and results chapters, say) train it once per build; a changed
    input, configuration or package source starts a new run; an interrupted run resumes.
    """
    config = config or TrainConfig()
    base = Path(root) if root is not None else default_cache_dir() / "runs"
    out = base / f"{config.model}-{run_key(x, table, config, splits)}"
    return run_loso(x, table, config, out_dir=out, progress=progress, splits=splits)


def _write_run_info(out: Path, config: TrainConfig, classes: list[str], folds: list[str]) -> None:
    info = {
        "config": asdict(config),
        "classes": classes,
        "folds": folds,
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "platform": platform.platform(),
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        },
    }
    path = out / "config.json"
    if path.exists():
        previous = json.loads(path.read_text())
        if previous["config"] != json.loads(json.dumps(info["config"], default=str)) or previous["classes"] != classes:
            raise ValueError(
                f"{out} holds a run with another configuration ({path}); use a new folder or delete it"
            )
    path.write_text(json.dumps(info, indent=2, default=str))
