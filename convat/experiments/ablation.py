"""Does ConVAT's variational bottleneck do anything? A β grid, a deterministic twin and two initial noise scales,
over training seeds, with the bottleneck's own statistics beside UF1.

The bottleneck samples each token from N(μ, σ²) in training and is pulled towards N(0, I) by β·KL. Started at
log σ² = −6 (σ ≈ .05, the paper does not say), σ barely moves in a short budget and β = 0 and β > 0 give the
same predictions: an ablation of β is then null by construction. This experiment therefore trains

* ``deterministic``: the twin without the bottleneck (``variational=False``, the same layers otherwise);
* ``default``: the recipe's model (its β and initial log σ²);
* ``β = b``, for ``b`` on a log grid, with the noise started where it can matter (log σ² = ``logvar_init``,
  0 by default: σ = 1);

each under the same LOSO folds, budget and training seeds, and reports per arm the pooled UF1 and, from every
fold's record (:mod:`convat.training.fit`), the bottleneck's mean σ, its KL term and how often a sampled
prediction agrees with the posterior-mean one (1.0: the noise changes nothing), as mean ± SD over seeds. Each
(arm, seed) keeps its pooled predictions (``predictions/``), and an arm is compared with the deterministic twin
by the paired test over subjects and training seeds (:func:`convat.metrics.paired_seed_test`, at least three
seeds with kept predictions, for every compared arm); otherwise (fewer seeds, or rows made before predictions
were kept) a difference is called only when the mean over seeds exceeds both arms' seed-to-seed spread. On
SynthME's quick profile no arm is called different (a smoke test: its UF1 column ranks nothing,
:func:`convat.recipe.is_smoke_test`).

Every (arm, seed) is one row of ``rows.csv`` in the output folder, written when finished (its LOSO run folder
sits in the cache, resumable fold by fold); ``ablation.json`` records the spec, machine and date, each row the
commit and code fingerprint. Run it with ``python -m convat.experiments.ablation --help``.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pandas as pd

from convat import runstore
from convat.experiments.rows import absent, append_row, experiment_inputs, made_by, pending, read_rows, started
from convat.recipe import RECIPE, is_smoke_test

RECORD_FILE = "ablation.json"
DETERMINISTIC, DEFAULT = "deterministic", "default"


@dataclass(frozen=True)
class AblationSpec:
    """The arms, seeds and data of the ablation (recorded in ``ablation.json``)."""

    model: str = "convat_tiny"
    dataset: str = RECIPE.dataset
    profile: str = RECIPE.profile
    data_seed: int = RECIPE.data_seed
    train_seeds: tuple[int, ...] = (0, 1, 2)
    betas: tuple[float, ...] = (0.0, 1e-3, 1e-2, 1e-1, 1.0)
    logvar_init: float = 0.0
    """Initial log σ² of the β arms (the recipe's model keeps its own in the ``default`` arm)."""
    epochs: int | None = None
    steps: int | None = None
    """The budget (one of the two); neither is the recipe's for the dataset and profile."""
    img_size: int = RECIPE.img_size
    flow: str = RECIPE.flow
    synth_overrides: dict = field(default_factory=dict)
    """Extra arguments of :func:`convat.data.synth.generate` (a smaller population in tests)."""

    def __post_init__(self) -> None:
        if not self.train_seeds or len(set(self.train_seeds)) != len(self.train_seeds):
            raise ValueError(f"train_seeds must be distinct and at least one, got {list(self.train_seeds)}")
        if any(b < 0 for b in self.betas):
            raise ValueError(f"β must be non-negative, got {list(self.betas)}")
        RECIPE.budget(self.dataset, self.profile, epochs=self.epochs, steps=self.steps)  # one budget at most

    def arms(self) -> dict[str, dict]:
        """Arm name -> :class:`~convat.training.loop.TrainConfig` overrides."""
        out: dict[str, dict] = {DETERMINISTIC: {"model_kwargs": {"variational": False}}, DEFAULT: {}}
        for beta in self.betas:
            out[beta_arm(beta)] = {"beta": float(beta), "model_kwargs": {"logvar_init": float(self.logvar_init)}}
        return out

    def cells(self) -> list[tuple[str, int]]:
        """``(arm, train_seed)`` in run order: every arm at a seed before the next seed."""
        return [(arm, seed) for seed in self.train_seeds for arm in self.arms()]

    def to_json(self) -> dict:
        return json.loads(json.dumps(asdict(self)))


def beta_arm(beta: float) -> str:
    """The name of the arm with ``beta``: ``β = 0.001``."""
    return f"β = {beta:g}"


def default_out() -> Path:
    """The repository's committed ablation, ``results/ablation`` next to the ``convat`` package."""
    return runstore.PACKAGE_ROOT.parent / "results" / "ablation"


def read_record(out: str | Path) -> dict:
    """``ablation.json`` of an ablation folder (spec, machine, date); an empty dict when there is none."""
    path = Path(out) / RECORD_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def arm_row(arm: str, seed: int, predictions: pd.DataFrame, curves: pd.DataFrame, labels: list) -> dict:
    """One finished (arm, seed): pooled UF1 / UAR and the folds' mean fit and bottleneck statistics."""
    from convat.metrics import summarize
    from convat.training.fit import fit_table

    scores = summarize(predictions, labels=labels).loc["all"]
    fits = fit_table(curves)
    mean = {c: float(fits[c].mean()) if len(fits) else float("nan")
            for c in ("fit_accuracy", "sigma", "kl", "sample_agreement")}
    return {"arm": arm, "train_seed": seed, "uf1": float(scores["UF1"]), "uar": float(scores["UAR"]), **mean}


#: Folder of an ablation holding each finished (arm, seed)'s pooled predictions, for the paired test.
PREDICTIONS_DIR = "predictions"


def predictions_path(out: str | Path, arm: str, seed: int) -> Path:
    """``out/predictions/<arm>-seed<seed>.csv`` (``β = 0.001`` is spelled ``beta-0.001``)."""
    slug = arm.replace("β = ", "beta-").replace(" ", "")
    return Path(out) / PREDICTIONS_DIR / f"{slug}-seed{seed}.csv"


def write_predictions(out: str | Path, arm: str, seed: int, predictions: pd.DataFrame) -> None:
    """Keep one (arm, seed)'s pooled predictions beside its row (atomically)."""
    path = predictions_path(out, arm, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    runstore.atomic_write_text(path, predictions.to_csv(index=False))


def arm_runs(out: str | Path, arm: str, seeds: Sequence[int]) -> list[pd.DataFrame]:
    """The stored predictions of ``arm`` at each of ``seeds`` that has them (rows written before the ablation
    kept predictions have none)."""
    paths = [predictions_path(out, arm, seed) for seed in seeds]
    return [pd.read_csv(p, dtype={"subject": str, "clip": str}) for p in paths if p.exists()]


def _shared_seeds(rows: pd.DataFrame, arm: str) -> list[int]:
    """The training seeds at which both ``arm`` and the deterministic twin finished."""
    return sorted(set(rows.loc[rows["arm"] == arm, "train_seed"])
                  & set(rows.loc[rows["arm"] == DETERMINISTIC, "train_seed"]))


def _paired_seeds(out: str | Path, rows: pd.DataFrame, arm: str) -> list[int] | None:
    """The seeds ``arm`` and the twin share when both have stored predictions at every one of them and there are
    at least :data:`convat.experiments.study.MIN_SEEDS`; else ``None``."""
    from convat.experiments.study import MIN_SEEDS

    seeds = _shared_seeds(rows, arm)
    ok = len(seeds) >= MIN_SEEDS and all(predictions_path(out, a, s).exists() for a in (arm, DETERMINISTIC)
                                         for s in seeds)
    return seeds if ok else None


def paired_available(out: str | Path, rows: pd.DataFrame, arm: str) -> bool:
    """Whether ``arm`` and the twin both have stored predictions at every seed they share, and at least
    :data:`convat.experiments.study.MIN_SEEDS` of them (what :func:`paired_against_twin` needs)."""
    return _paired_seeds(out, rows, arm) is not None


def paired_against_twin(out: str | Path, rows: pd.DataFrame, arm: str, n_boot: int = 2000) -> dict | None:
    """:func:`convat.metrics.paired_seed_test` of ``arm`` against the deterministic twin over the seeds both
    finished, resampling subjects and seeds; ``None`` unless :func:`paired_available`."""
    from convat.metrics import paired_seed_test

    seeds = _paired_seeds(out, rows, arm)
    if seeds is None:
        return None
    runs_arm, runs_twin = arm_runs(out, arm, seeds), arm_runs(out, DETERMINISTIC, seeds)
    labels = sorted(set(runs_twin[0]["label"]))
    return paired_seed_test(runs_arm, runs_twin, labels, n_boot=n_boot)


def run_ablation(spec: AblationSpec, out: str | Path, progress: bool = True) -> pd.DataFrame:
    """Train every missing (arm, seed) and append its row to ``rows.csv``; return every finished row.

    A folder holds one spec: another spec is refused, so rows of different experiments never mix.
    """
    from convat.book import default_train, training_budget
    from convat.loso import cached_run

    rows, todo = pending(out, RECORD_FILE, spec, "an ablation", ("arm", "train_seed"))
    if not todo:
        return rows
    _, _, x, table = experiment_inputs(spec)
    labels = sorted(table["label"].unique())
    budget = training_budget(spec.dataset, spec.profile, spec.epochs, spec.steps)
    arms = spec.arms()
    for i, (arm, seed) in enumerate(todo, 1):
        if progress:
            print(f"[{i}/{len(todo)}] {arm}, training seed {seed}", flush=True)
        since = started()
        config = default_train(spec.model, budget, device="cpu", seed=seed, **arms[arm])
        run = cached_run(x, table, config, progress=False)
        write_predictions(out, arm, seed, run.predictions)  # before its row: a row always has its predictions
        rows = append_row(out, rows, arm_row(arm, seed, run.predictions, run.curves, labels), since)
        row = rows.iloc[-1]
        if progress:
            print(f"    UF1 {row['uf1']:.3f}, sigma {row['sigma']:.3f}, agreement {row['sample_agreement']:.3f}, "
                  f"{row['wall_s']:.0f} s", flush=True)
    return rows


def ablation_table(rows: pd.DataFrame, arms: Sequence[str] | None = None) -> pd.DataFrame:
    """Per arm (rows, in ``arms`` order): mean ± SD over seeds of UF1, training accuracy, σ, KL and the
    sampled-vs-mean agreement, and the number of seeds, as text for the page."""
    order = list(arms) if arms is not None else list(dict.fromkeys(rows["arm"]))
    columns = {"uf1": "UF1", "fit_accuracy": "training accuracy", "sigma": "σ", "kl": "KL",
               "sample_agreement": "sampled = mean"}
    out = {}
    for arm in order:
        sub = rows[rows["arm"] == arm]
        if sub.empty:
            continue
        cells = {}
        for key, name in columns.items():
            values = sub[key].dropna()
            cells[name] = "—" if values.empty else (
                f"{values.mean():.3f} ± {values.std(ddof=1):.3f}" if len(values) > 1 else f"{values.mean():.3f}")
        cells["seeds"] = len(sub)
        out[arm] = cells
    return pd.DataFrame(out).T.rename_axis("arm")


def differs(rows: pd.DataFrame, arm: str, reference: str = DETERMINISTIC, column: str = "uf1") -> tuple[float, bool]:
    """``(mean difference arm − reference over the seeds both finished, whether it exceeds both arms' seed
    SD)``: the ablation's rule for "differs" (a difference within the seed spread is not a finding)."""
    a = rows[rows["arm"] == arm].set_index("train_seed")[column]
    b = rows[rows["arm"] == reference].set_index("train_seed")[column]
    seeds = a.index.intersection(b.index)
    if len(seeds) < 2:
        return float("nan"), False
    diff = float((a[seeds] - b[seeds]).mean())
    return diff, abs(diff) > max(float(a[seeds].std(ddof=1)), float(b[seeds].std(ddof=1)))


def describe_ablation(out: str | Path) -> list[str]:
    """The sentences beside the ablation's table: provenance, whether the bottleneck is active (σ away from its
    start, predictions that change with the noise) and which arms differ from the deterministic twin."""
    missing = absent(out, "ablation", "arm of the ablation")
    if missing:
        return [missing]
    record, rows = read_record(out), read_rows(out)
    spec = AblationSpec(**{**record["spec"], "train_seeds": tuple(record["spec"]["train_seeds"]),
                           "betas": tuple(record["spec"]["betas"])})
    lines = [made_by("python -m convat.experiments.ablation", record, rows)
             + f": {spec.model}, {spec.dataset} ({spec.profile} profile, data seed {spec.data_seed}), "
             f"{RECIPE.budget(spec.dataset, spec.profile, spec.epochs, spec.steps).label} per fold, "
             f"{len(rows)} of {len(spec.cells())} runs, {rows['wall_s'].sum() / 60:.0f} min."]
    other = sorted(set(rows["code"].astype(str)) - {runstore.code_fingerprint()})
    if other:
        lines.append(f"> **Made by other code.** Rows were made with code fingerprint(s) {', '.join(other)}; the code "
                     f"that decides results is now {runstore.code_fingerprint()}: rerun the command to refresh them.")
    betas = [beta_arm(b) for b in spec.betas if beta_arm(b) in set(rows["arm"])]
    if betas:
        sigma = rows[rows["arm"].isin(betas)].groupby("arm")["sigma"].mean().reindex(betas)
        agree = rows[rows["arm"].isin(betas)].groupby("arm")["sample_agreement"].mean().reindex(betas)
        lines.append(f"Started at σ = {math.exp(spec.logvar_init / 2):.2f} (log σ² = {spec.logvar_init:g}), "
                     f"the trained bottleneck's mean σ over the arms {betas[0]} to {betas[-1]} lies between "
                     f"{sigma.min():.3f} ({sigma.idxmin()}) and {sigma.max():.3f} ({sigma.idxmax()}); a sampled "
                     "prediction agrees with the posterior-mean one "
                     f"on {agree.min():.0%}–{agree.max():.0%} of the training clips"
                     + (" (the noise changes some predictions: the bottleneck is active)." if agree.min() < 0.99
                        else " (the noise changes almost nothing: the bottleneck is close to inert)."))
    if DEFAULT in set(rows["arm"]):
        d = rows[rows["arm"] == DEFAULT]
        lines.append(f"The recipe's own model (`{DEFAULT}`) ends at σ = {d['sigma'].mean():.3f}, sampled = mean on "
                     f"{d['sample_agreement'].mean():.0%} of its training clips.")
    diffs = {arm: differs(rows, arm) for arm in [DEFAULT, *betas]}
    diffs = {arm: (diff, real) for arm, (diff, real) in diffs.items() if diff == diff}  # not NaN
    head = "UF1 against the deterministic twin, mean over seeds: "
    means = "; ".join(f"{arm} {diff:+.3f}" for arm, (diff, _) in diffs.items())
    if diffs and is_smoke_test(spec.dataset, spec.profile):
        lines.append(head + means + ". **Smoke test:** on the quick profile these differences are not findings, "
                     "whatever their size; what this run shows is whether the bottleneck is active (σ, KL, sampled = "
                     "mean above). Whether it changes UF1 needs the ablation on the composite profile.")
    elif diffs and all(paired_available(out, rows, arm) for arm in diffs):
        from convat.metrics import seed_verdict

        lines.append(head + means + ". Paired over subjects and training seeds:\n"
                     + "\n".join(f"- {seed_verdict(paired_against_twin(out, rows, arm), arm, DETERMINISTIC)}"
                                  for arm in diffs))
    elif diffs:
        beyond = [arm for arm, (_, real) in diffs.items() if real]
        lines.append(head + "; ".join(f"{arm} {diff:+.3f}" + (" (beyond the seed spread)" if real else "")
                                      for arm, (diff, real) in diffs.items()) + ". "
                     + ("No arm differs from it by more than the seed-to-seed spread: on this data the variational "
                        "bottleneck neither helps nor hurts measurably." if not beyond else
                        f"{len(beyond)} arm(s) differ by more than the seed-to-seed spread."))
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    default = AblationSpec()
    p = argparse.ArgumentParser(
        prog="python -m convat.experiments.ablation", description=__doc__.split("\n\n")[0],
        epilog="example: python -m convat.experiments.ablation --out results/ablation --train-seeds 0 1 2",
        allow_abbrev=False)
    p.add_argument("--out", default="results/ablation", help="ablation folder (resumable; default results/ablation)")
    p.add_argument("--model", default=default.model, help=f"timm model with a bottleneck (default {default.model})")
    p.add_argument("--profile", default=default.profile, help=f"SynthME profile (default {default.profile})")
    p.add_argument("--train-seeds", nargs="+", type=int, default=list(default.train_seeds), help="training seeds")
    p.add_argument("--betas", nargs="+", type=float, default=list(default.betas), help="β grid")
    p.add_argument("--logvar-init", type=float, default=default.logvar_init,
                   help=f"initial log σ² of the β arms (default {default.logvar_init:g})")
    p.add_argument("--epochs", type=int, default=None, help="budget in epochs (default: the recipe's)")
    p.add_argument("--steps", type=int, default=None, help="budget in optimiser steps (default: the recipe's)")
    args = p.parse_args(argv)
    try:
        spec = replace(default, model=args.model, profile=args.profile, train_seeds=tuple(args.train_seeds),
                       betas=tuple(args.betas), logvar_init=args.logvar_init, epochs=args.epochs, steps=args.steps)
    except ValueError as err:
        p.error(str(err))
    rows = run_ablation(spec, args.out)
    print(ablation_table(rows, list(spec.arms())).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
