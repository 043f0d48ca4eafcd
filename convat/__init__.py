"""convat: reproducible companion to ConVAT micro-expression recognition (bin Talib et al., 2025).

The pipeline's verbs are available from the package itself, loaded on first use so that ``import convat`` (and
``convat --help``) stays light; torch and timm load with the first verb that needs them::

    import convat as cv
    from convat.preprocess.pipeline import preprocess

    records = cv.load_records("synthme", "quick")
    x, table = preprocess(records, cv.RECIPE.preprocess_config())
    predictions = cv.run_loso(x, table, cv.RECIPE.train_config(), out_dir="runs/quick")
    cv.summarize(predictions)

(The preprocessing verb keeps its stage's path: ``convat.preprocess`` is the stage's package, and a package
attribute of the same name would be replaced by it on import.)

``import convat.models`` registers ConVAT and the baselines with timm (``timm.create_model("convat_tiny")``);
every verb that trains or builds a model does so itself.
"""

from __future__ import annotations

import importlib

from convat import runtime

runtime.set_passive_wait()  # before torch loads OpenMP: waiting threads sleep instead of spinning (see runtime)
runtime.keep_freed_memory()  # no page-fault storm from malloc trimming what each training step frees (see runtime)

__version__ = "0.1.0"

#: Public name -> the module that defines it (the stage it belongs to).
_EXPORTS: dict[str, str] = {
    # the reference recipe
    "RECIPE": "convat.recipe", "Recipe": "convat.recipe",
    # what the chapters call (the recipe's defaults, the notes beside results)
    "default_preprocess": "convat.book", "default_train": "convat.book", "training_budget": "convat.book",
    "key_results": "convat.book", "profile_note": "convat.book", "cache_note": "convat.book",
    # data
    "generate": "convat.data.synth", "load_records": "convat.book", "records_table": "convat.data.records",
    # preprocessing (the verb itself: convat.preprocess.pipeline.preprocess)
    "PreprocessConfig": "convat.preprocess.pipeline",
    # training and evaluation
    "TrainConfig": "convat.training.config", "train_model": "convat.training.loop",
    "predict_proba": "convat.training.loop", "loso_splits": "convat.loso", "run_loso": "convat.loso",
    "cached_run": "convat.loso", "fold_subjects": "convat.loso", "random_splits": "convat.loso",
    "bundled_run": "convat.experiments.study", "recheck_served": "convat.experiments.study",
    "served_check_note": "convat.experiments.study",
    "run_folds": "convat.folds", "FoldResult": "convat.folds",
    # the reference rows
    "linear_baseline": "convat.experiments.synth_difficulty",
    # metrics
    "uf1": "convat.metrics", "uar": "convat.metrics", "summarize": "convat.metrics", "subject_key": "convat.metrics",
    "results_table": "convat.metrics", "per_subject": "convat.metrics", "bootstrap_ci": "convat.metrics",
    "paired_seed_test": "convat.metrics", "compare_runs": "convat.metrics",
    # figures and explanations
    "plot_confusion": "convat.plots", "plot_subject_confusions": "convat.plots",
    "explain_maps": "convat.explain", "fold_model": "convat.explain",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """Load a public name's module on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'convat' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
