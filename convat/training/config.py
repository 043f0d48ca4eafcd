"""What decides a training run, as plain data: :class:`TrainConfig` and its step budget.

Kept apart from the training loop so that reading or building a configuration (the reference recipe, the CLI's
``--help``, a run folder's identity) does not import torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; recorded with every result.

    The defaults are those of the reference recipe (:data:`convat.recipe.RECIPE`, which reads them from here);
    entry points build configurations through the recipe, never from bare defaults.
    """

    model: str = "convat_tiny"
    model_kwargs: dict = field(default_factory=dict)
    epochs: int = 30
    """Training budget in passes over the training set (unless ``steps`` is set); with ``val_fraction > 0`` it
    is the maximum, and the best validation epoch is kept."""
    steps: int | None = None
    """Training budget in optimiser steps, replacing ``epochs`` when set: every fold then takes the same number
    of steps whatever its training-set size (LOSO folds differ by the held-out subject's clips), the one-cycle
    schedule spans exactly these steps and the last pass over the data stops part-way."""
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.05
    beta: float = 1e-3
    """Weight of the variational bottleneck's KL term (0 switches it off in the loss)."""
    class_weighting: bool = True
    """Weight the cross-entropy by inverse class frequency (the composite is 57/25/19 %)."""
    balanced_sampling: bool = False
    """Draw every epoch's batches with class-balanced probabilities instead (usually with class_weighting off)."""
    hflip: bool = True
    """Mirror augmentation: flip the maps horizontally and negate the u channel (it is a horizontal flow)."""
    seed: int = 0
    """The training seed: initialisation, sample order, mirror draws, dropout, the inner validation subjects.
    The data (e.g. which SynthME draw) has its own seed (``Recipe.data_seed``)."""
    device: str = "auto"
    val_fraction: float = 0.0
    """Share of the *training subjects* set aside as an inner validation split for model selection (0: none,
    fixed budget). At least one subject when positive. The test subject is never among them."""
    patience: int = 0
    """With a validation split: stop after this many epochs without a better validation UF1 (0: never stop
    early, still keep the best epoch)."""
    amp: bool = True
    """Mixed precision (bfloat16, else float16 with loss scaling) on CUDA; ignored on the CPU."""
    channels_last: bool = True
    """Channels-last memory layout of the model and its input, on CUDA (faster convolutions with mixed
    precision) and on the CPU (the convolutional stems run ~1.06x faster per CPU-second, measured in paired
    repeats; see the README's performance section). Predictions agree with the contiguous layout to float
    rounding, not bit for bit."""
    compile: str | None = None
    """``torch.compile`` the model with this mode (``"default"``, ``"reduce-overhead"`` = CUDA graphs,
    ``"max-autotune"``); ``None`` (default): eager. Speeds up small models on a GPU, where a training step is
    bound by kernel launches; the first epoch pays the compilation."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be at least 1 (or None: the budget is epochs), got {self.steps}")
        if self.patience < 0:
            raise ValueError(f"patience must be >= 0, got {self.patience}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if not self.lr >= 0:  # 0 is allowed (a frozen model, used to isolate the loss terms in tests)
            raise ValueError(f"lr must be >= 0, got {self.lr}")
        if self.compile not in COMPILE_MODES:
            raise ValueError(f"compile must be one of {list(COMPILE_MODES)}, got {self.compile!r}")


def step_plan(config: TrainConfig, n: int) -> tuple[int, int, int]:
    """``(steps per epoch, epochs, total optimiser steps)`` of training ``config`` on ``n`` clips.

    With ``config.steps`` the total is that budget and the last epoch may be partial; otherwise it is
    ``config.epochs`` full passes of ``ceil(n / batch_size)`` steps.
    """
    per_epoch = max(1, math.ceil(n / config.batch_size))
    if config.steps is None:
        return per_epoch, config.epochs, config.epochs * per_epoch
    return per_epoch, math.ceil(config.steps / per_epoch), config.steps


__all__ = ["COMPILE_MODES", "TrainConfig", "step_plan"]
