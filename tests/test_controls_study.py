"""The sanity checks over seeds: a tiny bundle runs, resumes, is served only for exactly its computation."""

from dataclasses import replace

import pandas as pd
import pytest

from convat.experiments.controls import (
    ControlsSpec,
    describe_controls_over_seeds,
    run_controls,
    scores_path,
    seed_table,
    served_scores,
)
from convat.experiments.rows import read_rows
from convat.runstore import RunStoreError

SPEC = ControlsSpec(models=("convat_tiny",), train_seeds=(0, 1), steps=2, img_size=16, flow="dis",
                    synth_overrides={"n_subjects": 3, "clips_per_subject": 4})


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    import os

    root = tmp_path_factory.mktemp("controls")
    old = os.environ.get("CONVAT_CACHE")
    os.environ["CONVAT_CACHE"] = str(root / "cache")
    try:
        run_controls(SPEC, root / "c", progress=False)
    finally:
        if old is None:
            os.environ.pop("CONVAT_CACHE")
        else:
            os.environ["CONVAT_CACHE"] = old
    return root / "c"


def test_a_bundle_has_a_row_and_scores_per_unit_and_resumes(bundle, monkeypatch):
    rows = read_rows(bundle)
    assert list(zip(rows["model"], rows["train_seed"], strict=True)) == [("convat_tiny", 0), ("convat_tiny", 1)]
    scores = pd.read_csv(scores_path(bundle, "convat_tiny", 1))
    assert scores["fold"].nunique() == 3 and set(scores["control"]) == {"trained", "randomised", "permuted"}
    import convat.explain.controls

    monkeypatch.setattr(convat.explain.controls, "control_scores", lambda *a, **k: pytest.fail("recomputed"))
    pd.testing.assert_frame_equal(run_controls(SPEC, bundle, progress=False), rows)
    with pytest.raises(RunStoreError, match="another spec"):
        run_controls(replace(SPEC, train_seeds=(5,)), bundle, progress=False)


def test_units_made_by_other_code_are_computed_again(bundle, tmp_path, monkeypatch):
    import shutil

    import convat.explain.controls

    copy = tmp_path / "c"
    shutil.copytree(bundle, copy)
    rows = read_rows(copy)
    rows.loc[1, "explain_code"] = "0" * 16  # as if seed 1 had been made by other code
    rows.to_csv(copy / "rows.csv", index=False)
    calls = []
    real = convat.explain.controls.control_scores
    monkeypatch.setenv("CONVAT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(convat.explain.controls, "control_scores",
                        lambda *a, **k: calls.append(a[4].seed) or real(*a, **k))
    again = run_controls(SPEC, copy, progress=False)
    assert calls == [1] and len(again) == 2 and set(again["explain_code"]) == set(read_rows(bundle)["explain_code"])


def test_served_only_for_exactly_its_computation(bundle):
    from convat.book import default_train, training_budget
    from convat.experiments.rows import experiment_inputs

    _, _, x, _ = experiment_inputs(SPEC)
    budget = training_budget(SPEC.dataset, SPEC.profile, SPEC.epochs, SPEC.steps)
    config = default_train("convat_tiny", budget, "auto", 1)
    served = served_scores(bundle, x, config)
    assert served is not None
    pd.testing.assert_frame_equal(served[0], pd.read_csv(scores_path(bundle, "convat_tiny", 1)))
    assert served_scores(bundle, x, replace(config, device="cpu")) is not None  # "auto" is the CPU here
    assert served_scores(bundle, x, config, permutation_seed=2) is None  # another label permutation
    assert served_scores(bundle, x, replace(config, lr=config.lr / 2)) is None
    assert served_scores(bundle, x, replace(config, seed=7)) is None
    assert served_scores(bundle, x + 1, config) is None
    assert served_scores(bundle.parent / "absent", x, config) is None


def test_the_table_over_seeds_and_its_sentences(bundle, tmp_path):
    table = seed_table(bundle, n_boot=50)
    assert table.index.get_level_values("model").unique().tolist() == ["convat_tiny"]
    assert table["passes both"].str.endswith("of 2 seeds").all()
    text = " ".join(describe_controls_over_seeds(bundle))
    assert "2 of 2 (model, seed) units" in text and "convat_tiny, 2 training seed(s)" in text
    assert "other code" not in text
    rows = read_rows(bundle)
    stale = tmp_path / "stale"
    stale.mkdir()
    for name in ("controls.json",):
        (stale / name).write_text((bundle / name).read_text())
    rows.assign(explain_code="0" * 16).to_csv(stale / "rows.csv", index=False)
    assert "Made by other code" in " ".join(describe_controls_over_seeds(stale))
    from convat.book import training_budget
    from convat.experiments.controls import seed_verdicts
    from convat.experiments.rows import experiment_inputs

    x = experiment_inputs(SPEC)[2]
    budget = training_budget(SPEC.dataset, SPEC.profile, SPEC.epochs, SPEC.steps)
    assert seed_verdicts(stale, x, budget) == [] and len(seed_verdicts(stale)) == 1
    assert seed_verdicts(bundle, x, budget) == seed_verdicts(bundle)
    assert seed_verdicts(bundle, x + 1, budget) == []  # other inputs: the headline quotes nothing
    assert seed_verdicts(bundle, x, training_budget(SPEC.dataset, SPEC.profile, None, 3)) == []  # another recipe
    assert "does not ship it" in describe_controls_over_seeds(tmp_path / "absent")[0]


def test_the_committed_bundle_reproduces_one_fold_from_scratch(tmp_path, monkeypatch):
    """One fold of the committed sanity checks, recomputed from nothing (a fresh cache), gives the scores the
    bundle holds: the bundle is what the command computes, not numbers typed in."""
    import numpy as np
    import torch

    from convat.book import default_train, training_budget
    from convat.experiments.controls import ControlsSpec, default_out, explain_fingerprint, read_record
    from convat.experiments.rows import experiment_inputs
    from convat.explain.controls import control_scores

    out = default_out()
    rows = read_rows(out)
    if rows.empty:
        pytest.skip("no committed sanity-check bundle")
    if set(rows["explain_code"].astype(str)) != {explain_fingerprint()}:
        pytest.skip("the committed bundle is stale (the page says so); `make controls` refreshes it")
    monkeypatch.setenv("CONVAT_CACHE", str(tmp_path))
    spec = ControlsSpec.from_json(read_record(out)["spec"])
    records, pre, x, table = experiment_inputs(spec)
    model, seed = spec.models[0], spec.train_seeds[0]
    config = default_train(model, training_budget(spec.dataset, spec.profile, spec.epochs, spec.steps), "cpu", seed)
    fold = sorted(table["dataset"].astype(str) + "/" + table["subject"].astype(str))[0]
    before = torch.get_num_threads()
    torch.set_num_threads(int(read_record(out)["machine"].get("torch_threads", before) or before))
    try:
        fresh = control_scores(x, table, records, pre, config, folds=[fold],
                               permutation_seed=spec.permutation_seed)
    finally:
        torch.set_num_threads(before)
    committed = pd.read_csv(scores_path(out, model, seed))
    committed = committed[committed["fold"] == fold].reset_index(drop=True)
    assert list(zip(fresh["control"], fresh["method"], strict=True)) == list(
        zip(committed["control"], committed["method"], strict=True))
    np.testing.assert_allclose(fresh["mass_in_mask"], committed["mass_in_mask"], atol=2e-3)
    np.testing.assert_allclose(fresh["area_share"], committed["area_share"], atol=1e-9)
