"""Runs that cannot lie: run identity, checked fold files, the lock, stray temporary files (issue 16)."""

import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from convat import runstore
from convat.data.synth import generate
from convat.loso import fold_subjects, run_loso
from convat.preprocess.pipeline import PreprocessConfig, preprocess
from convat.runstore import RunLockedError, RunStore, RunStoreError
from convat.training.loop import TrainConfig

ONE = TrainConfig(epochs=1, batch_size=16)


@pytest.fixture(autouse=True)
def _frozen_code(monkeypatch):
    """Other engineers edit the sources while the suite runs; the code fingerprint is tested on its own below."""
    monkeypatch.setattr(runstore, "code_fingerprint", lambda *a: "frozen")


@pytest.fixture(scope="module")
def data():
    records = generate("quick", n_subjects=4, clips_per_subject=5)
    return preprocess(records, PreprocessConfig(flow="dis", size=24), progress=False)


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """A finished run folder (kept pristine; tests copy it)."""
    x, table = data
    out = tmp_path_factory.mktemp("reference")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runstore, "code_fingerprint", lambda *a: "frozen")
        predictions = run_loso(x, table, ONE, out_dir=out, progress=False)
    return predictions, out


def _copy(reference, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference[1], out)
    return out


def _count_training(monkeypatch):
    import convat.loso as loso

    trained, real = [], loso.fit_fold
    monkeypatch.setattr(loso, "fit_fold", lambda *a, **k: trained.append(a[2]) or real(*a, **k))
    return trained


# -- 1. one run identity -------------------------------------------------------------------------------------
def test_identity_names_every_field_that_decides_predictions(data):
    from convat.loso import loso_splits, run_identity

    x, table = data
    identity = run_identity(x, table, ONE, loso_splits(table),
                            {"dataset": "synthme", "profile": "quick", "data_seed": 0})
    assert set(identity) == {"data", "preprocess", "inputs", "training", "classes", "folds", "code"}
    assert identity["preprocess"]["flow"] == "dis" and identity["preprocess"]["size"] == 24
    assert identity["data"]["profile"] == "quick" and identity["training"]["epochs"] == 1


@pytest.mark.parametrize("change, field", [
    (lambda x, t, c: (x, t, replace(c, epochs=2)), "training.epochs"),
    (lambda x, t, c: (x, t, replace(c, lr=5e-3)), "training.lr"),
    (lambda x, t, c: (x * 1.01, t, c), "inputs.sha256"),
    (lambda x, t, c: (x[:-1], t.iloc[:-1], c), "data.clip_list"),
    # another class list (one class renamed), and other folds (two subjects merged into one)
    (lambda x, t, c: (x, t.assign(label=t["label"].replace({sorted(t["label"].unique())[0]: "renamed"})), c),
     "classes"),
    (lambda x, t, c: (x, t.assign(subject=t["subject"].replace({sorted(t["subject"].unique())[1]:
                                                                sorted(t["subject"].unique())[0]})), c), "folds"),
])
def test_another_run_into_the_same_folder_is_refused_naming_the_field(reference, data, tmp_path, monkeypatch,
                                                                       change, field):
    x, table = data
    out = _copy(reference, tmp_path)
    before = (out / "config.json").read_bytes()
    trained = _count_training(monkeypatch)
    x2, t2, c2 = change(x, table, ONE)
    t2.attrs = table.attrs
    with pytest.raises(RunStoreError, match=field.replace(".", r"\.")):
        run_loso(x2, t2, c2, out_dir=out, progress=False)
    assert trained == [] and (out / "config.json").read_bytes() == before


def test_a_code_change_is_a_different_run(reference, data, tmp_path, monkeypatch):
    x, table = data
    out = _copy(reference, tmp_path)
    monkeypatch.setattr(runstore, "code_fingerprint", lambda *a: "edited")
    with pytest.raises(RunStoreError, match="code"):
        run_loso(x, table, ONE, out_dir=out, progress=False)


