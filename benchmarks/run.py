"""``make bench`` = ``python -m benchmarks.run``: JSON per part in ``benchmarks/results/`` and ``RESULTS.md``.

Parts: ``preprocessing`` (flow methods side by side, then the composite end to end in one process and in the
worker pool), ``models`` (training and inference samples/s), ``threads`` (one fold with torch's default threads
vs explicit threads, quiet and with two busy background processes), ``loso`` (composite LOSO, sequential vs the
worker pool, quiet and under load, wall and CPU time, extrapolated from a subset), ``gpu`` (CUDA only: eager vs
compiled vs batched; "not measured" rows elsewhere), ``chapters`` (each chapter's time in the quick profile) and
``chapters_load`` (the same from a fresh cache beside two busy processes: the slowest cell against the timeout);
``options`` (speed-ups that would change results, measured and not adopted: TV-L1 parameter sets against the true
motion, the training step in bfloat16 and compiled). Designed to finish in about 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

from benchmarks import report
from benchmarks.common import RESULTS, archive_targets, measured_nothing, others_running, store_result

PARTS = ("preprocessing", "models", "threads", "loso", "gpu", "chapters", "chapters_load", "options")
#: ``threads`` (~10 min on a loaded 2-core machine: torch's default threads collapse under load, which is its
#: point) runs only when named: ``python -m benchmarks.run threads``; the ``loso`` part has its own under-load row.
#: ``chapters_load`` (the whole book from a fresh cache beside two busy processes, ~2x the book) too, and
#: ``options`` (decision material for the missed CPU targets, not a target of its own; its time is in RESULTS.md).
DEFAULT_PARTS = ("preprocessing", "models", "loso", "gpu", "chapters")
README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def update_readme(markdown: str, readme: Path = README) -> bool:
    """Put the results between the README's bench markers (its performance section); False if none there."""
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        return False
    head, rest = text.split(START, 1)
    readme.write_text(f"{head}{START}\n{markdown}{END}{rest.split(END, 1)[1]}", encoding="utf-8")
    return True


def checked_result(path: Path, out: Path = RESULTS) -> dict:
    """A part's result written elsewhere, read and checked before anything is filed: a `make bench` part with its
    machine, that measured something, on the device it names (not a CPU dry run of the GPU part), and not older
    than the file of that part already in ``out``."""
    result = json.loads(Path(path).read_text())
    part = result.get("benchmark")
    if part not in PARTS or "machine" not in result:
        raise ValueError(f"not a `make bench` part result (benchmark {part!r}; parts are {PARTS})")
    if measured_nothing(result):
        raise ValueError(f"it measured nothing ({result.get('how') or result.get('source')}); nothing to file")
    if str(result.get("gpu") or "").endswith("(dry run)"):
        raise ValueError(f"it is a dry run on {result['gpu'].removesuffix(' (dry run)')}, not a GPU measurement")
    present = out / f"{part}.json"
    filed = json.loads(present.read_text()).get("date", "") if present.is_file() else ""
    if filed > result.get("date", ""):
        raise ValueError(f"{present} holds a later measurement ({filed} UTC against {result.get('date')})")
    return result


def add_result(result: dict, out: Path = RESULTS) -> Path:
    """File a part's result measured elsewhere (its own machine, date and commit inside; checked by
    :func:`checked_result`) as ``out/<part>.json`` and archive its measured targets."""
    out.mkdir(parents=True, exist_ok=True)
    target_path = out / f"{result['benchmark']}.json"
    target_path.write_text(json.dumps(result, indent=1, default=str) + "\n")
    archive_targets(result, out)
    return target_path


