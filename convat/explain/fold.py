"""The model of one LOSO fold, and the held-out subject's inputs and ground truth on the model's grid.

Explanations of a subject's clips always come from the model trained **without** that subject: the same
training set, input scaling and configuration as the LOSO fold in which the subject was tested. Trained
weights are cached on disk under a key covering the inputs, labels, fold, configuration and the code that
decides results (:func:`convat.runstore.code_fingerprint`), so a chapter rebuild does not retrain.
"""

from __future__ import annotations

import os
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from convat import runstore
from convat.data.records import ClipRecord
from convat.loso import fold_inputs, run_key
from convat.preprocess.pipeline import PreprocessConfig, align_to_input, apex_index
from convat.training.loop import TrainConfig, build_model, predict_proba, resolve_device, train_model


@dataclass
class FoldModel:
    """A trained fold model and the held-out clips it may explain."""

    model: torch.nn.Module
    fold: str
    classes: list[str]
    test_index: np.ndarray
    """Row positions (in the full table) of the held-out clips."""
    x_test: np.ndarray
    """Held-out inputs, standardised with the training clips' statistics, as the model sees them."""
    y_test: np.ndarray
    """Integer labels of the held-out clips (indices into ``classes``)."""

    def predict(self) -> np.ndarray:
        """Predicted class indices of the held-out clips."""
        return predict_proba(self.model, self.x_test).argmax(1)


def _weights_path(x: np.ndarray, table: pd.DataFrame, fold: str, config: TrainConfig, cache_dir: Path | None,
                  permute_labels: int | None = None) -> Path:
    """The weights file of one fold model, keyed like every cached run (:func:`convat.loso.run_key`: inputs,
    labels, configuration, code fingerprint) plus the fold, the label permutation and the torch version (the
    file format)."""
    base = Path(cache_dir) if cache_dir is not None else runstore.default_cache_dir() / "explain_models"
    extra = {"fold": fold, "torch": torch.__version__}
    if permute_labels is not None:
        extra["permute_labels"] = permute_labels
    return base / f"{config.model}-{run_key(x, table, config, data=extra)}.pt"


def permuted_labels(y: np.ndarray, rows: np.ndarray, seed: int) -> np.ndarray:
    """A copy of ``y`` whose entries at the boolean ``rows`` are shuffled among themselves (class counts kept):
    the labels of the data-randomisation sanity check (Adebayo et al., 2018)."""
    y = np.array(y, copy=True)
    index = np.flatnonzero(rows)
    y[index] = y[np.random.default_rng(seed).permutation(index)]
    return y


def _load_weights(path: Path, config: TrainConfig, n_classes: int, x: np.ndarray) -> torch.nn.Module | None:
    """Cached weights (``weights_only``: no pickled code runs), or ``None`` when the file is damaged (then it is
    named in a warning and moved aside, and the model is trained again)."""
    model = build_model(config, n_classes, x.shape[1], x.shape[-1])
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except (RuntimeError, OSError, EOFError, KeyError, ValueError, pickle.UnpicklingError) as exc:
        warnings.warn(f"cached weights {path}: unreadable ({type(exc).__name__}); moved aside and trained again",
                      stacklevel=3)
        os.replace(path, path.with_name(path.name + ".bad"))
        return None
    return model.to(resolve_device(config.device))


def fold_model(
    x: np.ndarray, table: pd.DataFrame, fold: str, config: TrainConfig, cache: bool = True,
    cache_dir: str | Path | None = None, permute_labels: int | None = None,
) -> FoldModel:
    """Train (or load from the cache) the LOSO model that held out ``fold`` (a ``dataset/subject``).

    Training follows :func:`convat.loso.fit_fold` exactly, through the same :func:`convat.loso.fold_inputs`
    (inner validation subjects, standardisation with the fitting clips' statistics), then
    :func:`convat.training.loop.train_model` on the other subjects. ``permute_labels``, a seed, trains the
    same recipe on the training clips' labels shuffled among them (a control: the returned ``y_test`` stays
    the true labels of the held-out clips).
    """
    classes = sorted(table["label"].unique())
    data = fold_inputs(x, table, fold, classes, config)
    y_train = data.y if permute_labels is None else permuted_labels(data.y, ~data.test, permute_labels)
    val = data.val
    if val is not None and permute_labels is not None:
        inner = ~data.test & ~data.fit
        val = (val[0], y_train[inner])
    path = _weights_path(x, table, fold, config, Path(cache_dir) if cache_dir is not None else None, permute_labels)
    model = _load_weights(path, config, len(classes), x) if cache and path.exists() else None
    if model is None:
        model = train_model(data.x_fit, y_train[data.fit], len(classes), config, val=val)
        if cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
            os.replace(tmp, path)
    model.eval()
    return FoldModel(model, fold, classes, np.flatnonzero(data.test), data.x_test, data.y[data.test])


def fresh_model(config: TrainConfig, num_classes: int, in_chans: int, img_size: int, seed: int) -> torch.nn.Module:
    """A freshly initialised copy of the configuration's network (initialised from ``seed``), in evaluation mode:
    the untrained reference of the faithfulness tables and the end of the cascading randomisation."""
    torch.manual_seed(seed)
    return build_model(config, num_classes, in_chans, img_size).eval()


def truth_masks(records: list[ClipRecord], config: PreprocessConfig, au: str | None = None) -> np.ndarray:
    """SynthME's true AU regions on the model's input grid, ``(N, S, S)`` bool: the union of the clip's AU
    masks, or only ``au``'s (empty where the clip lacks it)."""
    out = []
    for r in records:
        if r.truth is None:
            raise ValueError(f"{r.key} has no ground truth; faithfulness scores need SynthME")
        if au is None:
            mask = r.truth.mask
        else:
            mask = r.truth.masks.get(au, np.zeros(r.truth.flow.shape[:2], dtype=bool))
        out.append(align_to_input(r, np.asarray(mask, dtype=bool), config))
    return np.stack(out)


def apex_frames(records: list[ClipRecord], config: PreprocessConfig) -> np.ndarray:
    """The apex frame of each clip on the model's input grid, ``(N, S, S, 3)`` float in [0, 1]."""
    out = []
    for r in records:
        frame = r.frames.load([apex_index(r, config.apex)])[0]
        out.append(np.clip(align_to_input(r, frame.astype(np.float32) / 255.0, config), 0.0, 1.0))
    return np.stack(out)