def test_deleted_or_unreadable_config_beside_folds_is_an_error_naming_it(reference, data, tmp_path, monkeypatch):
    x, table = data
    out = _copy(reference, tmp_path)
    trained = _count_training(monkeypatch)
    (out / "config.json").unlink()
    with pytest.raises(RunStoreError, match="config.json is missing"):
        run_loso(x, table, replace(ONE, epochs=5), out_dir=out, progress=False)
    assert not (out / "config.json").exists()
    for garbage in (b"", b"{not json", b"[1, 2]"):
        (out / "config.json").write_bytes(garbage)
        with pytest.raises(RunStoreError, match="config.json"):
            run_loso(x, table, ONE, out_dir=out, progress=False)
    assert trained == []


def test_a_failed_start_writes_nothing(data, tmp_path):
    x, table = data
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="nosuchmodel"):
        run_loso(x, table, replace(ONE, model="nosuchmodel"), out_dir=out, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        run_loso(x, table, replace(ONE, batch_size=0), out_dir=out, progress=False)
    assert not (out / "config.json").exists()


def test_resume_keeps_finished_folds_and_the_original_config(reference, data, tmp_path, monkeypatch):
    x, table = data
    out = _copy(reference, tmp_path)
    first = fold_subjects(table)[0]
    store = RunStore(out)
    for path in (store.fold_path(first), store.manifest_path(first)):
        path.unlink()
    config_before = (out / "config.json").read_bytes()
    trained = _count_training(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fold killed before its manifest is simply trained again
        resumed = run_loso(x, table, ONE, out_dir=out, progress=False)
    assert trained == [first]
    pd.testing.assert_frame_equal(resumed, reference[0])
    assert (out / "config.json").read_bytes() == config_before
    assert (out / "predictions.csv").read_bytes() == (reference[1] / "predictions.csv").read_bytes()


# -- 2. checked fold files ------------------------------------------------------------------------------------
def _truncate(path, other):
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-2]))


def _header_only(path, other):
    path.write_text(path.read_text().splitlines(keepends=True)[0])


def _copied_csv(path, other):
    shutil.copy(other, path)


def _copied_with_manifest(path, other):
    shutil.copy(other, path)
    shutil.copy(other.with_suffix(".json"), path.with_suffix(".json"))


def _edited_probability(path, other):
    frame = pd.read_csv(path, dtype={"subject": str, "clip": str})
    column = [c for c in frame.columns if c.startswith("p_")][0]
    frame.loc[0, column] = 0.999
    frame.to_csv(path, index=False)


def _nan(path, other):
    frame = pd.read_csv(path, dtype={"subject": str, "clip": str})
    column = [c for c in frame.columns if c.startswith("p_")][0]
    frame.loc[0, column] = float("nan")
    frame.to_csv(path, index=False)


