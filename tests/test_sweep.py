"""Sweeps: idempotent points, the local pool backend and the submitit backend (its debug executor)."""

import pandas as pd
import pytest

from convat.sweep import SweepSpec, grid, run_sweep

SPEC = SweepSpec(flow="dis", img_size=32, epochs=1, device="cpu",
                 train_overrides={"batch_size": 16}, synth_overrides={"n_subjects": 3, "clips_per_subject": 4})


def test_grid_is_every_combination():
    points = grid(["a", "b"], [0, 1], [5])
    assert [(p.model, p.seed, p.draw) for p in points] == [("a", 0, 5), ("a", 1, 5), ("b", 0, 5), ("b", 1, 5)]


def test_local_and_submitit_backends_agree_and_points_are_idempotent(tmp_path):
    points = grid(["ststnet"], [0, 1], [0])
    finished = []
    local = run_sweep(points, SPEC, tmp_path / "local", backend="local", jobs=2,  # in the worker pool
                      on_done=lambda point, row: finished.append((point, row["UF1"])))
    assert len(local) == 2 and (tmp_path / "local" / "sweep.csv").exists()
    assert {p for p, _ in finished} == set(points)  # each point reported as it finished
    assert dict(finished)[points[0]] == local.loc[0, "UF1"]
    assert all((tmp_path / "local" / "ststnet" / f"seed{s}-draw0" / "predictions.csv").exists() for s in (0, 1))
    fold_files = sorted((tmp_path / "local").rglob("folds/*.csv"))
    stamps = [f.stat().st_mtime_ns for f in fold_files]
    pytest.importorskip("submitit")
    reported = []
    remote = run_sweep(points, SPEC, tmp_path / "local", backend="submitit", cluster="debug",
                       on_done=lambda point, row: reported.append(point))
    assert reported == points
    # the same folders: read back, not retrained (fold files untouched), same scores
    assert [f.stat().st_mtime_ns for f in fold_files] == stamps and len(stamps) == 6
    pd.testing.assert_frame_equal(local.drop(columns="folder"), remote.drop(columns="folder"))
    fresh = run_sweep(points[:1], SPEC, tmp_path / "fresh", backend="submitit", cluster="debug")
    assert fresh.loc[0, "UF1"] == pytest.approx(local.loc[0, "UF1"])  # a new folder reproduces the point


def test_unknown_backend_is_named(tmp_path):
    with pytest.raises(ValueError, match="unknown sweep backend 'ray'"):
        run_sweep([], SPEC, tmp_path, backend="ray")
