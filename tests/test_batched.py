"""The batched trainer (all folds as one vmapped model) equals the sequential engine where it should."""

import numpy as np
import pandas as pd
import pytest

from convat.data.synth import generate
from convat.loso import load_curves, run_loso
from convat.preprocess.pipeline import PreprocessConfig, preprocess
from convat.training.loop import TrainConfig

#: The stated tolerance on probabilities: float rounding of a different operation order, grown over the training
#: steps, and CPU-dependent (7e-7 measured when the test was written; 1.1e-5 on an AMD EPYC, torch 2.14.1, 2026-12-06).
PROBA_ATOL = 1e-4

# Deterministic: no mirror draws, no dropout, no variational sampling (their noise is not the sequential stream).
DETERMINISTIC = TrainConfig(epochs=3, batch_size=8, hflip=False,
                            model_kwargs={"variational": False, "drop_rate": 0.0})


@pytest.fixture(scope="module")
def ragged():
    """Four subjects, one with fewer clips: fold training sets of 16 and 18 clips, so with batches of 8 the
    folds have 2 or 3 steps per epoch and a last batch of 2 (ragged sizes, grouped steps, schedules apart)."""
    records = generate("quick", n_subjects=4, clips_per_subject=6)
    x, table = preprocess(records, PreprocessConfig(flow="dis", size=32), progress=False)
    keep = np.ones(len(table), bool)
    keep[:2] = False
    return x[keep], table[keep].reset_index(drop=True)


def test_batched_gives_the_sequential_predictions_and_curves(ragged, tmp_path):
    x, table = ragged
    seq = run_loso(x, table, DETERMINISTIC, out_dir=tmp_path / "seq", progress=False, strategy="sequential")
    bat = run_loso(x, table, DETERMINISTIC, out_dir=tmp_path / "bat", progress=False, strategy="batched")
    assert (bat["prediction"] == seq["prediction"]).all()
    np.testing.assert_allclose(bat.filter(like="p_").to_numpy(), seq.filter(like="p_").to_numpy(), atol=PROBA_ATOL)
    c_seq, c_bat = load_curves(tmp_path / "seq"), load_curves(tmp_path / "bat")
    assert list(c_bat["epoch"]) == list(c_seq["epoch"]) and list(c_bat["fold"]) == list(c_seq["fold"])
    np.testing.assert_allclose(c_bat["lr"], c_seq["lr"], rtol=1e-9)  # per-fold one-cycle schedules
    np.testing.assert_allclose(c_bat["loss"], c_seq["loss"], rtol=1e-4)
    np.testing.assert_allclose(c_bat["train_accuracy"], c_seq["train_accuracy"])
    # the returned model's fit to its training clips, on its selected row only, the same in both engines
    for column in ("fit_uf1", "fit_accuracy", "fit_loss", "sigma", "kl", "sample_agreement"):
        np.testing.assert_allclose(c_bat[column], c_seq[column], rtol=1e-4, err_msg=column)
    assert c_seq.loc[c_seq["selected"], "fit_accuracy"].notna().all()
    assert c_seq.loc[~c_seq["selected"], "fit_accuracy"].isna().all()
    assert (tmp_path / "bat" / "predictions.csv").exists()


def test_a_step_budget_gives_every_fold_the_same_steps_in_both_engines(ragged, tmp_path):
    """steps=7 with folds of 2 and 3 steps per epoch: 4 and 3 epochs, the last one partial; the batched engine
    stops each fold at the same step as the sequential one, with the same partial-epoch curves."""
    x, table = ragged
    from dataclasses import replace

    config = replace(DETERMINISTIC, steps=7, hflip=True)
    seq = run_loso(x, table, config, out_dir=tmp_path / "seq", progress=False, strategy="sequential")
    bat = run_loso(x, table, config, out_dir=tmp_path / "bat", progress=False, strategy="batched")
    np.testing.assert_allclose(bat.filter(like="p_").to_numpy(), seq.filter(like="p_").to_numpy(), atol=PROBA_ATOL)
    c_seq, c_bat = load_curves(tmp_path / "seq"), load_curves(tmp_path / "bat")
    assert sorted(c_seq.groupby("fold")["epoch"].max().unique()) == [3, 4]  # ragged folds, partial last epochs
    assert list(c_bat["epoch"]) == list(c_seq["epoch"]) and list(c_bat["fold"]) == list(c_seq["fold"])
    np.testing.assert_allclose(c_bat["lr"], c_seq["lr"], rtol=1e-9)
    np.testing.assert_allclose(c_bat["loss"], c_seq["loss"], rtol=1e-4)
    np.testing.assert_allclose(c_bat["train_accuracy"], c_seq["train_accuracy"])
    # every fold's last recorded lr is that of a one-cycle schedule of exactly 7 steps, after its 7th step
    import torch

    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=config.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=7, pct_start=0.15)
    for _ in range(7):
        opt.step()
        sched.step()
    np.testing.assert_allclose(c_seq.groupby("fold")["lr"].last(), opt.param_groups[0]["lr"], rtol=1e-12)


