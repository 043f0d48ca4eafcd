"""Do the explanation maps pass their sanity checks on more than one training seed? The controls of the
explainability chapter, over every LOSO fold and several training seeds, as a committed result bundle.

For each (model, training seed), :func:`convat.explain.controls.control_scores` scores every explanation method
on every fold for the trained network, a cascading-randomised copy and a network trained on permuted labels
(Adebayo et al., NeurIPS 2018). One seed is one trained network per fold: whether a method passes its controls
can depend on it, so the verdict is reported per seed and counted over seeds.

Each finished (model, seed) writes its per-fold scores to ``scores/<model>-seed<S>.csv`` and one row to
``rows.csv`` (wall and CPU time, the code fingerprints, the commit, a digest of the inputs and of the training
configuration), so a killed run resumes at the next unit. ``controls.json`` holds the spec, machine and date.
The explainability chapter serves a unit from this bundle (:func:`served_scores`) only when it is exactly the
computation the chapter would run: the same input tensors, training configuration, and code, both the code
that decides results and the explanation methods (:func:`explain_fingerprint`). Otherwise it computes the
controls itself. Run it with ``python -m convat.experiments.controls --help`` (or ``make controls``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pandas as pd

from convat import runstore
from convat.experiments.rows import (
    absent,
    append_row,
    experiment_inputs,
    made_by,
    pending,
    read_rows,
    replace_rows,
    started,
)
from convat.recipe import RECIPE

RECORD_FILE = "controls.json"
SCORES_DIR = "scores"


@dataclass(frozen=True)
class ControlsSpec:
    """The models, training seeds and data of the sanity checks (recorded in ``controls.json``)."""

    models: tuple[str, ...] = ("convat_tiny",)
    dataset: str = RECIPE.dataset
    profile: str = RECIPE.profile
    data_seed: int = RECIPE.data_seed
    train_seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int | None = None
    steps: int | None = None
    """The budget (one of the two); neither is the recipe's for the dataset and profile."""
    img_size: int = RECIPE.img_size
    flow: str = RECIPE.flow
    permutation_seed: int = 1
    """Seed of the label permutation of the permuted-label control."""
    synth_overrides: dict = field(default_factory=dict)
    """Extra arguments of :func:`convat.data.synth.generate` (a smaller population in tests)."""

    def __post_init__(self) -> None:
        for name in ("models", "train_seeds"):
            values = getattr(self, name)
            if not values or len(set(values)) != len(values):
                raise ValueError(f"{name} must be distinct and at least one, got {list(values)}")
        RECIPE.budget(self.dataset, self.profile, epochs=self.epochs, steps=self.steps)  # one budget at most

    def cells(self) -> list[tuple[str, int]]:
        """``(model, train_seed)`` in run order: every model at a seed before the next seed."""
        return [(model, seed) for seed in self.train_seeds for model in self.models]

    def to_json(self) -> dict:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_json(cls, value: dict) -> ControlsSpec:
        value = dict(value)
        for key in ("models", "train_seeds"):
            value[key] = tuple(value[key])
        return cls(**value)


def default_out() -> Path:
    """The repository's committed sanity checks, ``results/controls`` next to the ``convat`` package."""
    return runstore.PACKAGE_ROOT.parent / "results" / "controls"


def explain_fingerprint() -> str:
    """The fingerprint of the code behind a control score: what decides the trained networks
    (:data:`convat.runstore.RESULT_SOURCES`) and the explanation methods (``convat/explain``)."""
    return runstore.code_fingerprint((*runstore.RESULT_SOURCES, "explain"))


def config_digest(config) -> str:
    """A digest of a :class:`~convat.training.config.TrainConfig`, everything but the device (``auto`` and
    ``cpu`` train the same network on a CPU)."""
    return runstore.json_digest({k: v for k, v in asdict(config).items() if k != "device"})


