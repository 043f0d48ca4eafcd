"""What the chapters share: loading a dataset by name and the default configurations.

Chapters import these instead of repeating settings, so two chapters that run the same experiment hit the
same cached run (see :func:`convat.loso.cached_loso`) and a reader switches every chapter to the real data by
changing the parameters cell only.
"""

from __future__ import annotations

import os
from pathlib import Path

from convat.data.records import ClipRecord
from convat.preprocess.pipeline import PreprocessConfig
from convat.training.loop import TrainConfig

#: Input size of the book's runs in the quick profile (the paper's size is unknown; see the model chapter).
QUICK_IMG_SIZE = 64


def data_root(root: str | Path | None = None) -> Path | None:
    """The data root: the argument, else ``$CONVAT_DATA``, else ``None`` (SynthME needs none)."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("CONVAT_DATA")
    return Path(env).expanduser() if env else None


def dataset_names() -> list[str]:
    """Every name :func:`load_records` (and ``convat loso --dataset``) accepts."""
    from convat.data.readers import DATASETS, PROTOCOLS

    return ["synthme", *DATASETS, *PROTOCOLS]


def load_records(dataset: str = "synthme", profile: str = "quick", root: str | Path | None = None,
                 seed: int = 0) -> list[ClipRecord]:
    """Clip records of a dataset by name: ``synthme`` (built in) or a real dataset under the data root.

    Real datasets (``casme2``, ``samm``, ``smic``, ``megc2019``) and named protocols (``casme2_5class``,
    ``samm_5class``, ``casme2_megc3``, ``samm_megc3``: one class scheme each, with its own label map) are read
    strictly from ``root`` (default ``$CONVAT_DATA``): annotation errors raise with the report (see
    ``convat data check``); ``profile`` and ``seed`` apply to SynthME only.
    """
    if dataset == "synthme":
        from convat.data.synth import generate

        return generate(profile, seed=seed)
    from convat.data.readers import DATASETS, PROTOCOLS, read_protocol

    if dataset in DATASETS or dataset in PROTOCOLS:
        return read_protocol(dataset, data_root(root), strict=True)[0]
    raise ValueError(f"unknown dataset {dataset!r}; available: {', '.join(map(repr, dataset_names()))}")


def default_preprocess(size: int = QUICK_IMG_SIZE, flow: str = "tvl1", input: str = "flow") -> PreprocessConfig:
    """The preprocessing every chapter uses unless it studies preprocessing itself; ``input`` switches to the
    apex face image (``apex_grey``, ``apex_rgb``) or flow and apex together, on the same clips and crops."""
    return PreprocessConfig(flow=flow, size=size, input=input)


def default_train(model: str = "convat_tiny", epochs: int = 30, device: str = "auto", seed: int = 0,
                  **overrides) -> TrainConfig:
    """The training budget every chapter uses unless it studies training itself (``overrides`` may set ``lr``)."""
    return TrainConfig(model=model, epochs=epochs, device=device, seed=seed, **{"lr": 2e-3, **overrides})