def _nan_with_fixed_checksum(path, other):
    """A NaN written by someone who also updated the manifest's checksum: the content check still refuses it."""
    import hashlib

    _nan(path, other)
    manifest = json.loads(path.with_suffix(".json").read_text())
    manifest["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    path.with_suffix(".json").write_text(json.dumps(manifest))


def _zero_bytes(path, other):
    path.write_bytes(b"")


def _garbage(path, other):
    path.write_bytes(b"\x00\xff garbage \n,,,\n")


def _manifest_garbage(path, other):
    path.with_suffix(".json").write_text("{")


def _curve_truncated(path, other):
    curve = path.parent.parent / "curves" / path.name
    curve.write_text(curve.read_text()[:10])


@pytest.mark.parametrize("damage", [_truncate, _header_only, _copied_csv, _copied_with_manifest,
                                    _edited_probability, _nan, _nan_with_fixed_checksum, _zero_bytes, _garbage,
                                    _manifest_garbage, _curve_truncated])
def test_a_damaged_fold_file_is_named_and_recomputed(reference, data, tmp_path, monkeypatch, damage):
    x, table = data
    out = _copy(reference, tmp_path)
    folds = fold_subjects(table)
    store = RunStore(out)
    victim = store.fold_path(folds[1])
    damage(victim, store.fold_path(folds[0]))
    trained = _count_training(monkeypatch)
    with pytest.warns(UserWarning, match=victim.stem) as caught:
        resumed = run_loso(x, table, ONE, out_dir=out, progress=False)
    assert any("recomputed" in str(w.message) for w in caught)
    assert trained == [folds[1]]
    pd.testing.assert_frame_equal(resumed, reference[0])
    assert (out / "predictions.csv").read_bytes() == (reference[1] / "predictions.csv").read_bytes()
    assert list((out / "folds").glob("*.bad"))  # the evidence is kept aside


def test_stray_temporary_files_of_dead_processes_are_removed(reference, data, tmp_path):
    x, table = data
    out = _copy(reference, tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stray = [out / f"curves.csv.{dead.pid}.tmp", out / "folds" / f"x.csv.{dead.pid}.tmp"]
    live = out / f"predictions.csv.{os.getppid()}.tmp"  # a live process's file is left alone
    for path in [*stray, live]:
        path.write_text("half")
    run_loso(x, table, ONE, out_dir=out, progress=False)
    assert not any(p.exists() for p in stray) and live.exists()


def test_another_machines_temporary_files_are_left_until_they_are_old(reference, data, tmp_path):
    """Tasks of a split run on several machines share the folder: a write in flight on another machine has a
    process id that means nothing here, so its file is kept until it is a day old."""
    from convat.runstore import FOREIGN_STALE_S, HOST_TAG, tmp_in_use, tmp_writer

    x, table = data
    out = _copy(reference, tmp_path)
    other = "0" * 8 if HOST_TAG != "0" * 8 else "1" * 8
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    in_flight = out / "folds" / f"s1.csv.{dead.pid}-{other}.tmp"  # the same pid is dead here, not there
    leftover = out / "folds" / f"s2.csv.{dead.pid}-{other}.tmp"
    mine = out / "folds" / f"s3.csv.{dead.pid}-{HOST_TAG}.tmp"
    for path in (in_flight, leftover, mine):
        path.write_text("half")
    old = time.time() - FOREIGN_STALE_S - 60
    os.utime(leftover, (old, old))
    assert tmp_writer(in_flight) == (dead.pid, other) and tmp_writer(out / "x.csv.12.tmp") == (12, None)
    assert tmp_in_use(in_flight) and not tmp_in_use(leftover) and not tmp_in_use(mine)
    run_loso(x, table, ONE, out_dir=out, progress=False)
    assert in_flight.exists() and not leftover.exists() and not mine.exists()


# -- 5. the lock ----------------------------------------------------------------------------------------------
def test_a_second_run_into_a_folder_in_use_is_refused_naming_the_holder(reference, data, tmp_path):
    x, table = data
    out = _copy(reference, tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket

        (out / ".lock").write_text(f"{holder.pid} {socket.gethostname()}\n")
        with pytest.raises(RunLockedError, match=f"process {holder.pid} on {socket.gethostname()}"):
            run_loso(x, table, ONE, out_dir=out, progress=False)
    finally:
        holder.kill()
        holder.wait()
    with pytest.warns(UserWarning, match=f"lock of process {holder.pid}"):  # dead now: taken over
        run_loso(x, table, ONE, out_dir=out, progress=False)
    assert not (out / ".lock").exists()


def test_the_lock_a_run_takes_names_its_pid_and_host(tmp_path):
    import socket

    store = runstore.RunStore(tmp_path / "run")
    store.path.mkdir(parents=True)
    store.acquire()
    try:
        assert (store.path / ".lock").read_text() == f"{os.getpid()} {socket.gethostname()}\n"
    finally:
        store.close()
    assert not (store.path / ".lock").exists()


def test_the_lock_is_released_after_an_interrupted_run(data, tmp_path, monkeypatch):
    import convat.loso as loso

    x, table = data

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(loso, "fit_fold", boom)
    with pytest.raises(KeyboardInterrupt):
        run_loso(x, table, ONE, out_dir=tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "config.json").exists() and not (tmp_path / "run" / ".lock").exists()


# -- the fingerprint rule -------------------------------------------------------------------------------------
def test_code_fingerprint_covers_result_code_only(tmp_path, monkeypatch):
    monkeypatch.undo()  # the real function
    from convat.runstore import PREPROCESS_SOURCES, code_fingerprint

    package = tmp_path / "convat"
    shutil.copytree(runstore.PACKAGE_ROOT, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(runstore, "PACKAGE_ROOT", package)
    base, prep = code_fingerprint(), code_fingerprint(PREPROCESS_SOURCES)
    for harmless in ("site/browser.py", "commands/loso.py", "book.py", "plots.py", "preprocess/plots.py",
                     "preprocess/describe.py", "data/readers/describe.py"):
        with open(package / harmless, "a") as f:
            f.write("\n# edited\n")
    assert code_fingerprint() == base and code_fingerprint(PREPROCESS_SOURCES) == prep
    explain = code_fingerprint((*runstore.RESULT_SOURCES, "explain"))  # experiments.controls.explain_fingerprint
    with open(package / "explain" / "describe.py", "a") as f:
        f.write("\n# edited\n")
    assert code_fingerprint((*runstore.RESULT_SOURCES, "explain")) == explain
    with open(package / "explain" / "faithfulness.py", "a") as f:
        f.write("\n# edited\n")
    assert code_fingerprint((*runstore.RESULT_SOURCES, "explain")) != explain
    # every part of the result code moves the fingerprint; the tensors' key moves with the preprocessing, SynthME's
    # generator and the readers' frame loading only
    for module, moves_tensors in (("training/loop.py", False), ("models/convat.py", False), ("folds.py", False),
                                  ("loso.py", False), ("metrics.py", False), ("data/readers/common.py", False),
                                  ("data/synth/render.py", True), ("data/records.py", True),
                                  ("preprocess/strain.py", True)):
        before, before_prep = code_fingerprint(), code_fingerprint(PREPROCESS_SOURCES)
        with open(package / module, "a") as f:
            f.write("\n# edited\n")
        assert code_fingerprint() != before, module
        assert (code_fingerprint(PREPROCESS_SOURCES) != before_prep) == moves_tensors, module


def test_explain_weights_and_run_keys_use_the_one_fingerprint(monkeypatch, tmp_path):
    """Run folders and explanation weights are keyed by the same rule: a change of the code that decides results
    (here a stand-in fingerprint) moves both, and nothing else about the inputs does."""
    import convat.explain.fold as fold
    import convat.loso as loso
    from convat.training.config import TrainConfig

    assert not hasattr(loso, "source_fingerprint")
    table = pd.DataFrame({"dataset": "toy", "subject": ["a", "a", "b", "b"], "clip": list("wxyz"),
                          "label": ["negative", "positive"] * 2})
    x = np.zeros((4, 3, 8, 8), dtype=np.float32)
    config = TrainConfig(epochs=1)

    def keys():
        return (loso.run_key(x, table, config), fold._weights_path(x, table, "toy/a", config, tmp_path).name,
                fold._weights_path(x, table, "toy/a", config, tmp_path, permute_labels=0).name)

    before = keys()
    assert before == keys() and len(set(before)) == 3
    monkeypatch.setattr(runstore, "code_fingerprint", lambda *a, **k: "another-code")
    after = keys()
    assert all(b != a for b, a in zip(before, after, strict=True))


def test_empty_convat_cache_is_an_error(monkeypatch):
    monkeypatch.setenv("CONVAT_CACHE", "")
    with pytest.raises(RunStoreError, match="CONVAT_CACHE"):
        runstore.default_cache_dir()


def test_identity_differences_are_listed_field_by_field():
    old = {"training": {"epochs": 3, "lr": 0.002}, "preprocess": {"flow": "tvl1"}}
    new = {"training": {"epochs": 5, "lr": 0.002}, "preprocess": {"flow": "dis"}}
    assert runstore.identity_differences(old, new) == ["preprocess.flow: 'tvl1' -> 'dis'", "training.epochs: 3 -> 5"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert runstore.parse_size("1.5G") == int(1.5 * 1024**3) and runstore.parse_size("100") == 100
    with pytest.raises(ValueError, match="size"):
        runstore.parse_size("lots")


# -- kill points ----------------------------------------------------------------------------------------------
KILL_SCRIPT = '''
import os, signal, sys
import torch
torch.set_num_threads(int(sys.argv[3]))
from convat import runstore
from convat.data.synth import generate
from convat.loso import run_loso
from convat.preprocess.pipeline import PreprocessConfig, preprocess
from convat.training.loop import TrainConfig

kill_at, calls, original = int(sys.argv[2]), [0], runstore.atomic_write_bytes

def write(path, data):
    calls[0] += 1
    if calls[0] == kill_at:  # half a temporary file, then SIGKILL: no cleanup code runs
        path.with_name(f"{path.name}.{os.getpid()}.tmp").write_bytes(data[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    original(path, data)

runstore.atomic_write_bytes = write
x, table = preprocess(generate("quick", n_subjects=4, clips_per_subject=5), PreprocessConfig(flow="dis", size=24),
                      progress=False)
runstore.code_fingerprint = lambda *a: "frozen"
run_loso(x, table, TrainConfig(epochs=1, batch_size=16), out_dir=sys.argv[1], progress=False)
'''


def test_sigkill_at_any_write_then_the_same_command_ends_byte_identical(reference, data, tmp_path):
    """Killed while the run's identity (config.json) is written, mid-fold (half a predictions file), between a
    fold's predictions and its manifest, and while the final tables are written; each rerun resumes, and the
    folder ends as an uninterrupted run's (every file byte for byte, except the times the fold manifests
    record)."""
    import signal

    import torch

    script = tmp_path / "kill.py"
    script.write_text(KILL_SCRIPT)
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(runstore.PACKAGE_ROOT.parent),
                                                         os.environ.get("PYTHONPATH", "")])}
    threads = str(torch.get_num_threads())
    # writes: config.json (until one run has written it), per fold curve/predictions/manifest, then predictions.csv,
    # curves.csv, metrics.csv. Kill points: config.json half written (nothing else yet); fold 1's predictions half
    # written; fold 4's manifest not yet written (folds 1-3 done); curves.csv half written (predictions.csv done).
    # The last rerun is in this process.
    for kill_at in (1, 3, 12, 5):
        result = subprocess.run([sys.executable, str(script), str(out), str(kill_at), threads], env=env,
                                capture_output=True, text=True)
        assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
        assert list(out.rglob("*.tmp"))
    x, table = data
    with pytest.warns(UserWarning, match="taking over the lock"):  # the killed process's lock
        run_loso(x, table, ONE, out_dir=out, progress=False)
    names = ["predictions.csv", "curves.csv", "metrics.csv"]
    names += [p.relative_to(reference[1]).as_posix() for p in (reference[1] / "folds").iterdir()]
    names += [p.relative_to(reference[1]).as_posix() for p in (reference[1] / "curves").iterdir()]
    times = runstore.MANIFEST_INFO_FIELDS  # when (and on what CPU) each fold was written: informational
    for name in names:
        if name.endswith(".json"):
            mine, ref = (json.loads((root / name).read_text()) for root in (out, reference[1]))
            assert set(times) <= set(mine)
            assert {k: v for k, v in mine.items() if k not in times} == \
                {k: v for k, v in ref.items() if k not in times}, name
        else:
            assert (out / name).read_bytes() == (reference[1] / name).read_bytes(), name
    assert not list(out.rglob("*.tmp")) and not (out / ".lock").exists()
    assert json.loads((out / "config.json").read_text())["identity"] == \
        json.loads((reference[1] / "config.json").read_text())["identity"]


def test_a_runs_wall_and_cpu_time_are_summed_over_the_sessions_that_wrote_its_folds(tmp_path, monkeypatch):
    clock = iter([100.0, 130.0, 160.0, 1000.0, 1010.0]).__next__  # open, fold a, fold b | open, fold c
    monkeypatch.setattr(runstore.time, "time", clock)
    # the process tree's CPU (a new process per session: its readings restart near zero)
    cpu = iter([5.0, 50.0, 95.0, 2.0, 42.0]).__next__
    monkeypatch.setattr(runstore.runtime, "process_tree_cpu_s", cpu)
    table = pd.DataFrame({"dataset": "d", "subject": ["a", "b", "c"], "clip": ["1", "2", "3"], "label": "x",
                          "prediction": "x", "fold": ["a", "b", "c"], "p_x": 1.0})
    expected = {f: RunStore.clip_ids(table, (table.subject == f).to_numpy()) for f in "abc"}

    def write(store, fold):
        store.write_fold(fold, table[table.subject == fold].reset_index(drop=True), None, expected[fold])

    with RunStore(tmp_path).open({"run": 1}) as store:
        write(store, "a")
        write(store, "b")  # then the session is killed: its in-flight work is not counted
    with RunStore(tmp_path).open({"run": 1}) as store:
        write(store, "c")
        assert set(store.valid_folds(expected)) == {"a", "b", "c"}  # the times are never checked
    assert RunStore(tmp_path).session_wall_s() == (70.0, 0)  # (160 - 100) + (1010 - 1000)
    assert RunStore(tmp_path).session_cpu_s() == (130.0, 0)  # (95 - 5) + (42 - 2)
    # a fold from before manifests recorded times is counted as untimed, not guessed
    path = RunStore(tmp_path).manifest_path("a")
    old = {k: v for k, v in json.loads(path.read_text()).items() if k not in runstore.MANIFEST_TIME_FIELDS}
    path.write_text(json.dumps(old))
    assert RunStore(tmp_path).session_wall_s() == (70.0, 1)
    assert RunStore(tmp_path).session_cpu_s() == (130.0, 1)
    # where /proc cannot tell (not Linux), the CPU is untimed, the wall time still counted
    path = RunStore(tmp_path).manifest_path("c")
    path.write_text(json.dumps({**json.loads(path.read_text()), "cpu_at": None, "session_opened_cpu": None}))
    assert RunStore(tmp_path).session_wall_s() == (70.0, 1)
    assert RunStore(tmp_path).session_cpu_s() == (90.0, 2)


def test_output_folder_removes_only_the_empty_folders_a_failed_block_made(tmp_path):
    with pytest.raises(KeyboardInterrupt), runstore.output_folder(tmp_path / "a" / "b") as out:
        (out / "cells" / "x").mkdir(parents=True)
        raise KeyboardInterrupt
    assert not (tmp_path / "a").exists()  # the parents it made go too
    with pytest.raises(ValueError), runstore.output_folder(tmp_path / "c") as out:
        (out / "cells").mkdir()
        (out / "cells" / "done.csv").write_text("x\n")
        (out / "cells" / "empty").mkdir()
        raise ValueError("after writing")
    assert (tmp_path / "c" / "cells" / "done.csv").exists() and not (tmp_path / "c" / "cells" / "empty").exists()
    (tmp_path / "d" / "kept").mkdir(parents=True)  # a folder that held something before: untouched
    with pytest.raises(ValueError), runstore.output_folder(tmp_path / "d") as out:
        (out / "new").mkdir()
        raise ValueError
    assert (tmp_path / "d" / "kept").is_dir() and (tmp_path / "d" / "new").is_dir()
    with runstore.output_folder(tmp_path / "e") as out:  # success: the folder stays, even empty
        pass
    assert out.is_dir()