def scores_path(out: str | Path, model: str, seed: int) -> Path:
    return Path(out) / SCORES_DIR / f"{model}-seed{seed}.csv"


def read_record(out: str | Path) -> dict:
    """``controls.json`` of a bundle folder (spec, machine, date); an empty dict when there is none."""
    path = Path(out) / RECORD_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def run_controls(spec: ControlsSpec, out: str | Path, progress: bool = True) -> pd.DataFrame:
    """Score every missing (model, seed), write its per-fold scores and append its row; return every row.

    A folder holds one spec: another spec is refused, so scores of different experiments never mix.
    """
    from convat.book import default_train, training_budget
    from convat.explain.controls import control_scores, summarize_controls

    rows, todo = pending(out, RECORD_FILE, spec, "a sanity-check experiment", ("model", "train_seed"))
    records, pre, x, table = experiment_inputs(spec)
    budget = training_budget(spec.dataset, spec.profile, spec.epochs, spec.steps)
    stale = ~current_rows(rows, out, x, budget)
    if stale.any():  # made by other code, on other inputs, with another recipe or platform: computed again
        if progress:
            print(f"{int(stale.sum())} finished unit(s) are not today's computation; computing them again",
                  flush=True)
        redo = set(zip(rows.loc[stale, "model"], rows.loc[stale, "train_seed"].astype(int), strict=True))
        rows = replace_rows(out, rows[~stale].reset_index(drop=True))
        todo = [c for c in spec.cells() if c in redo or c in set(todo)]
    if not todo:
        return rows
    for i, (model, seed) in enumerate(todo, 1):
        if progress:
            print(f"[{i}/{len(todo)}] {model}, training seed {seed}", flush=True)
        since = started()
        config = default_train(model, budget, seed=seed)
        scores = control_scores(x, table, records, pre, config, permutation_seed=spec.permutation_seed,
                                progress=progress)
        path = scores_path(out, model, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        runstore.atomic_write_bytes(path, runstore.csv_bytes(scores))
        summary = summarize_controls(scores)
        passed = [str(m) for m in summary.index[summary["faithful"]]]
        rows = append_row(out, rows, {"model": model, "train_seed": seed, "folds": int(scores["fold"].nunique()),
                                      "faithful": ";".join(passed), "inputs": runstore.array_digest(x),
                                      "config": config_digest(config), "explain_code": explain_fingerprint(),
                                      **platform()},
                          since)
        if progress:
            print(f"    passes both controls: {', '.join(passed) or 'none'}; {rows.iloc[-1]['wall_s']:.0f} s",
                  flush=True)
    return rows


def platform(device: str = "auto") -> dict:
    """The device ``device`` resolves to here and the torch version: what a unit's numbers also depend on."""
    import torch

    from convat.training.loop import resolve_device

    return {"device": str(resolve_device(device)), "torch": torch.__version__}


def _row_platform(rows: pd.DataFrame, out: str | Path) -> pd.DataFrame:
    """``device`` and ``torch`` of every row; rows written before these columns take the bundle's machine."""
    machine = read_record(out).get("machine", {})
    cols = {}
    for col, default in (("device", machine.get("device")), ("torch", machine.get("torch"))):
        cols[col] = rows[col].fillna(default) if col in rows else pd.Series(default, index=rows.index)
    return pd.DataFrame(cols, index=rows.index)


def current_rows(rows: pd.DataFrame, out: str | Path, x, budget=None, device: str = "auto") -> pd.Series:
    """Which rows are exactly today's computation on the inputs ``x``: the same input digest, the training
    configuration the recipe gives for the row's model and seed at ``budget``, the same training and
    explanation code, device and torch version."""
    from convat.book import default_train

    if rows.empty:
        return pd.Series(dtype=bool)
    here = platform(device)
    plat = _row_platform(rows, out)
    configs = [config_digest(default_train(m, budget, device, int(s)))
               for m, s in zip(rows["model"], rows["train_seed"], strict=True)]
    return ((rows["inputs"] == runstore.array_digest(x)) & (rows["config"] == pd.Series(configs, index=rows.index))
            & (rows["explain_code"].astype(str) == explain_fingerprint())
            & (plat["device"] == here["device"]) & (plat["torch"] == here["torch"]))


def served_scores(out: str | Path, x, config, permutation_seed: int = 1) -> tuple[pd.DataFrame, pd.Series] | None:
    """``(per-fold scores, the bundle's row)`` of ``config`` on the inputs ``x`` when the bundle holds exactly
    that computation (the same input digest, training configuration, training seed, label permutation, code
    fingerprints, device and torch version as here), else ``None``: the caller then computes the controls."""
    rows = read_rows(out)
    if rows.empty or "explain_code" not in rows:
        return None
    if read_record(out).get("spec", {}).get("permutation_seed") != permutation_seed:
        return None
    here = platform(config.device)
    plat = _row_platform(rows, out)
    match = rows[(rows["model"] == config.model) & (rows["train_seed"].astype(int) == config.seed)
                 & (rows["inputs"] == runstore.array_digest(x)) & (rows["config"] == config_digest(config))
                 & (rows["explain_code"].astype(str) == explain_fingerprint())
                 & (plat["device"] == here["device"]) & (plat["torch"] == here["torch"])]
    path = scores_path(out, config.model, config.seed)
    if match.empty or not path.exists():
        return None
    return pd.read_csv(path), match.iloc[-1]


def seed_table(out: str | Path, n_boot: int = 2000) -> pd.DataFrame:
    """Per (model, method): the trained network's share of the map on the true regions and its margins over
    both controls, mean ± SD over seeds, and on how many seeds the method passes both controls."""
    from convat.explain.controls import summarize_controls

    rows = read_rows(out)
    parts = []
    for _, row in rows.iterrows():
        scores = pd.read_csv(scores_path(out, row["model"], int(row["train_seed"])))
        summary = summarize_controls(scores, n_boot=n_boot)
        parts.append(summary.assign(model=row["model"], train_seed=int(row["train_seed"])))
    if not parts:
        return pd.DataFrame()
    every = pd.concat(parts).reset_index()
    out_rows = {}
    for (model, method), sub in every.groupby(["model", "method"], sort=False):
        cell = {}
        for key, name in (("trained", "on true regions"), ("vs_randomised", "trained − randomised"),
                          ("vs_permuted", "trained − permuted")):
            values = sub[key]
            cell[name] = (f"{values.mean():.3f} ± {values.std(ddof=1):.3f}" if len(values) > 1
                          else f"{values.mean():.3f}")
        cell["random map"] = f"{sub['random'].mean():.3f}"
        cell["passes both"] = f"{int(sub['faithful'].sum())} of {len(sub)} seeds"
        out_rows[(model, method)] = cell
    return pd.DataFrame(out_rows).T.rename_axis(["model", "method"])


def describe_controls_over_seeds(out: str | Path) -> list[str]:
    """The sentences beside :func:`seed_table`: provenance, staleness and, per model, the methods that pass
    both controls on every seed, on some, or on none."""
    missing = absent(out, "sanity-check bundle", "unit of the sanity checks")
    if missing:
        return [missing]
    record, rows = read_record(out), read_rows(out)
    spec = ControlsSpec.from_json(record["spec"])
    lines = [made_by("python -m convat.experiments.controls", record, rows)
             + f": {', '.join(spec.models)} on {spec.dataset} ({spec.profile} profile, data seed {spec.data_seed}), "
             f"{RECIPE.budget(spec.dataset, spec.profile, spec.epochs, spec.steps).label} per fold, "
             f"{len(rows)} of {len(spec.cells())} (model, seed) units, {rows['wall_s'].sum() / 60:.0f} min."]
    other = sorted(set(rows["explain_code"].astype(str)) - {explain_fingerprint()})
    if other:
        lines.append(f"> **Made by other code.** Units were made with code fingerprint(s) {', '.join(other)}; the "
                     f"training and explanation code is now {explain_fingerprint()}: rerun the command, which computes "
                     "such units again.")
    return lines + seed_verdicts(out)


def chapter_headline(summaries: dict[str, pd.DataFrame], over_seeds: list[str], train_seed: int) -> str:
    """The explainability chapter's verdict, as a Markdown quote: this run's sanity check
    (:func:`convat.explain.describe.controls_headline`), always marked as one training seed's (a verdict one seed
    can flip), followed by the verdicts over training seeds (:func:`seed_verdicts`) when the bundle holds them
    for exactly this computation."""
    from convat.explain.describe import controls_headline

    head = f"> On training seed {train_seed} (one seed): {controls_headline(summaries)}"
    if not over_seeds:
        return head + " No verdict over training seeds is available for this computation (`make controls`)."
    return (head + " Over training seeds (`results/controls`, section *Over training seeds* below): "
            + " ".join(over_seeds))


def seed_verdicts(out: str | Path, x=None, budget=None, device: str = "auto") -> list[str]:
    """One sentence per model of the bundle: the methods that pass both controls on every training seed, on
    some seeds only, or that none does. With the inputs ``x`` (and the ``budget`` of the chapter's recipe):
    nothing unless every unit is exactly today's computation on them (:func:`current_rows`), so a chapter's
    headline never quotes verdicts made by other code, on other data or with another recipe."""
    rows = read_rows(out) if Path(out).is_dir() else pd.DataFrame()
    if rows.empty or (x is not None and not current_rows(rows, out, x, budget, device).all()):
        return []
    lines = []
    for model, sub in rows.groupby("model", sort=False):
        seeds = len(sub)
        passed = [set(filter(None, str(v).split(";"))) if v == v else set() for v in sub["faithful"]]
        always = sorted(set.intersection(*passed)) if passed else []
        some = sorted(set.union(*passed) - set(always)) if passed else []
        text = f"{model}, {seeds} training seed(s): "
        if always:
            text += f"{', '.join(f'*{m}*' for m in always)} pass both controls on every seed"
        else:
            text += "no method passes both controls on every seed"
        if some:
            text += f"; {', '.join(f'*{m}*' for m in some)} on some seeds only (a verdict one seed can flip)"
        lines.append(text + ".")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    default = ControlsSpec()
    p = argparse.ArgumentParser(
        prog="python -m convat.experiments.controls", description=__doc__.split("\n\n")[0],
        epilog="example: python -m convat.experiments.controls --out results/controls --train-seeds 0 1 2",
        allow_abbrev=False)
    p.add_argument("--out", default="results/controls", help="bundle folder (resumable; default results/controls)")
    p.add_argument("--models", nargs="+", default=list(default.models), help="timm models (default convat_tiny)")
    p.add_argument("--profile", default=default.profile, help=f"SynthME profile (default {default.profile})")
    p.add_argument("--train-seeds", nargs="+", type=int, default=list(default.train_seeds), help="training seeds")
    p.add_argument("--epochs", type=int, default=None, help="budget in epochs (default: the recipe's)")
    p.add_argument("--steps", type=int, default=None, help="budget in optimiser steps (default: the recipe's)")
    args = p.parse_args(argv)
    try:
        spec = replace(default, models=tuple(args.models), profile=args.profile,
                       train_seeds=tuple(args.train_seeds), epochs=args.epochs, steps=args.steps)
    except ValueError as err:
        p.error(str(err))
    run_controls(spec, args.out)
    print(seed_table(args.out).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["ControlsSpec", "config_digest", "default_out", "describe_controls_over_seeds", "explain_fingerprint",
           "current_rows", "platform", "read_record", "run_controls", "seed_table", "seed_verdicts", "served_scores"]
