"""The variational ablation: its arms, resumable rows, the seed-spread rule and the page's sentences."""

import json
import math

import pandas as pd
import pytest

from convat.experiments.ablation import (
    DEFAULT,
    DETERMINISTIC,
    AblationSpec,
    ablation_table,
    beta_arm,
    describe_ablation,
    differs,
    read_rows,
    run_ablation,
)
from convat.runstore import RunStoreError


def test_the_arms_are_the_twin_the_default_and_the_beta_grid_with_noise_that_can_matter():
    spec = AblationSpec(betas=(0.0, 0.1), logvar_init=0.0)
    arms = spec.arms()
    assert list(arms) == [DETERMINISTIC, DEFAULT, "β = 0", "β = 0.1"]
    assert arms[DETERMINISTIC] == {"model_kwargs": {"variational": False}} and arms[DEFAULT] == {}
    assert arms["β = 0.1"] == {"beta": 0.1, "model_kwargs": {"logvar_init": 0.0}}
    assert spec.cells()[:4] == [(a, 0) for a in arms]  # every arm at a seed before the next seed
    with pytest.raises(ValueError, match="two budgets"):
        AblationSpec(epochs=1, steps=1)
    with pytest.raises(ValueError, match="non-negative"):
        AblationSpec(betas=(-1.0,))


def test_differs_needs_more_than_the_seed_spread():
    rows = pd.DataFrame({"arm": ["a"] * 3 + ["b"] * 3, "train_seed": [0, 1, 2] * 2,
                         "uf1": [0.50, 0.60, 0.55, 0.52, 0.58, 0.57]})
    diff, real = differs(rows, "a", "b")
    assert math.isclose(diff, -0.02 / 3) and not real
    rows.loc[rows["arm"] == "a", "uf1"] += 0.2
    assert differs(rows, "a", "b")[1]
    assert math.isnan(differs(rows.iloc[[0, 3]], "a", "b")[0])  # one shared seed: no verdict


