"""The resumable table of an experiment: one row per finished unit in ``rows.csv``, the spec in a record file.

A search or an ablation trains unit after unit (a model at a budget, an arm at a seed). Each finished unit is
appended to ``rows.csv`` at once, atomically, with its wall and CPU time, the code fingerprint and the commit
that made it, so a killed run continues where it stopped and every row says what produced it. The record file
holds the spec, the machine and the date; a folder holds one spec, and another is refused.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pandas as pd

from convat import runstore, runtime

ROWS_FILE = "rows.csv"


def read_rows(out: str | Path) -> pd.DataFrame:
    """The finished rows of an experiment folder (an empty frame when none)."""
    path = Path(out) / ROWS_FILE
    # digests and commits are text: a hex digest of only digits must not become a number (losing leading zeros)
    text = {c: str for c in ("commit", "code", "explain_code", "inputs", "config", "faithful", "device", "torch")}
    return pd.read_csv(path, dtype=text) if path.exists() else pd.DataFrame()


def open_rows(out: str | Path, record_file: str, spec: dict, kind: str) -> pd.DataFrame:
    """Create the folder ``out`` for ``spec`` (writing its record) or check that it holds ``spec``; its rows.

    ``kind`` names the experiment in the refusal (``"a budget search"``), which lists the differing fields.
    """
    from convat.experiments.study import machine_record

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / record_file
    if path.exists():
        diffs = runstore.identity_differences(json.loads(path.read_text())["spec"], spec)
        if diffs:
            raise runstore.RunStoreError(f"{out} holds {kind} with another spec ({'; '.join(diffs)}); "
                                         "use another folder")
    else:
        runstore.atomic_write_text(path, json.dumps(
            {"spec": spec, "machine": machine_record(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
            indent=2, sort_keys=True) + "\n")
    return read_rows(out)


def pending(out: str | Path, record_file: str, spec, kind: str, key: tuple[str, str]) -> tuple[pd.DataFrame, list]:
    """``(finished rows, units still to run)`` of an experiment folder for ``spec`` (see :func:`open_rows`):
    the units are ``spec.cells()`` whose ``(key[0], key[1])`` values (e.g. model and training seed) have no row
    yet, in ``spec.cells()`` order."""
    rows = open_rows(out, record_file, spec.to_json(), kind)
    done = set() if rows.empty else set(zip(rows[key[0]], rows[key[1]].astype(int), strict=True))
    return rows, [c for c in spec.cells() if c not in done]


def experiment_inputs(spec):
    """``(records, preprocessing config, x, table)`` of a spec with ``dataset``, ``profile``, ``data_seed``,
    ``synth_overrides`` (SynthME only; a smaller population in tests), ``img_size`` and ``flow``."""
    from convat.book import default_preprocess, load_records
    from convat.preprocess.pipeline import preprocess

    if spec.dataset == "synthme" and spec.synth_overrides:
        from convat.data.synth import generate

        records = generate(spec.profile, seed=spec.data_seed, **spec.synth_overrides)
    else:
        records = load_records(spec.dataset, spec.profile, seed=spec.data_seed)
    pre = default_preprocess(spec.img_size, spec.flow)
    x, table = preprocess(records, pre, progress=False)
    return records, pre, x, table


def replace_rows(out: str | Path, rows: pd.DataFrame) -> pd.DataFrame:
    """Write ``rows`` as the folder's whole ``rows.csv`` (atomically), e.g. without units to be computed again."""
    buffer = io.StringIO()
    rows.to_csv(buffer, index=False)
    runstore.atomic_write_text(Path(out) / ROWS_FILE, buffer.getvalue())
    return rows


def _cpu_clock() -> tuple[float, str]:
    """``(CPU seconds, scope)``: of this process and its fold workers (:func:`convat.runtime.process_tree_cpu_s`;
    the folds train in workers, so the parent's own clock misses them), scope ``process tree``; or of this
    process alone where that is unknown, scope ``process``."""
    tree = runtime.process_tree_cpu_s()
    return (time.process_time(), "process") if tree is None else (tree, "process tree")


def started() -> tuple[float, float]:
    """The wall and CPU clocks at the start of a unit, for :func:`append_row`."""
    return time.perf_counter(), _cpu_clock()[0]


def append_row(out: str | Path, rows: pd.DataFrame, row: dict, since: tuple[float, float]) -> pd.DataFrame:
    """``rows`` plus ``row`` (with its wall and CPU seconds since ``since``, the code fingerprint and the commit),
    written to ``out/rows.csv`` atomically; the new table. ``cpu_scope`` says what the CPU seconds count:
    ``process tree`` (this process and its workers) or ``process`` (this one alone, where the tree is unknown);
    rows written before the column existed counted this process alone."""
    from convat.site.environment import git_commit

    wall, cpu = since
    now, scope = _cpu_clock()
    row = {**row, "wall_s": round(time.perf_counter() - wall, 1), "cpu_s": round(now - cpu, 1), "cpu_scope": scope,
           "code": runstore.code_fingerprint(), "commit": git_commit(ignore=[out])}
    return replace_rows(out, pd.concat([rows, pd.DataFrame([row])], ignore_index=True))


def absent(out: str | Path, what: str, unit: str) -> str | None:
    """The sentence a chapter shows instead of an experiment's results when there are none, else ``None``:
    ``what`` names the experiment ("budget search"), ``unit`` one finished row ("candidate of the budget
    search"). A missing folder is said to be the repository's (an installed package, e.g. on Colab, ships no
    ``results/``)."""
    if not Path(out).is_dir():
        return (f"No {what} at `{out}`: it is committed in the repository (`results/{Path(out).name}`), and an "
                "installed package does not ship it.")
    if read_rows(out).empty:
        return f"No {unit} has finished yet (`{out}`)."
    return None


def made_by(command: str, record: dict, rows: pd.DataFrame) -> str:
    """The provenance sentence of an experiment's rows: the command, the date, the machine and the commits."""
    machine = record.get("machine", {})
    commits = ", ".join(f"`{c}`" for c in sorted(rows["commit"].astype(str).unique()))
    return (f"Made by `{command}` from {record.get('date', '?')} on {machine.get('device', '?')} "
            f"({machine.get('cpus', '?')} CPUs, torch {machine.get('torch', '?')}), commit(s) {commits}")


__all__ = ["ROWS_FILE", "absent", "append_row", "experiment_inputs", "made_by", "open_rows", "pending", "read_rows",
           "replace_rows", "started"]
