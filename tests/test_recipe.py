"""One reference recipe: the package, the CLI, the chapters and the benchmarks read the same values."""

from dataclasses import fields
from pathlib import Path

import pytest

from convat.recipe import (
    CHAPTER_PARAMETERS,
    RECIPE,
    Budget,
    Recipe,
    parameters_cell_values,
    recipe_mismatches,
)
from convat.training.config import TrainConfig

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = sorted(p for p in BOOK.glob("*.md") if "tags: [parameters]" in p.read_text(encoding="utf-8"))


def _parameters(chapter: Path) -> str:
    from convat.site.exercises import parameters_source

    return parameters_source(chapter)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_parameters_cell_spells_the_recipe(chapter):
    assert recipe_mismatches(_parameters(chapter)) == []


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_no_chapter_has_one_seed_for_data_and_training(chapter):
    """A lone SEED would make "try another seed" change the data and the initialisation at once."""
    values = parameters_cell_values(_parameters(chapter))
    assert "SEED" not in values
    source = chapter.read_text(encoding="utf-8")
    assert "seed=SEED" not in source and "SEED +" not in source.replace("_SEED +", "")


def test_the_parser_reads_literals_and_param_defaults_and_the_check_can_fail():
    source = 'DATASET = param("DATASET", "synthme")\nEPOCHS = 7  # comment\nMODELS = ["a", "b"]\nX = f(1)\n'
    assert parameters_cell_values(source) == {"DATASET": "synthme", "EPOCHS": 7, "MODELS": ["a", "b"]}
    assert recipe_mismatches(source) == ["EPOCHS = 7 (must be None: the recipe's budget follows DATASET and PROFILE)"]
    assert recipe_mismatches('LR = 0.5\nSTEPS = None\n') == [f"LR = 0.5 (recipe: lr = {RECIPE.lr!r})"]


def test_the_budget_follows_the_dataset_and_profile():
    """The quick profile is a smoke test with a short epoch budget; the composite and real data train the tuned
    step budget; an explicit budget wins, and two are an error."""
    assert RECIPE.budget("synthme", "quick") == Budget(epochs=RECIPE.smoke_epochs, smoke=True)
    assert RECIPE.budget("synthme", "composite") == Budget(steps=RECIPE.steps)
    assert RECIPE.budget("casme2", "quick") == Budget(steps=RECIPE.steps)  # the profile is SynthME's only
    assert RECIPE.budget("synthme", "composite", epochs=5) == Budget(epochs=5)
    assert RECIPE.budget("synthme", "quick", steps=50) == Budget(steps=50)
    with pytest.raises(ValueError, match="two budgets"):
        RECIPE.budget(epochs=1, steps=1)
    with pytest.raises(ValueError, match="exactly one"):
        Budget()
    assert str(Budget(steps=10)) == "10 optimiser steps per fold"
    assert "smoke" in str(RECIPE.budget("synthme", "quick"))
    assert Budget(steps=10).scaled(1 / 3) == Budget(steps=3) and Budget(epochs=2).scaled(0.1) == Budget(epochs=1)
    composite = RECIPE.with_(profile="composite").train_config()
    assert (composite.steps, RECIPE.train_config().steps) == (RECIPE.steps, None)
    from convat.book import default_train, training_budget

    assert default_train(budget=training_budget("synthme", "composite")).steps == RECIPE.steps
    assert default_train(budget=7).epochs == 7 and default_train(budget=7).steps is None


def test_the_recipe_builds_the_configs_and_the_training_defaults_agree():
    config = RECIPE.train_config()
    bare = TrainConfig()
    for name in ("epochs", "lr", "batch_size", "weight_decay", "beta", "model"):
        assert getattr(config, name) == getattr(bare, name), name
    assert config.epochs == RECIPE.smoke_epochs and config.steps is None  # the default profile is the quick one
    assert config.seed == RECIPE.train_seed
    assert RECIPE.with_(train_seed=3).train_config().seed == 3
    prep = RECIPE.preprocess_config()
    assert (prep.flow, prep.size, prep.input) == (RECIPE.flow, RECIPE.img_size, RECIPE.input)
    with pytest.raises(TypeError, match="not recipe fields: seed"):
        RECIPE.with_(seed=1)
    with pytest.raises(TypeError, match="not TrainConfig fields: epoch"):
        RECIPE.train_config(epoch=3)
    assert set(CHAPTER_PARAMETERS.values()) <= {f.name for f in fields(Recipe)}


def test_book_defaults_and_cli_defaults_come_from_the_recipe():
    from convat.book import default_preprocess, default_train
    from convat.cli import build_parser

    assert default_train() == RECIPE.train_config()
    assert default_train("ststnet", epochs=3).steps is None and default_train(epochs=3).epochs == 3
    assert default_preprocess() == RECIPE.preprocess_config()
    defaults = vars(build_parser().parse_args(["loso"]))
    for dest, field in {"dataset": "dataset", "profile": "profile", "data_seed": "data_seed", "flow": "flow",
                        "img_size": "img_size", "model": "model", "lr": "lr", "train_seed": "train_seed",
                        "device": "device"}.items():
        assert defaults[dest] == getattr(RECIPE, field), dest
    from convat.commands.loso import validate

    prep, config = validate(build_parser().parse_args(["loso"]))
    assert config == RECIPE.train_config() and prep == RECIPE.preprocess_config()  # the budget too
    _, config = validate(build_parser().parse_args(["loso", "--epochs", "3", "--train-seed", "2"]))
    assert (config.epochs, config.steps, config.seed) == (3, None, 2)
    _, config = validate(build_parser().parse_args(["loso", "--profile", "composite"]))
    assert config.steps == RECIPE.steps  # the budget follows the profile
    _, config = validate(build_parser().parse_args(["loso", "--profile", "composite", "--epochs", "4"]))
    assert (config.epochs, config.steps) == (4, None)


def test_the_public_face_is_lazy_and_every_export_resolves():
    import subprocess
    import sys

    code = ("import sys, convat, convat.recipe; from convat.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'timm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out  # neither `import convat` nor `convat --help` loads torch or timm
    import convat

    for name in convat.__all__:
        assert getattr(convat, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        convat.nope  # noqa: B018


def test_the_recipe_budget_is_the_one_the_committed_search_chose():
    """The reference budget is not typed by hand: it is what the budget search's fixed rule picks from the
    committed rows (``results/tuning``; rerun with ``python -m convat.experiments.tuning``)."""
    from convat.experiments.tuning import choose_budget, read_record, read_rows

    out = Path(__file__).resolve().parents[1] / "results" / "tuning"
    rows = read_rows(out)
    if rows.empty:
        pytest.skip("no committed budget search (results/tuning)")
    assert read_record(out)["spec"]["data_seed"] != RECIPE.data_seed  # tuned on another draw than the book's
    assert RECIPE.steps == choose_budget(rows)
