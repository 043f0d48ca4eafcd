"""The reference recipe: the one place that says which experiment the package runs by default.

Every entry point reads it: :func:`convat.book.default_preprocess` and :func:`convat.book.default_train` (and so
the chapters), the ``convat loso`` / ``convat sweep`` / ``convat study`` defaults, the benchmarks and the
reference study. The chapters' parameters cells spell the same values as literals, so a reader sees them and
papermill can override them; ``tests/test_recipe.py`` parses every parameters cell and fails when one
disagrees with :data:`RECIPE` (see :data:`CHAPTER_PARAMETERS`).

Two seeds, never one: ``data_seed`` picks the SynthME draw (a new synthetic population; it changes nothing for a
real dataset) and ``train_seed`` the initialisation, sample order, mirror draws and dropout of training
(``TrainConfig.seed``). "Try another seed" therefore means one of the two, and the run keys, the CLI
(``--data-seed``, ``--train-seed``) and the chapters (``DATA_SEED``, ``TRAIN_SEED``) keep them apart.

The recipe sits above the training stage (it builds a :class:`~convat.training.loop.TrainConfig` and a
:class:`~convat.preprocess.pipeline.PreprocessConfig`) and below the LOSO engine and the experiments, which
take configurations, not recipes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from convat.preprocess.pipeline import PreprocessConfig
from convat.training.config import TrainConfig

_TRAIN = TrainConfig()


def is_smoke_test(dataset: str, profile: str) -> bool:
    """Whether ``dataset`` and ``profile`` are SynthME's quick profile: a few subjects and a short budget that
    show the method running. Every page and summary that reports numbers from it says so and ranks nothing."""
    return dataset == "synthme" and profile == "quick"


@dataclass(frozen=True)
class Budget:
    """How long each fold trains: ``epochs`` passes over its training clips, or ``steps`` optimiser steps (the
    same for every fold whatever its size). ``smoke`` marks the quick profile's short budget."""

    epochs: int | None = None
    steps: int | None = None
    smoke: bool = False

    def __post_init__(self) -> None:
        if (self.epochs is None) == (self.steps is None):
            raise ValueError(f"a budget is epochs or steps, exactly one (got epochs={self.epochs}, "
                             f"steps={self.steps})")
        if (self.epochs or self.steps) < 1:
            raise ValueError(f"a budget must be at least 1, got {self.epochs or self.steps}")

    def train_fields(self) -> dict:
        """The :class:`TrainConfig` fields of this budget (an epoch budget clears ``steps``)."""
        return {"steps": self.steps} if self.steps is not None else {"epochs": self.epochs, "steps": None}

    def scaled(self, factor: float) -> Budget:
        """The same kind of budget times ``factor`` (at least 1), e.g. a third of it."""
        if self.steps is not None:
            return Budget(steps=max(1, round(self.steps * factor)), smoke=self.smoke)
        return Budget(epochs=max(1, round(self.epochs * factor)), smoke=self.smoke)

    @property
    def label(self) -> str:
        """``"30 epochs"`` or ``"4000 steps"``."""
        return f"{self.steps} steps" if self.steps is not None else f"{self.epochs} epochs"

    def __str__(self) -> str:
        text = f"{self.steps} optimiser steps" if self.steps is not None else f"{self.epochs} epochs"
        return text + (" per fold (the quick profile's smoke-test budget)" if self.smoke else " per fold")


