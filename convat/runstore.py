"""Shared services for results on disk: the cache root, the code fingerprint and the run folder (``RunStore``).

A leaf module: it imports no stage of the package (only the standard library, NumPy, pandas and
:mod:`convat.runtime`, itself a leaf), so every stage and experiment can use it.

* :func:`default_cache_dir` finds ``$CONVAT_CACHE`` (an empty value is an error, never the current folder).
* :func:`code_fingerprint` hashes the sources that decide results (data, preprocessing, models, training, the
  fold engine, metrics) and nothing else, so editing a plot, the site or a command does not retrain, while any
  edit of a result-deciding module starts a new run.
* :class:`RunStore` owns a run folder: its identity (``config.json``: everything that decides the predictions),
  a lock naming the process that holds it, checked fold files, atomic writes and the final results.

Atomic writes go to ``<name>.<pid>-<machine>.tmp`` in the same folder and are renamed into place with
:func:`os.replace`, so a reader sees the old file or the new one, never half of one; a temporary file left by a
killed process is removed by the next run that opens the folder (another machine's, on a shared file system,
once it is a day old).
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import socket
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from convat import runtime

PACKAGE_ROOT = Path(__file__).resolve().parent

#: The parts of the package whose code decides results (paths relative to ``convat/``; folders recursively).
RESULT_SOURCES: tuple[str, ...] = ("data", "preprocess", "models", "training", "folds.py", "loso.py", "metrics.py")
#: The file that marks a run folder copied from a committed result bundle (which bundle, cell, commit and date),
#: so the page can say where its numbers came from.
SERVED_FROM = "served_from.json"
#: The fields of a fold manifest that say when and at what CPU cost it was written: informational, never checked,
#: and different on every run by design.
MANIFEST_TIME_FIELDS: tuple[str, ...] = ("written_at", "session_opened_at", "cpu_at", "session_opened_cpu")
#: Every informational field of a fold manifest: its times, and the CPU model that trained it and its kernels
#: (absent in folds written before manifests recorded them).
MANIFEST_INFO_FIELDS: tuple[str, ...] = (*MANIFEST_TIME_FIELDS, "cpu", "cpu_kernels")
#: The parts that decide a preprocessed tensor (its cache key): the pipeline, and the frames it reads
#: (SynthME's generator and the readers' frame loading).
PREPROCESS_SOURCES: tuple[str, ...] = ("preprocess", "data/synth", "data/records.py")


class RunStoreError(ValueError):
    """A run folder that cannot be used as asked (another run's identity, an unreadable file, a lock)."""


class RunLockedError(RunStoreError):
    """Another live process holds the run folder."""


def default_cache_dir() -> Path:
    """``$CONVAT_CACHE`` if set, else ``~/.cache/convat``; an empty ``$CONVAT_CACHE`` is an error."""
    value = os.environ.get("CONVAT_CACHE")
    if value is None:
        return Path.home() / ".cache" / "convat"
    if not value.strip():
        raise RunStoreError("CONVAT_CACHE is set but empty; unset it (default ~/.cache/convat) or give a folder")
    return Path(value).expanduser()


def _is_result_source(path: Path) -> bool:
    """Whether ``path`` (relative to the package) takes part in the fingerprint. Modules that only present results
    are left out, so redrawing a figure or rewording a sentence never makes a result stale: plots (a stem with
    ``plots``) draw results, ``describe`` modules word them. So is every ``__pycache__``."""
    return "plots" not in path.stem and path.stem != "describe" and "__pycache__" not in path.parts


def code_fingerprint(parts: Iterable[str] = RESULT_SOURCES) -> str:
    """SHA-256 (first 16 hex digits) of the ``.py`` sources under ``parts`` of the package.

    The default covers the modules that decide results; :data:`PREPROCESS_SOURCES` those that decide a cached
    tensor. File names take part, so a moved module changes the fingerprint too.
    """
    files: set[Path] = set()
    for part in parts:
        path = PACKAGE_ROOT / part
        if path.is_dir():
            files.update(p for p in path.rglob("*.py") if _is_result_source(p.relative_to(PACKAGE_ROOT)))
        elif path.exists():
            files.add(path)
        else:
            raise FileNotFoundError(f"code_fingerprint: {path} does not exist")
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.relative_to(PACKAGE_ROOT).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def array_digest(x: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes."""
    x = np.ascontiguousarray(x)
    digest = hashlib.sha256(f"{x.dtype.str}{x.shape}".encode())
    digest.update(x.tobytes())
    return digest.hexdigest()


def json_digest(value: object) -> str:
    """SHA-256 of a JSON-serialisable value (keys sorted)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


#: This machine in the names of temporary files: a run folder on a shared file system is written by the tasks of a
#: split run on several machines, and another machine's process id says nothing here.
HOST_TAG = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
#: A temporary file of another machine older than this is a leftover (a write in flight takes seconds), and so is
#: a run folder locked by another machine (or by a lock that cannot be read) in which nothing changed for as long:
#: a live run writes a fold every few minutes, and machines come and go with their names.
FOREIGN_STALE_S = 24 * 3600


def tmp_name(path: Path) -> Path:
    """The temporary name this process writes ``path`` under before renaming it into place:
    ``<name>.<pid>-<machine>.tmp`` (:func:`tmp_writer` reads it back)."""
    return path.with_name(f"{path.name}.{os.getpid()}-{HOST_TAG}.tmp")


def tmp_writer(path: Path) -> tuple[int, str | None] | None:
    """The process id and machine tag of a temporary file's writer, read from its name ``<name>.<pid>.tmp`` or
    ``<name>.<pid>-<machine>.tmp`` (machine None in the first form: written on this machine); None for another
    name."""
    parts = path.name.rsplit(".", 2)
    if len(parts) != 3 or parts[2] != "tmp":
        return None
    pid, _, host = parts[1].partition("-")
    return (int(pid), host or None) if pid.isdigit() else None


def tmp_in_use(path: Path) -> bool:
    """Whether a temporary file may still be being written: its writer still runs on this machine, or it was
    written on another machine sharing the folder less than :data:`FOREIGN_STALE_S` ago (whether that process
    runs cannot be seen from here)."""
    writer = tmp_writer(path)
    if writer is None:
        return False
    pid, host = writer
    if host is not None and host != HOST_TAG:
        try:
            return time.time() - path.stat().st_mtime < FOREIGN_STALE_S
        except OSError:
            return False
    return pid_alive(pid)


def remove_empty_folders(root: Path, remove_root: bool = False) -> None:
    """Remove the folders under ``root`` that hold no file (deepest first), and ``root`` itself when
    ``remove_root`` and it is empty too. Files are never touched: this only tidies what a failed run created."""
    root = Path(root)
    if not root.is_dir():
        return
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    if remove_root and not any(root.iterdir()):
        root.rmdir()


@contextmanager
def output_folder(folder: str | Path) -> Iterator[Path]:
    """Create ``folder`` (with its parents) for the block; if the block raises (no data, a bad value, Ctrl-C)
    and the folder held nothing before, remove the empty folders it leaves, the parents this made included, so
    a failed command leaves no empty run folder behind. A folder that held something is left as it is."""
    folder = Path(folder)
    top = folder  # the outermost folder made here (folder itself when it exists)
    while not top.parent.exists():
        top = top.parent
    existed = folder.exists()
    fresh = not existed or (folder.is_dir() and not any(folder.iterdir()))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    except BaseException:
        if fresh:
            remove_empty_folders(top, remove_root=not existed)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and :func:`os.replace` (all or nothing)."""
    tmp = tmp_name(path)
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """The CSV text of ``frame`` (no index) as bytes: what is written and what the checksum covers."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def _flatten(value: object, prefix: str = "") -> dict[str, object]:
    if isinstance(value, Mapping):
        out: dict[str, object] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out or {prefix: {}}
    return {prefix: value}


def _short(value: object, limit: int = 40) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: Identity fields that only *name* the data (``convat loso`` records them; a run made through the Python API,
#: :func:`convat.loso.run_loso` without ``data=``, does not). The clip list and the input tensors' digest pin the
#: data exactly, so one side lacking a name is no difference; two different names still are.
DATA_NAMES: tuple[str, ...] = ("data.dataset", "data.profile", "data.data_seed")


def identity_differences(old: Mapping, new: Mapping, partial: bool = False) -> list[str]:
    """The dotted fields in which two identities differ, each as ``field: old -> new``.

    With ``partial``, only the fields of ``new`` are compared (a check before all of the identity is known).
    A :data:`DATA_NAMES` field recorded by one side only is not a difference.
    """
    a, b = _flatten(json.loads(json.dumps(old, default=str))), _flatten(json.loads(json.dumps(new, default=str)))
    missing = "(absent)"
    keys = set(b) if partial else set(a) | set(b)
    keys -= {key for key in DATA_NAMES if (key in a) != (key in b)}
    return [f"{key}: {_short(a.get(key, missing))} -> {_short(b.get(key, missing))}"
            for key in sorted(keys) if a.get(key, missing) != b.get(key, missing)]


def find_run(identity: Mapping, roots: Iterable[str | Path]) -> Path | None:
    """The first run folder under ``roots`` whose ``config.json`` records exactly ``identity``, or ``None``.

    Used to serve a run from a committed result bundle instead of recomputing it: a folder qualifies only when
    every field of its identity (inputs, labels, folds, configuration, code fingerprint) equals ``identity``,
    so a bundle made by other code or on other data is never picked. Missing roots and unreadable
    ``config.json`` files are skipped (they identify nothing).
    """
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        for config in sorted(root.rglob("config.json")):
            try:
                info = json.loads(config.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue
            old = info.get("identity") if isinstance(info, dict) else None
            if isinstance(old, Mapping) and not identity_differences(old, identity):
                return config.parent
    return None


def fold_filename(fold: str) -> str:
    """A fold name as a file stem (``dataset/subject`` -> ``dataset__subject``)."""
    return fold.replace("/", "__")


class RunStore:
    """One run folder: identity, lock, checked fold files and the final results.

    Layout: ``config.json`` (``identity`` = everything that decides the predictions, plus informational
    ``environment`` and extras), ``folds/<fold>.csv`` (predictions), ``curves/<fold>.csv`` (training curve),
    ``folds/<fold>.json`` (the fold's manifest: fold name, clip list digest, row count, SHA-256 of both CSV
    files, when, and at what process-tree CPU reading, the fold was written and its session opened the folder,
    and the CPU model and kernels that trained it (:data:`MANIFEST_INFO_FIELDS`); written last, so it marks a finished
    fold), ``predictions.csv``,
    ``curves.csv``, ``metrics.csv``.

    Use::

        store = RunStore(out)
        with store.open(identity, info):          # refuses another run's folder, before any work; locks it
            done = store.valid_folds(expected)    # {fold: predictions} of the folds finished and intact
            for fold in missing:
                store.write_fold(fold, predictions, curve, expected[fold])
            store.finalise(list(expected), metrics=...)

    ``expected`` maps each fold to its sorted list of clip ids (see :meth:`clip_ids`). Several processes may
    write disjoint folds of one run at once when each opens the store with its own ``lock_tag``.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config_path = self.path / "config.json"
        self._lock_path: Path | None = None
        self._opened_at: float | None = None
        self._opened_cpu: float | None = None

    # -- files --------------------------------------------------------------------------------------------
    def fold_path(self, fold: str) -> Path:
        return self.path / "folds" / f"{fold_filename(fold)}.csv"

    def curve_path(self, fold: str) -> Path:
        return self.path / "curves" / f"{fold_filename(fold)}.csv"

    def manifest_path(self, fold: str) -> Path:
        return self.path / "folds" / f"{fold_filename(fold)}.json"

    def has_folds(self) -> bool:
        folder = self.path / "folds"
        return folder.is_dir() and any(p.suffix in (".csv", ".json") for p in folder.iterdir())

    # -- identity -----------------------------------------------------------------------------------------
    def read_config(self) -> dict | None:
        """The folder's ``config.json``, ``None`` when absent; an unreadable file is an error naming it."""
        if not self.config_path.exists():
            return None
        try:
            info = json.loads(self.config_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RunStoreError(f"{self.config_path}: unreadable ({exc}); it identifies the run in "
                                f"{self.path}: delete the folder or use a new one") from None
        if not isinstance(info, dict):
            raise RunStoreError(f"{self.config_path}: not a run description (a JSON object expected)")
        return info

    def check_identity(self, identity: Mapping, partial: bool = False) -> dict | None:
        """Refuse a folder that holds another run (naming the differing fields); return the stored config.

        A missing ``config.json`` beside existing fold files is an error too: those folds cannot be told apart
        from another run's. ``partial=True`` compares only the fields given (e.g. before preprocessing, when
        the input digest is not known yet).
        """
        info = self.read_config()
        if info is None:
            if self.has_folds():
                raise RunStoreError(f"{self.config_path} is missing but {self.path / 'folds'} holds fold files: "
                                    "they cannot be matched to this run; delete the folder or use a new one")
            return None
        old = info.get("identity")
        if old is None:
            raise RunStoreError(f"{self.config_path} was written by an older convat (no run identity); "
                                "delete the folder or use a new one")
        differences = identity_differences(old, identity, partial)
        if differences:
            raise RunStoreError(f"{self.path} holds another run; differing fields: {'; '.join(differences)}. "
                                "Use a new folder (or delete this one)")
        return info

    def open(self, identity: Mapping, info: Mapping | None = None, lock_tag: str = "") -> RunStore:
        """Check the identity, take the lock, clean stray temporary files, then write ``config.json``.

        Nothing is written when the identity is refused or the folder is locked. ``config.json`` is only
        (re)written when absent, so resuming keeps the original record. Use as a context manager (or call
        :meth:`close`) to release the lock.
        """
        self.check_identity(identity)
        self.path.mkdir(parents=True, exist_ok=True)
        self.acquire(lock_tag)
        self._opened_at = time.time()
        self._opened_cpu = runtime.process_tree_cpu_s()
        try:
            self.check_identity(identity)  # again under the lock: another process may have started meanwhile
            self.clean_tmp()
            (self.path / "folds").mkdir(exist_ok=True)
            (self.path / "curves").mkdir(exist_ok=True)
            if not self.config_path.exists():
                record = {"identity": json.loads(json.dumps(identity, default=str)), **(info or {})}
                atomic_write_text(self.config_path, json.dumps(record, indent=2, default=str))
        except BaseException:
            self.close()
            raise
        return self

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- lock ---------------------------------------------------------------------------------------------
    def acquire(self, tag: str = "") -> None:
        """Create ``.lock`` (or ``.lock-<tag>``) naming this process; a lock of a dead process is taken over."""
        path = self.path / (f".lock-{tag}" if tag else ".lock")
        me = f"{os.getpid()} {socket.gethostname()}\n"
        for _ in range(3):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder(path)
                if holder is not None and holder[1] == socket.gethostname() and not pid_alive(holder[0]):
                    warnings.warn(f"{path}: taking over the lock of process {holder[0]}, which no longer runs",
                                  stacklevel=3)
                    path.unlink(missing_ok=True)
                    continue
                who = f"process {holder[0]} on {holder[1]}" if holder else "an unknown process"
                raise RunLockedError(f"{self.path} is in use by {who} (lock file {path}); wait for it to end, "
                                     "or delete the lock file if that process is gone") from None
            with os.fdopen(fd, "w") as handle:
                handle.write(me)
            self._lock_path = path
            return
        raise RunLockedError(f"{path}: could not take the lock")

    @staticmethod
    def _holder(path: Path) -> tuple[int, str] | None:
        try:
            pid, host = path.read_text().split()
            return int(pid), host
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        """Release the lock (if this store holds one)."""
        if self._lock_path is not None:
            holder = self._holder(self._lock_path)
            if holder is not None and holder[0] == os.getpid():
                self._lock_path.unlink(missing_ok=True)
            self._lock_path = None

    def clean_tmp(self) -> list[Path]:
        """Remove temporary files left by processes that no longer run (:func:`tmp_in_use`; another machine's
        only once they are old) and this process's own; return them."""
        removed = []
        for tmp in self.path.rglob("*.tmp"):
            writer = tmp_writer(tmp)
            own = writer is not None and writer[0] == os.getpid() and writer[1] in (None, HOST_TAG)
            if own or not tmp_in_use(tmp):
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
        return removed

    # -- folds --------------------------------------------------------------------------------------------
    @staticmethod
    def clip_ids(table: pd.DataFrame, mask: np.ndarray | None = None) -> list[str]:
        """Sorted ``dataset/subject/clip`` ids of the rows of ``table`` selected by ``mask``."""
        rows = table if mask is None else table.loc[np.asarray(mask, dtype=bool)]
        return sorted((rows["dataset"].astype(str) + "/" + rows["subject"].astype(str) + "/"
                       + rows["clip"].astype(str)).tolist())

    def write_fold(self, fold: str, predictions: pd.DataFrame, curve: pd.DataFrame | None,
                   clips: list[str]) -> None:
        """Write a finished fold: curve, predictions, then the manifest that vouches for both."""
        curve_blob = csv_bytes(curve) if curve is not None else None
        pred_blob = csv_bytes(predictions)
        if curve_blob is not None:
            atomic_write_bytes(self.curve_path(fold), curve_blob)
        atomic_write_bytes(self.fold_path(fold), pred_blob)
        manifest = {
            "fold": fold, "rows": len(predictions), "clips": json_digest(clips),
            "sha256": hashlib.sha256(pred_blob).hexdigest(),
            "curve_sha256": hashlib.sha256(curve_blob).hexdigest() if curve_blob is not None else None,
            # informational (never checked): the wall and CPU time a run took over its sessions, see
            # :meth:`session_wall_s` and :meth:`session_cpu_s` (CPU: this process and its fold workers)
            "written_at": round(time.time(), 3),
            "session_opened_at": None if self._opened_at is None else round(self._opened_at, 3),
            "cpu_at": runtime.process_tree_cpu_s(),
            "session_opened_cpu": self._opened_cpu,
            # informational too: the CPU that trained the fold (its float kernels move the last bits, and over
            # thousands of steps a few predictions; see :func:`convat.runtime.cpu_model`), and what picked its
            # kernels (:func:`convat.runtime.cpu_kernels`: one name can cover CPUs with other instruction sets)
            **runtime.cpu_record(),
        }
        atomic_write_text(self.manifest_path(fold), json.dumps(manifest, indent=1))

    def read_fold(self, fold: str, clips: list[str]) -> pd.DataFrame:
        """A finished fold's predictions, checked; raise :class:`RunStoreError` naming the file and the fault.

        Checks: the manifest names this fold and this clip list; the predictions file has the checksum the
        manifest records (so a truncated, edited or copied file fails); its rows are exactly this fold's clips,
        once each, with this fold's name; its probabilities are finite and sum to one; the curve file matches.
        """
        path, manifest_path = self.fold_path(fold), self.manifest_path(fold)
        try:
            manifest = json.loads(manifest_path.read_text())
        except FileNotFoundError:
            raise RunStoreError(f"{path}: no manifest {manifest_path.name} (the fold never finished)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RunStoreError(f"{manifest_path}: unreadable ({exc})") from None
        if not isinstance(manifest, dict):
            raise RunStoreError(f"{manifest_path}: not a fold manifest")
        if manifest.get("fold") != fold:
            raise RunStoreError(f"{manifest_path}: belongs to fold {manifest.get('fold')!r}, not {fold!r}")
        if manifest.get("clips") != json_digest(clips):
            raise RunStoreError(f"{manifest_path}: written for another clip list than fold {fold!r} has now")
        try:
            blob = path.read_bytes()
        except OSError as exc:
            raise RunStoreError(f"{path}: unreadable ({exc})") from None
        if hashlib.sha256(blob).hexdigest() != manifest.get("sha256"):
            raise RunStoreError(f"{path}: checksum differs from {manifest_path.name} (truncated, edited or copied)")
        try:
            frame = pd.read_csv(io.BytesIO(blob), dtype={"subject": str, "clip": str})
        except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise RunStoreError(f"{path}: not a predictions table ({exc})") from None
        needed = {"dataset", "subject", "clip", "label", "prediction", "fold"}
        if not needed <= set(frame.columns):
            raise RunStoreError(f"{path}: missing columns {sorted(needed - set(frame.columns))}")
        if self.clip_ids(frame) != clips:
            raise RunStoreError(f"{path}: its rows are not exactly the clips of fold {fold!r} "
                                f"({len(frame)} rows for {len(clips)} clips)")
        if (frame["fold"].astype(str) != fold).any():
            raise RunStoreError(f"{path}: rows of another fold than {fold!r}")
        proba = frame[[c for c in frame.columns if c.startswith("p_")]].to_numpy(dtype=np.float64)
        if proba.size == 0 or not np.isfinite(proba).all() or not np.allclose(proba.sum(1), 1.0, atol=1e-4):
            raise RunStoreError(f"{path}: probabilities missing, not finite or not summing to one")
        curve_sha = manifest.get("curve_sha256")
        if curve_sha is not None:
            try:
                curve_blob = self.curve_path(fold).read_bytes()
            except OSError as exc:
                raise RunStoreError(f"{self.curve_path(fold)}: unreadable ({exc})") from None
            if hashlib.sha256(curve_blob).hexdigest() != curve_sha:
                raise RunStoreError(f"{self.curve_path(fold)}: checksum differs from {manifest_path.name}")
        return frame

    def session_wall_s(self) -> tuple[float, int]:
        """``(seconds, untimed folds)``: the wall time this run took to write its folds, summed over the sessions
        that wrote them (for each session, a time the folder was opened, from its opening to its last fold
        written; work in flight when a session was killed is not counted: it was lost, not part of the result),
        and how many finished folds do not record their times (written before manifests did, or unreadable),
        whose time is therefore missing from the sum."""
        return self._session_spans("session_opened_at", "written_at")

    def session_cpu_s(self) -> tuple[float, int]:
        """``(CPU seconds, untimed folds)`` as :meth:`session_wall_s`, for the CPU time of the process that wrote
        the folds and its fold workers (:func:`convat.runtime.process_tree_cpu_s`): a parent that hands folds
        to workers spends almost none itself. Folds written before manifests recorded it, or where ``/proc``
        could not tell, are the untimed ones."""
        return self._session_spans("session_opened_cpu", "cpu_at")

    def fold_cpus(self) -> dict[str, str | None]:
        """``fold -> CPU`` that trained each finished fold (:func:`convat.runtime.cpu_identity`: its model name
        and, where recorded, its kernels), from the manifests; None where a manifest predates the record or
        cannot be read. Informational: another CPU's float kernels move a few predictions of a long training."""
        out: dict[str, str | None] = {}
        manifests = sorted((self.path / "folds").glob("*.json")) if (self.path / "folds").is_dir() else []
        for path in manifests:
            try:
                manifest = json.loads(path.read_text())
                out[str(manifest["fold"])] = runtime.recorded_cpu(manifest)
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return out

    def _session_spans(self, opened_field: str, field: str) -> tuple[float, int]:
        spans: dict[float, tuple[float, float]] = {}  # session (when it opened) -> (reading at open, last reading)
        untimed = 0
        manifests = sorted((self.path / "folds").glob("*.json")) if (self.path / "folds").is_dir() else []
        for path in manifests:
            try:
                manifest = json.loads(path.read_text())
                session = float(manifest["session_opened_at"])
                start, value = float(manifest[opened_field]), float(manifest[field])
            except (OSError, ValueError, KeyError, TypeError):
                untimed += 1
                continue
            spans[session] = (start, max(spans.get(session, (start, start))[1], value))
        return round(sum(last - start for start, last in spans.values()), 2), untimed

    def discard_fold(self, fold: str) -> None:
        """Move a fold's files aside (``*.bad``) so that it is recomputed and the evidence kept."""
        for path in (self.manifest_path(fold), self.fold_path(fold), self.curve_path(fold)):
            if path.exists():
                os.replace(path, path.with_name(path.name + ".bad"))

    def valid_folds(self, expected: Mapping[str, list[str]]) -> dict[str, pd.DataFrame]:
        """The predictions of every fold of ``expected`` that is finished and intact.

        A fold without a manifest never finished and is left to be recomputed. A fold whose files fail a check
        is named in a warning, moved aside (``*.bad``) and left to be recomputed; a fold file of no expected fold
        (e.g. from a deleted subject) is named in a warning and ignored.
        """
        done: dict[str, pd.DataFrame] = {}
        for fold, clips in expected.items():
            if not self.manifest_path(fold).exists():
                continue  # never finished (the manifest is written last): trained again, its partial files replaced
            try:
                done[fold] = self.read_fold(fold, clips)
            except RunStoreError as exc:
                warnings.warn(f"{exc}; fold {fold!r} is recomputed", stacklevel=2)
                self.discard_fold(fold)
        known = {self.fold_path(f).name for f in expected}
        stray = sorted(p.name for p in (self.path / "folds").glob("*.csv") if p.name not in known)
        if stray:
            warnings.warn(f"{self.path / 'folds'}: files of no fold of this run ignored: {', '.join(stray)}",
                          stacklevel=2)
        return done

    def read_curves(self, folds: list[str]) -> pd.DataFrame | None:
        """The curves of ``folds`` (those present) as one table; an unreadable file is an error naming it."""
        parts = []
        for fold in folds:
            path = self.curve_path(fold)
            if not path.exists():
                continue
            try:
                parts.append(pd.read_csv(path, dtype={"subject": str, "clip": str}))
            except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
                raise RunStoreError(f"{path}: not a training curve ({exc})") from None
        return pd.concat(parts, ignore_index=True) if parts else None

    def finalise(self, folds: list[str], done: Mapping[str, pd.DataFrame]) -> pd.DataFrame | None:
        """When every fold is done, write ``predictions.csv`` and ``curves.csv`` (then call :meth:`write_metrics`).

        Returns the pooled predictions in fold order, or ``None`` (nothing written) while folds are missing
        (another task of the same run may still be writing them).
        """
        if any(f not in done for f in folds):
            return None
        predictions = pd.concat([done[f] for f in folds], ignore_index=True)
        atomic_write_bytes(self.path / "predictions.csv", csv_bytes(predictions))
        curves = self.read_curves(folds)
        if curves is not None:
            atomic_write_bytes(self.path / "curves.csv", csv_bytes(curves))
        return predictions

    def write_metrics(self, metrics: pd.DataFrame) -> None:
        """``metrics.csv`` (with its index), atomically."""
        buffer = io.StringIO()
        metrics.to_csv(buffer)
        atomic_write_text(self.path / "metrics.csv", buffer.getvalue())



# -- merging run folders (the same run, written on several machines) ---------------------------------------
#: The files of a finished run, written by :meth:`RunStore.finalise` and :meth:`RunStore.write_metrics`.
FINISHED_FILES: tuple[str, ...] = ("predictions.csv", "curves.csv", "metrics.csv")


@dataclass
class MergeCount:
    """What :func:`merge_run` did: folds copied, folds both folders had alike, folds whose files differ (the
    destination's kept), folds of the source that failed their checksums (not copied), and whether the
    finished run's files were copied."""

    copied: int = 0
    present: int = 0
    differ: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)
    finished: bool = False


def _intact_fold(store: RunStore, manifest_path: Path) -> tuple[dict, Path, Path | None] | None:
    """A fold's manifest, predictions file and curve file (or None) in ``store``, when the checksums in the
    manifest match both files; None for an unreadable or damaged fold (a fold being written has no manifest yet).
    """
    try:
        manifest = json.loads(manifest_path.read_text())
        fold = str(manifest["fold"])
        if store.manifest_path(fold) != manifest_path:
            return None  # a manifest under another fold's name
        pred, curve = store.fold_path(fold), store.curve_path(fold)
        if hashlib.sha256(pred.read_bytes()).hexdigest() != manifest["sha256"]:
            return None
        if manifest.get("curve_sha256") is None:
            return manifest, pred, None
        if hashlib.sha256(curve.read_bytes()).hexdigest() != manifest["curve_sha256"]:
            return None
        return manifest, pred, curve
    except (OSError, ValueError, KeyError, TypeError):
        return None


def live_locks(folder: Path) -> list[str]:
    """The holders of the run folder's locks that may be live (``pid host``): this machine's live processes, and
    every other machine's or unreadable lock (whose process cannot be seen from here)."""
    found = []
    for path in sorted(Path(folder).glob(".lock*")):
        holder = RunStore._holder(path)
        if holder is None or holder[1] != socket.gethostname() or pid_alive(holder[0]):
            found.append(f"{holder[0]} {holder[1]}" if holder else f"unknown ({path.name})")
    return found


def merge_run(source: str | Path, dest: str | Path) -> MergeCount:
    """Copy the finished, intact folds of the run folder ``source`` into ``dest``, the same run (e.g. trained in
    part on another machine, or a copy that went on running). Returns what was done.

    ``dest`` must hold no ``config.json`` or one whose identity equals the source's (else an error naming the
    differing fields), and no live process may be writing it. A fold is copied only when its manifest vouches
    for both of its files (so a fold being written, or a damaged one, never is), curve and predictions first
    and the manifest last, each atomically, so an interrupted merge leaves whole folds. A fold both folders hold
    with other predictions is kept as the destination has it and named in the result. The finished run's files
    (:data:`FINISHED_FILES`) are copied when the destination then holds exactly the source's folds, all alike.
    """
    source, dest = Path(source), Path(dest)
    src_store, dst_store = RunStore(source), RunStore(dest)
    src_info = src_store.read_config()
    if src_info is None or "identity" not in src_info:
        raise RunStoreError(f"{source}: no run identity (config.json), so nothing there can be merged")
    dst_info = dst_store.read_config()
    if dst_info is None and dst_store.has_folds():
        raise RunStoreError(f"{dest / 'config.json'} is missing but {dest / 'folds'} holds fold files: they cannot "
                            "be matched to the source's run")
    if dst_info is not None:
        diffs = identity_differences(dst_info.get("identity", {}), src_info["identity"])
        if diffs:
            raise RunStoreError(f"{source} and {dest} are different runs; differing fields: {'; '.join(diffs)}")
    holders = live_locks(dest)
    if holders:
        raise RunLockedError(f"{dest} is being written by process {', '.join(holders)}; merge when it has ended")
    count = MergeCount()
    dest.mkdir(parents=True, exist_ok=True)
    dst_store.acquire("merge")
    try:
        if dst_info is None:
            atomic_write_bytes(dst_store.config_path, src_store.config_path.read_bytes())
        src_folds = sorted((source / "folds").glob("*.json")) if (source / "folds").is_dir() else []
        if src_folds:
            (dest / "folds").mkdir(exist_ok=True)
            (dest / "curves").mkdir(exist_ok=True)
        for manifest_path in src_folds:
            found = _intact_fold(src_store, manifest_path)
            if found is None:
                count.damaged.append(manifest_path.stem)
                continue
            manifest, pred, curve = found
            fold = str(manifest["fold"])
            target = dst_store.manifest_path(fold)
            if target.exists():
                there = _intact_fold(dst_store, target)
                if there is not None and there[0].get("sha256") == manifest["sha256"] \
                        and there[0].get("curve_sha256") == manifest.get("curve_sha256"):
                    count.present += 1
                else:
                    count.differ.append(manifest_path.stem)
                continue
            if curve is not None:
                atomic_write_bytes(dst_store.curve_path(fold), curve.read_bytes())
            atomic_write_bytes(dst_store.fold_path(fold), pred.read_bytes())
            atomic_write_bytes(target, manifest_path.read_bytes())
            count.copied += 1
        dst_folds = sorted(p.name for p in (dest / "folds").glob("*.json")) if (dest / "folds").is_dir() else []
        alike = not count.differ and not count.damaged and dst_folds == [p.name for p in src_folds]
        if alike and (source / "metrics.csv").exists() and not (dest / "predictions.csv").exists():
            for name in FINISHED_FILES:
                if (source / name).exists():
                    atomic_write_bytes(dest / name, (source / name).read_bytes())
            count.finished = True
    finally:
        dst_store.close()
    return count


# -- the cache folder as a whole (``convat cache``) ---------------------------------------------------------
def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def cache_entries(root: Path | None = None) -> list[tuple[str, Path, int, float]]:
    """The cache's entries as ``(kind, path, bytes, last use)``: tensors, runs, explanation weights, set-aside
    damaged files. Only what convat writes is listed, so a mistaken ``$CONVAT_CACHE`` is never swept."""
    root = Path(root) if root is not None else default_cache_dir()
    entries = []
    if not root.is_dir():
        return entries
    for folder in sorted(root.iterdir()):
        if folder.is_dir() and len(folder.name) == 2 and all(c in "0123456789abcdef" for c in folder.name):
            for path in folder.iterdir():
                if path.name.endswith((".npz", ".npz.bad", ".tmp")):
                    kind = "tensor" if path.suffix == ".npz" else "damaged" if path.suffix == ".bad" else "tmp"
                    stat = path.stat()
                    entries.append((kind, path, stat.st_size, stat.st_mtime))
    for sub, kind in (("runs", "run"), ("explain_models", "weights")):
        for path in sorted((root / sub).glob("*")) if (root / sub).is_dir() else []:
            # a run being copied in from a committed bundle (<run>.<pid>-<machine>.tmp): its writer decides its use
            entries.append(("tmp" if path.name.endswith(".tmp") else kind, path, _size(path), path.stat().st_mtime))
    return entries


def cache_info(root: Path | None = None) -> dict[str, tuple[int, int]]:
    """``{kind: (count, bytes)}`` of the cache's entries."""
    info: dict[str, tuple[int, int]] = {}
    for kind, _, size, _ in cache_entries(root):
        count, total = info.get(kind, (0, 0))
        info[kind] = (count + 1, total + size)
    return info


def _newest_change(path: Path) -> float:
    """The latest modification time of ``path`` and of everything under it (0 where it cannot be read)."""
    try:
        return max([path.stat().st_mtime, *(p.stat().st_mtime for p in path.rglob("*"))])
    except OSError:
        return 0.0


def in_use(kind: str, path: Path) -> bool:
    """Whether a cache entry (:func:`cache_entries`) may be in use, so that clearing the cache keeps it: a run
    folder locked by a live process of this machine, or locked by another machine (or by a lock that cannot be
    read: whose process cannot be seen from here) and changed within :data:`FOREIGN_STALE_S`; a temporary file
    :func:`tmp_in_use`."""
    if kind == "run":
        for lock in path.glob(".lock*"):
            holder = RunStore._holder(lock)
            if holder is not None and holder[1] == socket.gethostname():
                if pid_alive(holder[0]):
                    return True
            elif time.time() - _newest_change(path) < FOREIGN_STALE_S:
                return True
        return False
    if kind == "tmp":
        return tmp_in_use(path)
    return False


def clear_cache(root: Path | None = None, max_size: int | None = None) -> tuple[int, int]:
    """Remove cache entries (all, or the least recently used until the total is at most ``max_size`` bytes).

    Entries in use (a run folder locked by a live process, a temporary file of a live process) are kept.
    Returns ``(entries removed, bytes freed)``.
    """
    import shutil

    if max_size is not None and max_size < 0:
        raise ValueError(f"max_size must be >= 0, got {max_size}")
    entries = sorted(cache_entries(root), key=lambda e: e[3])
    total = sum(e[2] for e in entries)
    removed = freed = 0
    for kind, path, size, _ in entries:
        if max_size is not None and total - freed <= max_size:
            break
        if in_use(kind, path):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed += 1
        freed += size
    return removed, freed


def parse_size(text: str) -> int:
    """``500M``, ``2G``, ``1.5GB``, ``100k`` or plain bytes -> bytes (powers of 1024)."""
    units = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    value = text.strip().upper().removesuffix("IB").removesuffix("B") if text.strip()[-1:].isalpha() else text.strip()
    number, unit = (value[:-1], value[-1]) if value[-1:].isalpha() else (value, "")
    try:
        size = float(number)
    except ValueError:
        raise ValueError(f"size {text!r} is not a number with an optional unit K, M, G or T") from None
    if unit not in units or size < 0:
        raise ValueError(f"size {text!r} is not a non-negative number with an optional unit K, M, G or T")
    return int(size * units[unit])