def test_an_ablation_runs_resumes_and_describes_itself(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVAT_CACHE", str(tmp_path / "cache"))
    spec = AblationSpec(model="convat_tiny", profile="quick", train_seeds=(0, 1), betas=(0.0, 1.0), steps=2,
                        img_size=16, flow="dis", synth_overrides={"n_subjects": 3, "clips_per_subject": 4})
    rows = run_ablation(spec, tmp_path / "a", progress=False)
    assert len(rows) == 8 and rows["uf1"].between(0, 1).all()
    assert len(list((tmp_path / "a" / "predictions").glob("*-seed*.csv"))) == 8  # each row's predictions kept
    twin = rows[rows["arm"] == DETERMINISTIC]
    assert twin["sigma"].isna().all() and rows[rows["arm"] == beta_arm(1.0)]["sigma"].gt(0).all()
    (tmp_path / "a" / "rows.csv").write_text(rows.iloc[:5].to_csv(index=False))  # as if killed after 5 rows
    again = run_ablation(spec, tmp_path / "a", progress=False)
    pd.testing.assert_series_equal(again["uf1"], rows["uf1"])  # the rerun rows are the same computation
    # and the 5 finished rows were kept, not trained again (a retrained row has its own wall and CPU time)
    for column in ("wall_s", "cpu_s"):
        assert again[column].iloc[:5].tolist() == pytest.approx(rows[column].iloc[:5].tolist(), rel=1e-9, abs=0)
    pd.testing.assert_frame_equal(read_rows(tmp_path / "a"), again)
    with pytest.raises(RunStoreError, match="another spec"):
        run_ablation(AblationSpec(train_seeds=(0,), steps=2, img_size=16, flow="dis"), tmp_path / "a")
    table = ablation_table(again, list(spec.arms()))
    assert list(table.index) == list(spec.arms()) and (table["seeds"] == 2).all()
    assert table.loc[DETERMINISTIC, "σ"] == "—"
    text = " ".join(describe_ablation(tmp_path / "a"))
    assert "8 of 8 runs" in text and "against the deterministic twin" in text and "Started at σ = 1.00" in text
    # the σ the arms end at: their lowest and highest means, wherever on the β grid they are (not its end points:
    # here the first arm of the grid is made the highest and the last the lowest)
    edited = again.copy()
    edited.loc[edited["arm"] == beta_arm(0.0), "sigma"] = 0.9
    edited.loc[edited["arm"] == beta_arm(1.0), "sigma"] = 0.2
    (tmp_path / "a" / "rows.csv").write_text(edited.to_csv(index=False))
    said = " ".join(describe_ablation(tmp_path / "a"))
    assert f"between 0.200 ({beta_arm(1.0)}) and 0.900 ({beta_arm(0.0)})" in said
    (tmp_path / "a" / "rows.csv").write_text(again.to_csv(index=False))
    assert "does not ship it" in describe_ablation(tmp_path / "absent")[0] and "other code" not in text
    # the quick profile is a smoke test: its UF1 differences are listed, never called a difference
    assert "**Smoke test:**" in text and "beyond the seed spread" not in text and "differ by more" not in text
    record_file = tmp_path / "a" / "ablation.json"
    record = json.loads(record_file.read_text())
    record_file.write_text(json.dumps({**record, "spec": {**record["spec"], "profile": "composite"}}))
    composite = " ".join(describe_ablation(tmp_path / "a"))
    assert "Smoke test" not in composite and ("No arm differs" in composite or "differ by more" in composite)
    record_file.write_text(json.dumps(record))
    (tmp_path / "empty").mkdir()
    assert "No arm" in describe_ablation(tmp_path / "empty")[0]
    stale = again.assign(code="0" * 16)
    stale.to_csv(tmp_path / "a" / "rows.csv", index=False)
    assert "Made by other code" in " ".join(describe_ablation(tmp_path / "a"))


def test_arms_are_compared_with_the_twin_by_the_paired_test_when_predictions_are_kept(tmp_path):
    import numpy as np

    from convat.experiments.ablation import (
        RECORD_FILE,
        arm_runs,
        paired_against_twin,
        predictions_path,
        write_predictions,
    )
    from convat.experiments.rows import replace_rows

    rng = np.random.default_rng(0)
    subjects = np.repeat([f"s{i:02d}" for i in range(12)], 6)
    labels = np.tile(["negative", "positive", "surprise"], 24)
    out = tmp_path / "ab"
    rows = []
    for seed in (0, 1, 2):
        for arm, right in ((DETERMINISTIC, 0.5), (DEFAULT, 0.9)):  # the default arm is far better on every seed
            hit = rng.random(len(labels)) < right
            wrong = np.roll(labels, 1)
            frame = pd.DataFrame({"dataset": "synthme", "subject": subjects, "clip": [f"c{i}" for i in range(72)],
                                  "label": labels, "prediction": np.where(hit, labels, wrong), "fold": subjects})
            write_predictions(out, arm, seed, frame)
            rows.append({"arm": arm, "train_seed": seed, "uf1": float(hit.mean()), "uar": float(hit.mean()),
                         "fit_accuracy": 1.0, "sigma": np.nan if arm == DETERMINISTIC else 0.1, "kl": np.nan,
                         "sample_agreement": np.nan if arm == DETERMINISTIC else 0.9, "wall_s": 1.0, "cpu_s": 1.0,
                         "code": "x", "commit": "y"})
    replace_rows(out, pd.DataFrame(rows))
    spec = AblationSpec(profile="composite", betas=(), train_seeds=(0, 1, 2)).to_json()
    (out / RECORD_FILE).write_text(json.dumps({"spec": spec, "date": "d", "machine": {}}))
    assert predictions_path(out, "β = 0.001", 2).name == "beta-0.001-seed2.csv"
    assert len(arm_runs(out, DEFAULT, [0, 1, 2])) == 3
    test = paired_against_twin(out, pd.DataFrame(rows), DEFAULT, n_boot=200)
    assert test is not None and test["low"] > 0 and test["runs_a"] == 3 == test["runs_b"]
    text = "\n".join(describe_ablation(out))
    assert "Paired over subjects and training seeds:\n- default beats deterministic over subjects and seeds" in text
    assert "beyond the seed spread" not in text
    # one seed's predictions missing: no paired test, and the page says the seed-spread rule's answer instead
    predictions_path(out, DEFAULT, 2).unlink()
    assert paired_against_twin(out, pd.DataFrame(rows), DEFAULT) is None
    assert "Paired over subjects" not in "\n".join(describe_ablation(out))