@dataclass(frozen=True)
class Recipe:
    """The reference experiment: data, preprocessing, model, training budget and seeds."""

    dataset: str = "synthme"
    profile: str = "quick"
    """SynthME profile: ``quick`` (10 subjects, the smoke test the book builds with) or ``composite``."""
    data_seed: int = 0
    """The SynthME draw (ignored for the real datasets)."""
    flow: str = "tvl1"
    img_size: int = 64
    """Model input size in pixels (the paper does not state its own; see the model chapter)."""
    input: str = "flow"
    model: str = "convat_tiny"
    steps: int = 4000
    """The training budget in optimiser steps per fold, the same for every fold whatever its size. Chosen by the
    budget search (:mod:`convat.experiments.tuning`, ``results/tuning``) on a development SynthME draw of the
    composite profile with a rule fixed before the search ran (:func:`~convat.experiments.tuning.choose_budget`)."""
    smoke_epochs: int = 30
    """The budget on SynthME's quick profile, which is a smoke test: it shows the pipeline running in minutes on
    a CPU and ranks nothing, so it does not pay the reference budget (hours there on a CPU)."""
    lr: float = _TRAIN.lr
    batch_size: int = _TRAIN.batch_size
    weight_decay: float = _TRAIN.weight_decay
    beta: float = _TRAIN.beta
    train_seed: int = _TRAIN.seed
    """Initialisation, sample order, mirror draws and dropout (``TrainConfig.seed``)."""
    device: str = "auto"

    def budget(self, dataset: str | None = None, profile: str | None = None, epochs: int | None = None,
               steps: int | None = None) -> Budget:
        """The training budget per fold for ``dataset`` and ``profile`` (default: the recipe's own).

        ``epochs`` or ``steps`` given is that budget (one, not both). Otherwise SynthME's quick profile trains
        :attr:`smoke_epochs` epochs (a smoke test) and everything else the reference :attr:`steps`.
        """
        if epochs is not None and steps is not None:
            raise ValueError(f"two budgets given (epochs={epochs}, steps={steps}); give one")
        if epochs is not None:
            return Budget(epochs=epochs)
        if steps is not None:
            return Budget(steps=steps)
        dataset, profile = dataset or self.dataset, profile or self.profile
        if is_smoke_test(dataset, profile):
            return Budget(epochs=self.smoke_epochs, smoke=True)
        return Budget(steps=self.steps)

    def preprocess_config(self, **overrides) -> PreprocessConfig:
        """The preprocessing of this recipe; ``overrides`` are :class:`PreprocessConfig` fields."""
        return PreprocessConfig(**{"flow": self.flow, "size": self.img_size, "input": self.input, **overrides})

    def train_config(self, **overrides) -> TrainConfig:
        """The training of this recipe; ``overrides`` are :class:`TrainConfig` fields (``seed`` is the training
        seed). The budget is :meth:`budget`'s for the recipe's dataset and profile unless ``epochs`` or ``steps``
        is given (``epochs`` alone is an epoch budget)."""
        overrides = dict(overrides)
        budget = self.budget(epochs=overrides.pop("epochs", None), steps=overrides.pop("steps", None))
        values = {"model": self.model, **budget.train_fields(), "lr": self.lr,
                  "batch_size": self.batch_size, "weight_decay": self.weight_decay, "beta": self.beta,
                  "seed": self.train_seed, "device": self.device}
        unknown = sorted(set(overrides) - {f.name for f in fields(TrainConfig)})
        if unknown:
            raise TypeError(f"not TrainConfig fields: {', '.join(unknown)}")
        return TrainConfig(**{**values, **overrides})

    def with_(self, **changes) -> Recipe:
        """A copy with ``changes`` (recipe field names), checked: an unknown name is an error."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise TypeError(f"not recipe fields: {', '.join(unknown)} (fields: {', '.join(asdict(self))})")
        return replace(self, **changes)


#: The reference recipe.
RECIPE = Recipe()

#: Chapter parameter name -> recipe field. A parameters cell that sets one of these names must set the recipe's
#: value (``param("NAME", default)`` counts by its default); chapters that study a setting name it differently.
CHAPTER_PARAMETERS = {
    "DATASET": "dataset", "PROFILE": "profile", "DATA_SEED": "data_seed", "FLOW": "flow", "IMG_SIZE": "img_size",
    "MODEL": "model", "LR": "lr", "TRAIN_SEED": "train_seed", "DEVICE": "device",
}

#: Chapter parameters that override the recipe's budget; a chapter leaves them ``None`` so that its budget follows
#: ``DATASET`` and ``PROFILE`` (:meth:`Recipe.budget`).
BUDGET_PARAMETERS = ("EPOCHS", "STEPS")


def parameters_cell_values(source: str) -> dict[str, object]:
    """The literal value of every simple assignment in a parameters cell's ``source``.

    ``NAME = literal`` gives the literal; ``NAME = param("NAME", default)`` (the environment switch of
    :func:`convat.book.param`) gives its default. Other assignments are skipped: they are not settings.
    """
    import ast

    values: dict[str, object] = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            continue
        value = node.value
        if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "param" and len(value.args) == 2:
            value = value.args[1]
        try:
            values[node.targets[0].id] = ast.literal_eval(value)
        except ValueError:
            continue
    return values


def recipe_mismatches(source: str, recipe: Recipe = RECIPE) -> list[str]:
    """``NAME = value (recipe: field = value)`` for every parameter of ``source`` that disagrees with ``recipe``."""
    values = parameters_cell_values(source)
    return ([f"{name} = {values[name]!r} (recipe: {field} = {getattr(recipe, field)!r})"
             for name, field in CHAPTER_PARAMETERS.items()
             if name in values and values[name] != getattr(recipe, field)]
            + [f"{name} = {values[name]!r} (must be None: the recipe's budget follows DATASET and PROFILE)"
               for name in BUDGET_PARAMETERS if values.get(name) is not None])


__all__ = ["BUDGET_PARAMETERS", "CHAPTER_PARAMETERS", "RECIPE", "Budget", "Recipe", "is_smoke_test",
           "parameters_cell_values", "recipe_mismatches"]
