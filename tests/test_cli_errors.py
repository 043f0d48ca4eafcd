"""The command line: one-line user errors before any work, no abbreviations, working examples (issue 16)."""

import json
import shlex
import shutil

import pytest

import convat.book
import convat.preprocess.pipeline
from convat import runstore
from convat.cli import main
from convat.commands.loso import EXAMPLES
from convat.data.synth import generate

TINY = ["--epochs", "1", "--img-size", "16", "--flow", "dis", "--n-boot", "20", "--quiet"]


def _tiny(patch, calls):
    """Every dataset becomes 4 SynthME subjects x 5 clips of the asked profile and seed (fast); calls recorded."""
    def load(dataset="synthme", profile="quick", data_root=None, seed=0):
        calls.append((dataset, profile, data_root, seed))
        return generate(profile, seed=seed, n_subjects=4, clips_per_subject=5)

    patch.setattr(convat.book, "load_records", load)
    patch.setattr(runstore, "code_fingerprint", lambda *a: "frozen")  # others edit sources meanwhile


@pytest.fixture
def tiny_data(monkeypatch):
    calls = []
    _tiny(monkeypatch, calls)
    return calls


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished ``convat loso`` run folder with the TINY settings (tests copy it)."""
    out = tmp_path_factory.mktemp("cli") / "run"
    with pytest.MonkeyPatch.context() as patch:
        _tiny(patch, [])
        assert main(["loso", *TINY, "--out", str(out)]) == 0
    return out


@pytest.fixture
def no_preprocessing(monkeypatch):
    """Fails the test if preprocessing starts (argument errors must come before any work)."""
    def refuse(*a, **k):
        raise AssertionError("preprocessing started")

    monkeypatch.setattr(convat.preprocess.pipeline, "preprocess", refuse)


def _error_line(capsys, argv) -> str:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("argv, named", [
    (["--epoch", "1"], "--epoch"),  # an abbreviation of --epochs
    (["--model", "nosuchmodel"], "--model"),
    (["--batch-size", "0"], "--batch-size"),
    (["--img-size", "0"], "--img-size"),
    (["--data-seed", "-1"], "--data-seed"),
    (["--train-seed", "-1"], "--train-seed"),
    (["--seed", "1"], "--seed"),  # one seed for data and training no longer exists
    (["--steps", "0"], "--steps"),
    (["--steps", "5", "--epochs", "2"], "--steps"),
    (["--n-boot", "0"], "--n-boot"),
    (["--n-boot", "-5"], "--n-boot"),
    (["--epochs", "0"], "--epochs"),
    (["--lr", "0"], "--lr"),
    (["--lr", "fast"], "--lr"),
    (["--val-fraction", "1"], "--val-fraction"),
    (["--patience", "-1"], "--patience"),
    (["--patience", "3"], "--patience"),  # needs a validation split
    (["--parallel-folds", "0"], "--parallel-folds"),
    (["--flow", "magic"], "--flow"),
    (["--profile", "huge"], "--profile"),
    (["--dataset", "composite"], "--dataset"),
    (["--device", "gpu"], "--device"),
])
def test_each_bad_flag_is_one_line_naming_flag_and_value_before_any_work(capsys, no_preprocessing, tmp_path,
                                                                         argv, named):
    err = _error_line(capsys, ["loso", *argv, "--out", str(tmp_path / "run")])
    assert named in err and argv[1].lstrip("-") in err
    assert not (tmp_path / "run").exists()


def test_out_that_is_a_file_is_refused(capsys, no_preprocessing, tmp_path):
    (tmp_path / "file").write_text("x")
    err = _error_line(capsys, ["loso", "--out", str(tmp_path / "file")])
    assert "--out" in err and "file" in err


def test_abbreviations_are_refused_everywhere(capsys):
    err = _error_line(capsys, ["synth", "--prof", "quick"])
    assert "--prof" in err
    err = _error_line(capsys, ["data", "check", "--data", "casme2"])
    assert "--data" in err


def test_debug_shows_the_traceback(no_preprocessing):
    from convat.commands import UsageError

    with pytest.raises(UsageError, match="nosuchmodel"):
        main(["--debug", "loso", "--model", "nosuchmodel"])


def test_lr_is_used(tiny_data, tmp_path, capsys):
    assert main(["loso", *TINY, "--lr", "0.005", "--out", str(tmp_path / "run")]) == 0
    info = json.loads((tmp_path / "run" / "config.json").read_text())
    assert info["identity"]["training"]["lr"] == 0.005


@pytest.mark.parametrize("change, field", [
    (["--flow", "farneback"], "preprocess.flow"),
    (["--img-size", "20"], "preprocess.size"),
    (["--profile", "composite"], "data.profile"),
    (["--data-seed", "1"], "data.data_seed"),
    (["--train-seed", "1"], "training.seed"),
    (["--epochs", "2"], "training.epochs"),
    (["--model", "ststnet"], "training.model"),
])
def test_another_setting_into_the_same_out_folder_is_refused_before_preprocessing(finished_run, tiny_data, tmp_path,
                                                                                   capsys, monkeypatch, change, field):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def refuse(*a, **k):
        raise AssertionError("preprocessing started")

    monkeypatch.setattr(convat.preprocess.pipeline, "preprocess", refuse)
    err = _error_line(capsys, ["loso", *TINY, *change, "--out", str(out)])
    assert field in err and str(out) in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_every_example_of_the_help_runs(tiny_data, tmp_path, monkeypatch, capsys):
    """Each line of ``convat loso --help``'s examples, with tiny settings appended (later flags win)."""
    monkeypatch.setenv("CONVAT_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    examples = [line.split("#")[0].strip() for line in EXAMPLES.splitlines() if line.strip().startswith("convat")]
    assert len(examples) >= 4
    for example in examples:
        argv = shlex.split(example)[1:]
        assert main([*argv, *TINY, "--parallel-folds", "1"]) == 0, example
    datasets = {call[0] for call in tiny_data}
    assert datasets == {"synthme", "megc2019", "casme2_5class"} and ("megc2019", "quick", "/data/megc", 0) in tiny_data
    assert (tmp_path / "runs" / "convat-composite" / "predictions.csv").exists()


def test_help_examples_parse_with_the_real_parser():
    from convat.cli import build_parser

    parser = build_parser()
    for line in EXAMPLES.splitlines():
        if line.strip().startswith("convat"):
            parser.parse_args(shlex.split(line.split("#")[0])[1:])


def test_empty_convat_cache_is_one_line(capsys, monkeypatch):
    monkeypatch.setenv("CONVAT_CACHE", "")
    err = _error_line(capsys, ["cache", "info"])
    assert "CONVAT_CACHE" in err


def test_bootstrap_refuses_zero_replicates():
    import pandas as pd

    from convat.metrics import bootstrap_ci

    frame = pd.DataFrame({"dataset": "d", "subject": ["a", "b"], "label": ["x", "y"], "prediction": ["x", "x"]})
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci(frame, n_boot=0)


def test_the_same_command_into_a_finished_folder_trains_nothing(finished_run, tiny_data, tmp_path, capsys,
                                                               monkeypatch):
    import convat.loso

    out = tmp_path / "run"
    shutil.copytree(finished_run, out)

    def refuse(*a, **k):
        raise AssertionError("a finished fold was trained again")

    monkeypatch.setattr(convat.loso, "fit_fold", refuse)
    assert main(["loso", *TINY, "--out", str(out)]) == 0
    assert (out / "predictions.csv").read_bytes() == (finished_run / "predictions.csv").read_bytes()
