"""Content-keyed caches: damaged entries, a code change, `convat cache` (issue 16)."""

import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

import convat.preprocess.pipeline as pipeline
from convat import runstore
from convat.cli import main
from convat.data.synth import generate
from convat.preprocess.cache import TensorCache
from convat.preprocess.pipeline import PreprocessConfig, preprocess

CONFIG = PreprocessConfig(flow="dis", size=16)


@pytest.fixture(scope="module")
def clips():
    return generate("quick", n_subjects=2, clips_per_subject=2)


def _counting(monkeypatch):
    calls, original = [], pipeline.motion_sample
    monkeypatch.setattr(pipeline, "motion_sample", lambda r, c: calls.append(r.key) or original(r, c))
    return calls


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_a_bit(path):
    """One bit of the stored tensor flipped inside an uncompressed .npz: still a valid zip, wrong content."""
    blob = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("x.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 128 + 5  # past the .npy header
    blob[start] ^= 0x01
    path.write_bytes(bytes(blob))


def _zeroed(path):
    """A perfectly valid entry (checksum array kept) whose tensor was replaced by zeros."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["x"] = np.zeros_like(arrays["x"])
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def _empty(path):
    path.write_bytes(b"")


@pytest.mark.parametrize("damage", [_truncate, _flip_a_bit, _zeroed, _empty])
def test_a_damaged_entry_is_named_moved_aside_and_recomputed(clips, tmp_path, monkeypatch, damage):
    cache = TensorCache(tmp_path)
    x, _ = preprocess(clips, CONFIG, cache=cache, progress=False)
    entries = sorted(tmp_path.rglob("*.npz"), key=lambda p: p.stat().st_mtime)
    victim = entries[0]
    damage(victim)
    calls = _counting(monkeypatch)
    with pytest.warns(UserWarning, match=victim.name):
        again, _ = preprocess(clips, CONFIG, cache=cache, progress=False)
    assert len(calls) == 1
    np.testing.assert_array_equal(again, x)
    assert victim.exists() and victim.with_name(victim.name + ".bad").exists()
    calls.clear()
    preprocess(clips, CONFIG, cache=cache, progress=False)  # repaired: no warning, nothing recomputed
    assert calls == []


def test_an_edit_of_the_preprocessing_code_recomputes(clips, tmp_path, monkeypatch):
    cache = TensorCache(tmp_path / "cache")
    preprocess(clips, CONFIG, cache=cache, progress=False)
    package = tmp_path / "convat"
    shutil.copytree(runstore.PACKAGE_ROOT, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(runstore, "PACKAGE_ROOT", package)
    calls = _counting(monkeypatch)
    preprocess(clips, CONFIG, cache=cache, progress=False)
    assert calls == []  # same code, same entries
    with open(package / "preprocess" / "strain.py", "a") as f:
        f.write("\n# an edit of the strain code\n")
    _, table = preprocess(clips, CONFIG, cache=cache, progress=False)
    assert len(calls) == len(clips)
    assert "version" not in table.attrs["preprocess"] and len(table.attrs["preprocess"]["code"]) == 16


def test_cache_info_and_clear(clips, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CONVAT_CACHE", str(tmp_path))
    preprocess(clips, CONFIG, progress=False)
    (tmp_path / "runs" / "convat_tiny-abc").mkdir(parents=True)
    (tmp_path / "runs" / "convat_tiny-abc" / "predictions.csv").write_text("x" * 1000)
    locked = tmp_path / "runs" / "convat_tiny-live"
    locked.mkdir()
    (locked / ".lock").write_text(f"{os.getpid()} {socket.gethostname()}\n")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    # a run another machine is writing (a shared cache): its pid means nothing here, so it is kept
    elsewhere = tmp_path / "runs" / "convat_tiny-elsewhere"
    elsewhere.mkdir()
    (elsewhere / ".lock-task-1").write_text(f"{dead.pid} another-node\n")
    abandoned = tmp_path / "runs" / "convat_tiny-abandoned"  # this machine's dead process: not in use
    abandoned.mkdir()
    (abandoned / ".lock").write_text(f"{dead.pid} {socket.gethostname()}\n")
    # another machine's lock, or one that cannot be read, in a folder unchanged for over a day: abandoned too
    stale = []
    for name, text in (("gone-node", f"{dead.pid} a-node-long-gone\n"), ("garbled", "not a lock")):
        folder = tmp_path / "runs" / f"convat_tiny-{name}"
        folder.mkdir()
        (folder / ".lock").write_text(text)
        old = time.time() - runstore.FOREIGN_STALE_S - 3600
        for path in (folder / ".lock", folder):
            os.utime(path, (old, old))
        stale.append(folder)
    (tmp_path / "notes.txt").write_text("not ours")
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert "tensor" in out and "run" in out
    info = runstore.cache_info(tmp_path)
    assert info["tensor"][0] == len(clips) and info["run"][0] == 6
    assert main(["cache", "clear", "--max-size", "1G"]) == 0  # under the cap: nothing to do
    assert runstore.cache_info(tmp_path)["tensor"][0] == len(clips)
    capsys.readouterr()
    assert main(["cache", "clear"]) == 0
    said = capsys.readouterr().out
    assert "kept 2 in use" in said and "convat_tiny-elsewhere" in said and "convat_tiny-live" in said
    left = runstore.cache_info(tmp_path)
    assert set(left) == {"run"} and left["run"][0] == 2 and not abandoned.exists()
    assert not any(folder.exists() for folder in stale)
    assert locked.exists() and elsewhere.exists() and (tmp_path / "notes.txt").exists()  # in use / not ours: kept


def test_clear_to_a_size_removes_the_least_recently_used(tmp_path):
    cache = TensorCache(tmp_path)
    for i, key in enumerate(("aa" * 16, "bb" * 16, "cc" * 16)):
        cache.put(key, {"x": np.full(1000, i, np.float64)})
        os.utime(cache.path(key), (1000 + i, 1000 + i))
    cache.get("aa" * 16)  # used now: the most recent
    size = cache.path("aa" * 16).stat().st_size
    removed, _ = runstore.clear_cache(tmp_path, max_size=size)
    assert removed == 2 and cache.path("aa" * 16).exists()
    with pytest.raises(SystemExit):
        main(["cache", "clear", "--cache-dir", str(tmp_path), "--max-size", "lots"])


def test_stray_cache_tmp_files_of_dead_processes_are_cleared(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "ab").mkdir()
    stray = tmp_path / "ab" / f"abab.xyz.{dead.pid}.tmp"
    stray.write_bytes(b"half")
    assert runstore.cache_info(tmp_path)["tmp"][0] == 1
    runstore.clear_cache(tmp_path)
    assert not stray.exists()


def test_damaged_explanation_weights_are_named_and_retrained(tmp_path):
    from convat.explain import fold_model
    from convat.training.loop import TrainConfig

    x, table = preprocess(generate("quick", n_subjects=3, clips_per_subject=4), CONFIG,
                          cache=TensorCache(tmp_path / "tensors"), progress=False)
    config = TrainConfig(epochs=1, batch_size=8)
    fold = "synthme/" + sorted(table.subject.unique())[0]
    first = fold_model(x, table, fold, config, cache_dir=tmp_path / "weights")
    (path,) = (tmp_path / "weights").glob("*.pt")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(UserWarning, match=path.name):
        again = fold_model(x, table, fold, config, cache_dir=tmp_path / "weights")
    np.testing.assert_array_equal(first.predict(), again.predict())
    assert path.exists() and path.with_name(path.name + ".bad").exists()
