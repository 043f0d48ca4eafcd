"""The command line: one-line user errors before any work, no abbreviations, working examples (issue 16)."""

import json
import shlex
import shutil
import warnings

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


def _error_and_output(capsys, argv) -> tuple[str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err, captured.out


def _error_line(capsys, argv) -> str:
    return _error_and_output(capsys, argv)[0]


@pytest.mark.parametrize("argv, named", [
    (["--epoch", "1"], "--epoch"),  # an abbreviation of --epochs
    (["--model", "nosuchmodel"], "--model"),
    (["--threads", "99999"], "--threads"),  # more threads than cores: refused, not a MemoryError
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


def test_an_empty_out_or_a_folder_of_another_kind_is_refused_before_any_work(capsys, no_preprocessing,
                                                                            no_sweep_work, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an empty --out would write here
    for argv in (["loso"], ["sweep"], ["study", "run"], ["study", "merge", str(tmp_path)]):
        err = _error_line(capsys, [*argv, "--out", ""])
        assert "argument --out: '' is empty" in err
    assert list(tmp_path.iterdir()) == []
    kinds = {"run": "config.json", "bundle": "bundle.json", "sweep": "sweep.csv"}
    for kind, marker in kinds.items():
        (tmp_path / kind).mkdir()
        (tmp_path / kind / marker).write_text("{}")
    for argv, own in ((["loso"], "run"), (["sweep"], "sweep"), (["study", "run"], "bundle"),
                      (["study", "merge", str(tmp_path / "bundle")], "bundle")):
        for kind in kinds.keys() - {own}:
            err = _error_line(capsys, [*argv, "--out", str(tmp_path / kind)])
            assert f"holds a {kind} folder ({kinds[kind]}), not a {own} folder" in err, err
    # a sweep that has not finished has no sweep.csv yet, but its points' run folders say what it is
    (tmp_path / "halfsweep" / "convat_tiny" / "seed0-draw0").mkdir(parents=True)
    (tmp_path / "halfsweep" / "convat_tiny" / "seed0-draw0" / "config.json").write_text("{}")
    for argv in (["study", "run"], ["study", "merge", str(tmp_path / "bundle")]):
        err = _error_line(capsys, [*argv, "--out", str(tmp_path / "halfsweep")])
        assert "holds a sweep folder (runs in MODEL/seedN-drawM, sweep.csv not written yet)" in err, err
    # a run folder must be a run, new or empty: not a folder of other files (the repository root, say)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.md").write_text("x")
    err = _error_line(capsys, ["loso", "--out", str(tmp_path / "notes")])
    assert "holds other files (README.md) and no run (config.json)" in err
    assert sorted(p.name for p in (tmp_path / "notes").iterdir()) == ["README.md"]
    from convat.commands import check_folder

    (tmp_path / "finder").mkdir()
    (tmp_path / "finder" / ".DS_Store").write_text("x")  # a new folder with only hidden files is still new
    check_folder(str(tmp_path / "finder"))


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
    import pandas as pd

    for lr in ("0.005", "0.05"):
        assert main(["loso", *TINY, "--lr", lr, "--out", str(tmp_path / lr)]) == 0
    info = json.loads((tmp_path / "0.005" / "config.json").read_text())
    assert info["identity"]["training"]["lr"] == 0.005
    # the optimiser ran at it: the schedule's recorded learning rates scale with --lr (one-cycle: max_lr x shape)
    low, high = (pd.read_csv(tmp_path / lr / "curves.csv")["lr"].to_numpy() for lr in ("0.005", "0.05"))
    assert len(low) and (low > 0).all() and high == pytest.approx(10 * low, rel=1e-9)


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


def test_a_run_made_through_the_python_api_is_resumed_by_the_command(finished_run, tiny_data, tmp_path, capsys,
                                                                     monkeypatch):
    """run_loso without data= records no dataset name; the command, which does, reads the same run from it."""
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    info = json.loads((out / "config.json").read_text())
    for name in ("dataset", "profile", "data_seed"):
        del info["identity"]["data"][name]
    (out / "config.json").write_text(json.dumps(info))
    folds = {p: p.read_bytes() for p in (out / "folds").iterdir()}
    import convat.loso

    monkeypatch.setattr(convat.loso, "train_model", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    assert main(["loso", *TINY, "--out", str(out)]) == 0  # served from its finished folds, nothing trained
    assert {p: p.read_bytes() for p in (out / "folds").iterdir()} == folds
    # a name that differs is still another run
    info["identity"]["data"]["profile"] = "composite"
    (out / "config.json").write_text(json.dumps(info))
    assert "data.profile: 'composite' -> 'quick'" in _error_line(capsys, ["loso", *TINY, "--out", str(out)])


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
    """Every example line of every command's --help (each ``*EXAMPLES`` text of ``convat.commands``) parses."""
    import importlib
    import pkgutil

    import convat.commands
    from convat.cli import build_parser

    parser = build_parser()
    texts = [EXAMPLES]
    for info in pkgutil.iter_modules(convat.commands.__path__):
        module = importlib.import_module(f"convat.commands.{info.name}")
        texts += [getattr(module, name) for name in dir(module) if name.endswith("EXAMPLES")]
    joined = [text.replace("\\\n", " ") for text in texts]  # a line continued with a backslash is one command
    lines = [line for text in joined for line in text.splitlines() if line.strip().startswith("convat")]
    assert any(line.strip().startswith("convat study merge") for line in lines)
    for line in lines:
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


@pytest.fixture
def no_sweep_work(monkeypatch):
    """Fails the test if a sweep or study starts a point or a cell (every value is checked first)."""
    import convat.experiments.study
    import convat.sweep

    def refuse(*a, **k):
        raise AssertionError("work started")

    monkeypatch.setattr(convat.sweep, "run_sweep", refuse)
    monkeypatch.setattr(convat.experiments.study, "run_study", refuse)


@pytest.mark.parametrize("argv, named", [
    (["--models", "convat_tiny", "nosuchmodel"], "--models"),  # the second point: refused before the first runs
    (["--train-seeds", "0", "-1"], "--train-seeds"),
    (["--train-seeds", "0", "0"], "--train-seeds"),
    (["--data-seeds", "1", "1"], "--data-seeds"),
    (["--img-size", "0"], "--img-size"),
    (["--epochs", "0"], "--epochs"),
    (["--steps", "5", "--epochs", "2"], "--steps"),
    (["--device", "tpu"], "--device"),
    (["--jobs", "0"], "--jobs"),
    (["--gpus", "-1"], "--gpus"),
    (["--parallel-folds", "0"], "--parallel-folds"),
    (["--cluster", "bogus"], "--cluster"),
    (["--cluster", "local"], "--cluster"),  # without --backend submitit it would be ignored
    (["--gpus", "1"], "--gpus"),  # so would a Slurm array task's resources
    (["--slurm-partition", "gpu"], "--slurm-partition"),
    (["--timeout-min", "60"], "--timeout-min"),
    (["--gpus", "0"], "--gpus"),  # given at its Slurm default, it would still be ignored without submitit
    (["--timeout-min", "240"], "--timeout-min"),
    (["--profile", "huge"], "--profile"),
])
def test_sweep_checks_every_point_before_any_runs(capsys, no_sweep_work, tmp_path, argv, named):
    err = _error_line(capsys, ["sweep", *argv, "--out", str(tmp_path / "sweep")])
    assert named in err
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize("argv, named", [
    (["--models", "nosuchmodel"], "--models"),
    (["--reference", "nosuch"], "--reference"),
    (["--train-seeds", "2", "2"], "--train-seeds"),
    (["--cluster", "bogus"], "--cluster"),
    (["--cluster", "debug"], "--cluster"),
    (["--device", "tpu"], "--device"),
    (["--steps", "5", "--epochs", "2"], "--steps"),
    (["--cells", "nosuch:1"], "--cells"),
    (["--cells", "convat_tiny:9"], "--cells"),  # not one of the study's seeds
    (["--cells", "convat_tiny"], "--cells"),  # a deep cell needs its seed
])
def test_study_run_checks_its_values_before_any_cell(capsys, no_sweep_work, tmp_path, argv, named):
    err = _error_line(capsys, ["study", "run", *argv, "--out", str(tmp_path / "bundle")])
    assert named in err
    assert not (tmp_path / "bundle").exists()


def test_a_bundle_folder_that_is_a_file_is_refused(capsys, no_sweep_work, tmp_path):
    (tmp_path / "afile").write_text("x")
    for argv in (["study", "run", "--out"], ["sweep", "--out"]):
        err = _error_line(capsys, [*argv, str(tmp_path / "afile")])
        assert "--out" in err and "is a file" in err


def test_study_show_names_what_is_wrong_with_the_folder(capsys, tmp_path):
    (tmp_path / "afile").write_text("x")
    assert "is a file, not a bundle folder" in _error_line(capsys, ["study", "show", str(tmp_path / "afile")])
    err = _error_line(capsys, ["study", "show", str(tmp_path / "nothing")])
    assert "nothing: no bundle.json, so not a study bundle" in err
    err = _error_line(capsys, ["study", "show", "results/study-quick", "--reference", "nosuch", "--n-boot", "5"])
    assert "--reference" in err and "ststnet" in err  # the bundle's models are listed
    # the record itself named instead of its folder: shown
    assert main(["study", "show", "results/study-quick/bundle.json", "--n-boot", "5"]) == 0


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_text(""), "unreadable predictions"),
    (lambda p: p.write_text("".join(p.read_text().splitlines(keepends=True)[:5])), "clips, but the other cells"),
    (lambda p: p.write_text("a,b\n1,2\n"), "no column"),
    (lambda p: p.write_text(p.read_text() + p.read_text().splitlines()[1].replace(",", "x,", 2) + "\n"),
     "(0 missing, 1 not theirs)"),  # a clip of no other cell
])
def test_a_damaged_cell_is_named_before_any_number_is_shown(capsys, tmp_path, damage, message):
    bundle = tmp_path / "quick"
    shutil.copytree("results/study-quick", bundle)
    target = bundle / "cells" / "ststnet" / "seed1-draw2" / "predictions.csv"
    damage(target)
    err, out = _error_and_output(capsys, ["study", "show", str(bundle), "--n-boot", "5"])
    assert str(target) in err and message in err
    assert not out  # no table of wrong numbers before the error


@pytest.mark.parametrize("content", ["[]", "{}", '{"spec": {}}', '{"cells": {}}'])
def test_a_bundle_record_of_the_wrong_shape_is_one_line(capsys, tmp_path, content):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "bundle.json").write_text(content)
    assert "not a study record" in _error_line(capsys, ["study", "show", str(tmp_path / "b")])


def test_a_closed_pipe_ends_the_command_quietly(monkeypatch, capsys):
    import sys

    class ClosedPipe:  # what `convat synth | head -1` leaves once head has exited
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    with monkeypatch.context() as patch:
        patch.setattr(sys, "stdout", ClosedPipe())
        assert main(["synth"]) == 141
    assert "Traceback" not in capsys.readouterr().err
    # another pipe that broke (a worker's) while standard output is fine: not hidden
    import convat.commands.synth as synth

    def broken(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(synth, "_run", broken)
    with pytest.raises(BrokenPipeError):
        main(["synth"])


def test_an_unknown_fold_is_refused_before_preprocessing(capsys, tiny_data, no_preprocessing, tmp_path):
    err = _error_line(capsys, ["loso", *TINY, "--folds", "synthme/s99", "--out", str(tmp_path / "run")])
    assert "--folds" in err and "synthme/s99" in err and "not folds of this run" in err


@pytest.mark.parametrize("argv, named", [
    (["site", "figures", "--book", "{tmp}/nobook"], "--book"),
    (["site", "figures", "{tmp}/nosite"], "SITE"),
    (["site", "notebooks", "--book", "{tmp}/nobook"], "--book"),
    (["site", "notebooks", "--check", "{tmp}/nothing"], "--check"),
    (["site", "notebooks", "--out", "{tmp}/afile"], "--out"),
    (["site", "check", "--browser", "{tmp}/afile"], "--browser"),
    (["site", "check", "--screenshots", "{tmp}/afile"], "--screenshots"),
    (["cache", "info", "--cache-dir", "{tmp}/afile"], "--cache-dir"),
    (["cache", "clear", "--cache-dir", "{tmp}/afile"], "--cache-dir"),
])
def test_site_and_cache_refuse_what_is_not_there_instead_of_passing_on_nothing(capsys, tmp_path, argv, named):
    (tmp_path / "afile").write_text("x")
    err = _error_line(capsys, [a.format(tmp=tmp_path) for a in argv])
    assert f"argument {named}" in err


def test_the_synth_help_names_the_label_schemes_it_accepts(capsys):
    from convat.data.synth import LABEL_SCHEMES

    with pytest.raises(SystemExit):
        main(["synth", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    described = text.split("--label-scheme", 2)[2].split("}", 1)[1].split(" --", 1)[0]  # the option's sentence
    assert all(scheme in described for scheme in LABEL_SCHEMES), described
    assert "or five" not in text


def test_a_heading_error_shows_its_first_item_in_the_one_line():
    from convat.cli import one_line

    heading = ValueError("3 annotation errors (run `convat data check`):\n  casme2.xlsx row 4: bad\n  b\n  c")
    assert one_line(heading) == ("3 annotation errors (run `convat data check`): casme2.xlsx row 4: bad "
                                 "[2 more lines with --debug]")
    assert one_line(ValueError("plain\nsecond")) == "plain [1 more line with --debug]"
    assert one_line(ValueError("only")) == "only" and one_line(ValueError("")) == "ValueError"


def test_the_run_line_says_how_the_folds_will_actually_run():
    from convat.commands.loso import _execution
    from convat.training.loop import TrainConfig

    cpu = TrainConfig(device="cpu")
    assert _execution("sequential", cpu, 3) == "strategy sequential, 1 fold at a time"
    assert _execution("auto", cpu, 2) == "strategy pool (auto), 2 folds at a time"
    assert _execution("auto", cpu, 1) == "strategy sequential (auto), 1 fold at a time"
    assert _execution("batched", cpu, 1) == "strategy batched (all folds at once)"


def test_a_warning_reads_as_a_sentence_and_the_format_is_restored():
    import warnings

    from convat.cli import warning_line

    line = warning_line("loso")(UserWarning("fold synthme/s01 recomputed"), UserWarning, "/x/convat/folds.py", 12)
    assert line == "convat loso: warning: fold synthme/s01 recomputed\n"
    line = warning_line("loso")(FutureWarning("a change"), FutureWarning, "/x/site-packages/pandas/core.py", 7)
    assert line == "convat loso: warning from core.py:7: FutureWarning: a change\n"  # not taken for convat's
    before = warnings.formatwarning
    assert main(["synth"]) == 0
    assert warnings.formatwarning is before  # set for the command only


def test_a_cluster_run_checks_the_device_spelling_only(capsys, no_sweep_work, tmp_path):
    """With --backend submitit the deep cells run on the cluster's nodes: a CPU-only submit host may ask for cuda."""
    for argv in (["study", "run", "--out", str(tmp_path / "b")], ["sweep", "--out", str(tmp_path / "s")]):
        with pytest.raises(AssertionError, match="work started"):  # validation passed; the run would start here
            main([*argv, "--backend", "submitit", "--device", "cuda"])
        capsys.readouterr()
        assert "--device" in _error_line(capsys, [*argv, "--backend", "submitit", "--device", "gpu"])


def test_a_study_or_sweep_that_fails_before_writing_leaves_no_empty_folders(capsys, tmp_path):
    """No data under --data-root: one line naming it, and neither the output folder nor its parents are left
    behind; a folder the user made beforehand is kept (empty, as it was)."""
    missing = tmp_path / "nodata"
    err = _error_line(capsys, ["study", "run", "--quiet", "--dataset", "casme2", "--data-root", str(missing),
                               "--out", str(tmp_path / "new" / "bundle")])
    assert str(missing) in err
    assert not (tmp_path / "new").exists()
    (tmp_path / "mine").mkdir()
    _error_line(capsys, ["study", "run", "--quiet", "--dataset", "casme2", "--data-root", str(missing),
                         "--out", str(tmp_path / "mine")])
    assert (tmp_path / "mine").is_dir() and not any((tmp_path / "mine").iterdir())
    err = _error_line(capsys, ["sweep", "--quiet", "--dataset", "casme2", "--data-root", str(missing),
                               "--out", str(tmp_path / "new" / "sweep")])
    assert str(missing) in err and not (tmp_path / "new").exists()


def test_a_value_that_starts_with_a_dash_is_explained(capsys):
    """argparse reads -5G as an option: the one line says so and how to write it; a missing value gets no hint."""
    err = _error_line(capsys, ["cache", "clear", "--max-size", "-5G"])
    assert "--max-size" in err and "write --max-size=-5G" in err
    err = _error_line(capsys, ["cache", "clear", "--max-size=-5G"])
    assert "'-5G'" in err and "non-negative" in err
    err = _error_line(capsys, ["loso", "--epochs"])
    assert "--epochs: expected one argument" in err and "write" not in err


@pytest.mark.parametrize("argv, command", [
    (["loso", "--epoch", "1"], "convat loso"),
    (["study", "run", "--train-seed", "0"], "convat study run"),
    (["sweep", "--model", "ststnet", "--out", "x"], "convat sweep"),
])
def test_an_unknown_flag_points_to_its_subcommands_help(capsys, argv, command):
    err = _error_line(capsys, argv)
    assert err.startswith(f"{command}: error: unrecognized arguments: ")
    assert err.endswith(f"(see {command} --help)")


def test_a_data_root_given_with_synthme_is_said_to_be_unused(tiny_data, tmp_path, capsys):
    from convat.commands import check_data_root

    with pytest.warns(UserWarning, match="--data-root /data/megc is not read: synthme is generated"):
        check_data_root("synthme", "/data/megc")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_data_root("casme2", "/data/megc")  # read from it: nothing to say
        check_data_root("synthme", None)
    with pytest.warns(UserWarning, match="--data-root /data/megc is not read"):  # the command says so too
        assert main(["loso", *TINY, "--data-root", "/data/megc", "--out", str(tmp_path / "run")]) == 0


def test_a_split_task_finishes_the_run_or_says_why_it_could_not(tiny_data, tmp_path, monkeypatch, capsys):
    """``convat loso --task-index``: the task that completes the run prints the scores; a task whose final look
    at the folder is blocked by another task's lock says its folds are saved and how to write the results."""
    import functools
    import hashlib

    import convat.commands.loso as loso_command

    out = tmp_path / "split"
    monkeypatch.setattr(loso_command, "settle_split_run",
                        functools.partial(loso_command.settle_split_run, attempts=2, wait_s=0.0))
    look = out / (".lock-task-" + hashlib.sha256(b"").hexdigest()[:8])
    out.mkdir()
    look.write_text("12345 another-node\n")  # a task on another machine is looking (or was killed there)
    assert main(["loso", *TINY, "--out", str(out), "--task-index", "0", "--num-tasks", "2"]) == 0
    said = capsys.readouterr().out
    assert "this task's folds are saved" in said and str(look) in said and "2 of 4 folds present" in said
    look.unlink()
    assert main(["loso", *TINY, "--out", str(out), "--task-index", "1", "--num-tasks", "2"]) == 0
    said = capsys.readouterr().out
    assert "UF1" in said and (out / "metrics.csv").exists()