def test_batched_with_mirror_draws_follows_each_folds_stream(ragged):
    """hflip draws come from each fold's own generator, as in a sequential fold (dropout stays off)."""
    x, table = ragged
    config = TrainConfig(epochs=2, batch_size=8, model_kwargs={"variational": False, "drop_rate": 0.0})
    seq = run_loso(x, table, config, progress=False, strategy="sequential")
    bat = run_loso(x, table, config, progress=False, strategy="batched")
    np.testing.assert_allclose(bat.filter(like="p_").to_numpy(), seq.filter(like="p_").to_numpy(), atol=PROBA_ATOL)


def test_batched_refuses_model_selection(ragged):
    x, table = ragged
    with pytest.raises(ValueError, match="fixed budgets only"):
        run_loso(x, table, TrainConfig(epochs=1, val_fraction=0.3), progress=False, strategy="batched")


def test_batched_folds_are_independent(ragged):
    """A fold trained alone in the batched engine equals the same fold trained with the others."""
    x, table = ragged
    together = run_loso(x, table, DETERMINISTIC, progress=False, strategy="batched")
    fold = together["fold"].iloc[-1]
    mask = (table["dataset"] + "/" + table["subject"].astype(str) == fold).to_numpy()
    alone = run_loso(x, table, DETERMINISTIC, progress=False, strategy="batched", splits={fold: mask})
    part = together[together["fold"] == fold].reset_index(drop=True)
    np.testing.assert_allclose(alone.filter(like="p_").to_numpy(), part.filter(like="p_").to_numpy(), atol=PROBA_ATOL)
    pd.testing.assert_series_equal(alone["clip"], part["clip"])


def test_the_gpu_benchmark_runs_its_variants_on_a_cpu(ragged, monkeypatch, tmp_path):
    """A dry run of ``benchmarks/gpu.py`` on the CPU (tiny inputs, eager and batched; compiling on a CPU takes
    minutes): the script a lent GPU session runs at once must not fail there for a reason a CPU can show."""
    from benchmarks import gpu

    monkeypatch.setenv("CONVAT_CACHE", str(tmp_path / "cache"))
    payload = gpu.run(epochs=1, seq_folds=1, device="cpu", inputs=ragged, variants=(gpu.VARIANTS[0], gpu.VARIANTS[2]))
    rows = {r["variant"]: r for r in payload["rows"]}
    assert set(rows) == {gpu.VARIANTS[0], gpu.VARIANTS[2]}
    assert all(r["seconds"] is not None and r["seconds"] > 0 for r in rows.values()), rows
    assert rows[gpu.VARIANTS[2]]["note"].startswith(f"{len(set(ragged[1]['subject']))} folds")
    assert payload["gpu"] == "cpu (dry run)" and all(t["value"] is not None for t in payload["targets"])
    import torch

    if not torch.cuda.is_available():  # without CUDA the real run writes rows that say so
        assert all(r["note"].startswith("not measured") for r in gpu.run()["rows"])
    # past its time budget the script starts no variant (nor its warm-up), and each row says why
    payload = gpu.run(epochs=1, seq_folds=1, device="cpu", inputs=ragged, budget_s=-1.0)
    assert [r["variant"] for r in payload["rows"]] == list(gpu.VARIANTS)
    assert all(r["seconds"] is None and r["note"].startswith("skipped: the script had run") for r in payload["rows"])
    assert all(t["value"] is None for t in payload["targets"])
    assert payload["measured"] is False  # so it cannot replace an earlier measurement (benchmarks.common)