def composite_seconds_here(out: Path = RESULTS) -> float | None:
    """The preprocessing part's measured composite time if it was measured with TV-L1 on this machine's CPU (the
    options part scales it by TV-L1 speed-ups into estimates), else None."""
    from benchmarks.common import archive_key, context

    path = out / "preprocessing.json"
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    composite = result.get("composite") or {}
    here = archive_key({"benchmark": "options", "machine": context()["machine"]})
    if composite.get("method") != "tvl1" or archive_key(result) != here:
        return None
    return composite.get("seconds")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    p.add_argument("parts", nargs="*", default=None,
                   help=f"parts to run, of {PARTS} (default: {DEFAULT_PARTS})")
    p.add_argument("--out", type=Path, default=RESULTS, help="results folder (default: benchmarks/results)")
    p.add_argument("--flow-clips", type=int, default=12, help="clips in the flow-method comparison (default 12)")
    p.add_argument("--composite-clips", type=int, default=110, help="composite clips preprocessed end to end, "
                   "extrapolated to 442 (default 110; 0: all)")
    p.add_argument("--option-clips", type=int, default=48, help="clips in the options part's TV-L1 comparison "
                   "(default 48)")
    # Each strategy runs quiet and under load, twice each, in fresh processes: 2 folds x 6 epochs keeps the
    # whole part within a few minutes; the pool is started (torch imported) outside the timed part, as it is
    # reused in practice. At 2 epochs a fold's fixed costs (model build, first steps) were a third of the
    # timed part and the pool's gain read 1.24x instead of the 1.48x of 8-epoch runs.
    p.add_argument("--loso-folds", type=int, default=2, help="composite folds timed per strategy (default 2)")
    p.add_argument("--loso-epochs", type=int, default=6, help="epochs timed per fold (default 6)")
    p.add_argument("--repeats", type=int, default=2, help="interleaved repeats per variant (default 2)")
    p.add_argument("--workers", type=int, default=2, help="folds trained at once in the parallel run (default 2)")
    p.add_argument("--chapters", action="store_true", help="execute every chapter now instead of reading the "
                   "times of the last `make book`, and record each chapter's slowest cells")
    p.add_argument("--fresh-cache", action="store_true", help="with --chapters: execute them with a new, empty "
                   "$CONVAT_CACHE, as the book target (from a clean cache) asks")
    p.add_argument("--report-only", action="store_true", help="measure nothing: rebuild RESULTS.md (and the README "
                   "section) from the JSON files")
    p.add_argument("--add", type=Path, metavar="PART_JSON", action="append", default=[],
                   help="measure nothing: file a part's result written on another machine (e.g. gpu.json from a "
                        "lent GPU machine), archive its targets under that machine, then rebuild the report; "
                        "repeatable")
    args = p.parse_args(argv)
    if args.fresh_cache and not args.chapters:
        p.error("--fresh-cache needs --chapters (a build's times are read as they were measured)")
    named = args.parts or []
    args.parts = named or list(DEFAULT_PARTS)
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown:
        p.error(f"unknown parts {unknown}; choose from {PARTS}")
    if args.add and (named or args.chapters):
        p.error("--add files results measured elsewhere and measures nothing: name no parts and no --chapters")
    checked: dict[Path, dict] = {}
    for path in args.add:  # every file checked before any is filed, against the ones named before it too
        try:
            result = checked_result(path, args.out)
        except (OSError, ValueError) as exc:
            p.error(f"--add {path}: {exc}")
        before = [(q, r["date"]) for q, r in checked.items() if r["benchmark"] == result["benchmark"]]
        if before and max(d for _, d in before) > result.get("date", ""):
            p.error(f"--add {path}: {before[-1][0]}, named before it, holds a later measurement")
        checked[path] = result
    for path, result in checked.items():
        print(f"{path} -> {add_result(result, args.out)}")
    if args.add:
        args.report_only = True
    warnings.filterwarnings("ignore")
    start = time.perf_counter()
    run_id = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())  # which parts one `make bench` measured
    x = table = None
    for part in [q for q in PARTS if q in args.parts and not args.report_only]:
        # before this part starts anything of its own; the chapters part only reads the last build's times
        # (unless --chapters), so the machine's state now says nothing about them
        competing = None if part == "chapters" and not args.chapters else others_running()
        t0 = time.perf_counter()
        if part == "preprocessing":
            from benchmarks import preprocessing

            payload = preprocessing.run(n_clips=args.flow_clips, composite_clips=args.composite_clips,
                                        repeats=args.repeats)
        elif part == "models":
            from benchmarks import models

            payload = models.run()
        elif part == "loso":
            from benchmarks import loso

            x, table = loso.composite_inputs()
            payload = loso.run(x, table, n_folds=args.loso_folds, epochs=args.loso_epochs, workers=args.workers,
                               repeats=args.repeats)
        elif part == "threads":
            from benchmarks import loso, threads

            if x is None:
                x, table = loso.composite_inputs()
            payload = threads.run(x, table, epochs=2, repeats=args.repeats)
        elif part == "gpu":
            from benchmarks import gpu

            payload = gpu.run()
        elif part == "options":
            from benchmarks import options

            payload = options.run(n_clips=args.option_clips, repeats=args.repeats,
                                  composite_seconds=composite_seconds_here(args.out))
        elif part == "chapters_load":
            from benchmarks import chapters

            quiet = args.out / "chapters.json"
            payload = chapters.run_under_load(quiet=json.loads(quiet.read_text()) if quiet.is_file() else None)
        else:
            from benchmarks import chapters

            payload = chapters.run(execute=args.chapters, fresh_cache=args.fresh_cache)
        payload["part_seconds"] = round(time.perf_counter() - t0, 1)
        payload["run_id"], payload["others_running_at_start"] = run_id, competing
        path, written = store_result(part, payload, args.out)
        if written:
            print(f"{part}: {payload['part_seconds']} s -> {path}", flush=True)
        else:  # e.g. the GPU part on a CPU machine: the earlier file stays, and the report says when it was made
            print(f"{part}: nothing measured here ({payload.get('how') or payload.get('source')}); kept {path}",
                  flush=True)
    markdown = report.render(report.load(args.out), report.load_archive(args.out))
    (args.out / "RESULTS.md").write_text("# `make bench` results\n\n" + markdown)
    if args.out.resolve() == RESULTS.resolve() and update_readme(markdown):
        print(f"performance section of {README.name} updated")
    print(markdown)
    print(f"make bench finished in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
