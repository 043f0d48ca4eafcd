"""``convat loso``: leave-one-subject-out evaluation of one model on one dataset, resumable."""

from __future__ import annotations

import argparse

from convat.commands import (
    UsageError,
    check_data_root,
    check_device,
    check_folder,
    check_models,
    float_in,
    int_at_least,
)
from convat.recipe import RECIPE
from convat.training.config import COMPILE_MODES

DESCRIPTION = """\
Leave-one-subject-out (LOSO) evaluation: for every subject, train a fresh model on all the other subjects and
predict the held-out one. Each finished fold is written at once to OUT/folds/ (predictions, with a manifest of
checksums) and OUT/curves/ (training curve); interrupt it at any time and run the same command again: it checks
the finished folds and trains the missing ones, nothing lost, nothing repeated. OUT/config.json records what
decides the predictions (data, preprocessing, inputs, training configuration, classes, folds, code
fingerprint): the same folder with any other setting is refused, naming the fields that differ. At the end OUT
also holds predictions.csv (one row per clip), curves.csv and metrics.csv, and the pooled UF1 / UAR / accuracy
with bootstrap intervals over subjects are printed (per dataset for the composite).

The held-out subject takes part in no decision: a fixed budget by default (the recipe's optimiser steps, the
same for every fold; epochs on SynthME's quick profile, a smoke test), or, with --val-fraction, the best
epoch on an inner validation split of whole *training* subjects.

Every argument is checked before any work; a bad one is reported in one line (exit status 2).
"""

EXAMPLES = """\
examples:
  convat loso                                    # ConVAT-Tiny on SynthME (quick profile), cached run folder
  convat loso --model ststnet --epochs 40        # a baseline through the same engine
  convat loso --profile composite --parallel-folds 2 --out runs/convat-composite
  convat loso --dataset megc2019 --data-root /data/megc --val-fraction 0.15 --patience 5   # the real composite
  convat loso --dataset casme2_5class --data-root /data/megc   # CASME II 5-class (246 clips, 5 labels)
  convat loso --profile composite --strategy batched   # all folds as one model (pays on a GPU: --device cuda)
  convat loso --profile composite --out runs/c --task-index 0 --num-tasks 4   # one of 4 tasks (any order,
                                                 # side by side too; the last to finish writes the results)
"""


def _folds_present(predictions) -> int:
    return predictions["fold"].nunique() if len(predictions) else 0


def settle_split_run(x, table, config, out, data: dict | None = None, attempts: int = 60, wait_s: float = 1.0):
    """After a task of a split run has trained its share: the predictions of every fold present now, with
    ``predictions.csv``, ``curves.csv`` and ``metrics.csv`` written when every fold is there.

    Why: a task reads the folder's finished folds when it starts. Tasks that run side by side (a Slurm array)
    each finish their own share and find the others' folds missing, so without a second look the last of them
    leaves the pooled files unwritten. Asking the folder again with an empty share (it trains nothing) lets
    whichever task looks last write them. Two tasks looking at the same moment share that call's lock: the
    second retries (``attempts`` times, ``wait_s`` apart; the look reads the fold files and writes three)."""
    import time

    from convat.loso import run_loso
    from convat.runstore import RunLockedError

    for attempt in range(attempts):
        try:
            return run_loso(x, table, config, out_dir=out, progress=False, data=data, strategy="sequential",
                            folds=[])
        except RunLockedError:
            if attempt == attempts - 1:
                raise
            time.sleep(wait_s)
    raise ValueError(f"attempts must be >= 1, got {attempts}")


def _chosen_folds(text: str, known: list[str]) -> list[str]:
    """The folds named by ``--folds`` (comma-separated ``dataset/subject``); a name not in ``known`` is an error
    that names it and gives an example of a valid one."""
    folds = [f.strip() for f in text.split(",") if f.strip()]
    unknown = sorted(set(folds) - set(known))
    if unknown:
        raise UsageError("--folds", text, f"names {unknown}, not folds of this run (e.g. {known[0]!r})")
    return folds


def _execution(strategy: str, config, parallel_folds: int) -> str:
    """How the folds will actually run (``auto`` resolved; a sequential run trains one fold at a time whatever
    --parallel-folds says)."""
    from convat.loso import resolve_strategy

    chosen = resolve_strategy(strategy, config, parallel_folds)
    if chosen == "batched":
        return "strategy batched (all folds at once)"
    at_once = parallel_folds if chosen == "pool" else 1
    named = chosen if chosen == strategy else f"{chosen} ({strategy})"
    return f"strategy {named}, {at_once} fold{'s' if at_once != 1 else ''} at a time"


def _budget() -> str:
    return f"{RECIPE.smoke_epochs} epochs on SynthME's quick profile (a smoke test), {RECIPE.steps} steps otherwise"


def _datasets() -> list[str]:
    from convat.book import dataset_names

    return dataset_names()


def _profiles() -> list[str]:
    from convat.data.synth import PROFILES

    return sorted(PROFILES)


def _flows() -> list[str]:
    from convat.preprocess.flow import FLOW_METHODS

    return sorted(FLOW_METHODS)


def validate(args: argparse.Namespace):
    """Check what argparse cannot (model known to timm, device available, the training configuration) and
    return ``(preprocess config, training config)``; raises :class:`UsageError` naming the flag."""
    from convat.book import default_preprocess, default_train, training_budget

    check_models([args.model], "--model")
    check_device(args.device)
    check_folder(args.out)
    check_data_root(args.dataset, args.data_root)
    from convat.runtime import cpu_cores

    cores = cpu_cores()
    if args.threads is not None and args.threads > cores:
        raise UsageError("--threads", args.threads, f"is more than the {cores} CPU cores this process may run "
                         "on; threads beyond the cores only wait for each other (default: all cores)")
    if (args.task_index is None) != (args.num_tasks is None):
        flag = "--task-index" if args.task_index is not None else "--num-tasks"
        raise UsageError(flag, args.task_index if args.task_index is not None else args.num_tasks,
                         "needs its partner (--task-index I --num-tasks N)")
    if args.num_tasks is not None and args.task_index >= args.num_tasks:
        raise UsageError("--task-index", args.task_index, f"must be below --num-tasks {args.num_tasks}")
    if (args.folds is not None or args.num_tasks is not None) and args.out is None:
        raise UsageError("--folds" if args.folds is not None else "--num-tasks", args.folds or args.num_tasks,
                         "needs --out (the tasks of a split run merge through one run folder)")
    if args.patience and not args.val_fraction:
        raise UsageError("--patience", args.patience, "needs --val-fraction > 0 (early stopping is judged on the "
                         "inner validation split)")
    overrides = dict(
        val_fraction=args.val_fraction, patience=args.patience, balanced_sampling=args.balanced_sampling,
        class_weighting=not args.no_class_weighting,
    )
    if args.batch_size is not None:
        overrides["batch_size"] = args.batch_size
    if args.compile is not None:
        if args.strategy == "batched":
            raise UsageError("--compile", args.compile, "compiles the sequential engine's model; the batched "
                             "strategy trains eager (use --strategy sequential or pool, or drop --compile)")
        overrides["compile"] = args.compile
    overrides["lr"] = args.lr
    if args.steps is not None and args.epochs is not None:
        raise UsageError("--steps", args.steps, "and --epochs are two budgets; give one (default: the recipe's)")
    budget = training_budget(args.dataset, args.profile, args.epochs, args.steps)
    return (default_preprocess(args.img_size, args.flow),
            default_train(args.model, budget, device=args.device, seed=args.train_seed, **overrides))


def data_identity(args: argparse.Namespace) -> dict:
    """What names the data beyond the clip list: dataset, and for SynthME its profile and data seed (the draw)."""
    if args.dataset == "synthme":
        return {"dataset": args.dataset, "profile": args.profile, "data_seed": args.data_seed}
    return {"dataset": args.dataset}


def _run(args: argparse.Namespace) -> int:
    import time
    from dataclasses import asdict

    from convat import runstore
    from convat.book import load_records
    from convat.loso import cached_run, fold_subjects, run_loso, task_folds
    from convat.metrics import results_table, subject_key
    from convat.preprocess.pipeline import preprocess
    from convat.runtime import configure_threads
    from convat.training.loop import resolve_device

    prep, config = validate(args)
    if args.threads is not None:
        configure_threads(args.threads)
    data = data_identity(args)
    if args.out is not None:  # refuse another run's folder before preprocessing (the rest is checked later)
        known = {"data": data, "preprocess": prep.params(), "training": asdict(config),
                 "code": runstore.code_fingerprint()}
        runstore.RunStore(args.out).check_identity(known, partial=True)
    records = load_records(args.dataset, args.profile, args.data_root, seed=args.data_seed)
    if args.folds is not None:  # against the clips' subjects before preprocessing (minutes on a real dataset)
        _chosen_folds(args.folds, sorted({f"{r.dataset}/{r.subject}" for r in records}))
    x, table = preprocess(records, prep, progress=not args.quiet, workers=args.workers)
    n_subjects = subject_key(table).nunique()
    folds = None
    if args.folds is not None:  # again: preprocessing may have dropped a subject's clips
        folds = _chosen_folds(args.folds, fold_subjects(table))
    if args.num_tasks is not None:
        folds = task_folds(folds or fold_subjects(table), args.task_index, args.num_tasks)
    print(f"{args.model} on {args.dataset} ({args.profile}): {len(table)} clips, {n_subjects} folds"
          f"{'' if folds is None else f' ({len(folds)} of them in this task)'}, device "
          f"{resolve_device(args.device)}, {_execution(args.strategy, config, args.parallel_folds)}")
    start = time.perf_counter()
    if args.out is not None:
        predictions = run_loso(x, table, config, out_dir=args.out, progress=not args.quiet,
                               parallel_folds=args.parallel_folds, data=data, strategy=args.strategy, folds=folds)
        if folds is not None and _folds_present(predictions) < n_subjects:
            # other tasks may have finished while this one trained: look again, and write the results if complete
            try:
                predictions = settle_split_run(x, table, config, args.out, data)
            except runstore.RunLockedError as exc:  # this task's folds are saved; only the pooled files wait
                print(f"this task's folds are saved; the pooled results were not written because {exc}. Any task "
                      "run again (it trains nothing) writes them once every fold is present")
        out = args.out
    else:
        run = cached_run(x, table, config, progress=not args.quiet, parallel_folds=args.parallel_folds, data=data,
                         strategy=args.strategy)
        predictions, out = run.predictions, run.path
    print(f"done in {time.perf_counter() - start:.1f} s; run folder: {out}")
    present = _folds_present(predictions)
    if present < n_subjects:
        print(f"{present} of {n_subjects} folds present: the last task to finish writes the scores")
        return 0
    by = "dataset" if predictions["dataset"].nunique() > 1 else None
    scores = results_table({args.model: predictions}, by=by, n_boot=args.n_boot)
    cols = [c for c in scores.columns if not c.endswith("fold_avg")]
    print(scores[cols].round(4).to_string())
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "loso", help="leave-one-subject-out training and evaluation of one model (resumable)",
        description=DESCRIPTION, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = p.add_argument_group("data")
    data.add_argument("--dataset", default=RECIPE.dataset, choices=_datasets(),
                      help=f"synthme (built in), a real dataset or a protocol under --data-root (default: "
                           f"{RECIPE.dataset})")
    data.add_argument("--data-root", default=None, help="folder of the real datasets (default: $CONVAT_DATA)")
    data.add_argument("--profile", default=RECIPE.profile, choices=_profiles(),
                      help=f"SynthME profile (default: {RECIPE.profile}; ignored for real datasets)")
    data.add_argument("--data-seed", type=int_at_least(0), default=RECIPE.data_seed,
                      help=f"which SynthME draw (default: {RECIPE.data_seed}; ignored for real datasets)")
    data.add_argument("--img-size", type=int_at_least(8), default=RECIPE.img_size,
                      help=f"model input size in pixels (default: {RECIPE.img_size})")
    data.add_argument("--flow", default=RECIPE.flow, choices=_flows(),
                      help=f"optical-flow method (default: {RECIPE.flow})")
    train = p.add_argument_group("training")
    train.add_argument("--model", default=RECIPE.model,
                       help="timm model name: convat_tiny, convat_small, ststnet, offapexnet, vit_me_tiny, "
                            f"resnet_me, ... (default: {RECIPE.model})")
    train.add_argument("--epochs", type=int_at_least(1), default=None,
                       help=f"training budget in epochs per fold (maximum with --val-fraction; default: the "
                            f"recipe's budget, {_budget()})")
    train.add_argument("--steps", type=int_at_least(1), default=None,
                       help="training budget in optimiser steps per fold instead: every fold the same number "
                            "whatever its size")
    train.add_argument("--batch-size", type=int_at_least(1), default=None,
                       help=f"batch size (default: {RECIPE.batch_size})")
    train.add_argument("--lr", type=float_in(0.0, None, low_open=True), default=RECIPE.lr,
                       help=f"peak learning rate of the one-cycle schedule (default: {RECIPE.lr})")
    train.add_argument("--train-seed", type=int_at_least(0), default=RECIPE.train_seed,
                       help="seed of training: initialisation, sample order, mirror draws, dropout "
                            f"(default: {RECIPE.train_seed}); the data has --data-seed")
    train.add_argument("--device", default=RECIPE.device,
                       help="auto (CUDA with mixed precision if available, else CPU), cpu, cuda, cuda:N, mps")
    train.add_argument("--val-fraction", type=float_in(0.0, 1.0), default=0.0,
                       help="share of training subjects kept for model selection, in [0, 1) (default 0: fixed "
                            "budget)")
    train.add_argument("--patience", type=int_at_least(0), default=0,
                       help="early stopping after this many epochs without a better validation UF1 (0: off)")
    train.add_argument("--balanced-sampling", action="store_true", help="class-balanced batches")
    train.add_argument("--no-class-weighting", action="store_true",
                       help="plain cross-entropy instead of inverse-frequency class weights")
    run = p.add_argument_group("run")
    run.add_argument("--out", default=None,
                     help="run folder; rerunning with the same folder resumes (default: a folder under "
                          "$CONVAT_CACHE/runs named by the inputs, configuration and code version)")
    run.add_argument("--parallel-folds", type=int_at_least(1), default=1,
                     help="folds trained at once in worker processes (CPU threads are split between them)")
    run.add_argument("--strategy", default="auto", choices=["auto", "sequential", "pool", "batched"],
                     help="how folds run: sequential, pool (--parallel-folds worker processes), batched (all "
                          "folds as one model, for GPUs); auto: batched on CUDA, else pool/sequential")
    run.add_argument("--compile", default=None, choices=[m for m in COMPILE_MODES if m],
                     help="torch.compile the model in this mode (reduce-overhead: CUDA graphs), for the "
                          "sequential and pool strategies on a GPU, where small models are bound by kernel "
                          "launches; the first epoch pays the compilation (default: eager)")
    run.add_argument("--folds", default=None,
                     help="comma-separated folds (dataset/subject) to train in this call; needs --out")
    run.add_argument("--task-index", type=int_at_least(0), default=None,
                     help="with --num-tasks: train only this task's share of the folds (0-based; e.g. "
                          "$SLURM_ARRAY_TASK_ID); tasks are idempotent and merge through the run folder")
    run.add_argument("--num-tasks", type=int_at_least(1), default=None,
                     help="number of tasks the folds are split into")
    run.add_argument("--threads", type=int_at_least(1), default=None,
                     help="CPU threads of this process (default: $CONVAT_THREADS, else all cores)")
    run.add_argument("--workers", type=int_at_least(1), default=1,
                     help="worker processes for preprocessing the clips missing from the cache (default: 1)")
    run.add_argument("--n-boot", type=int_at_least(1), default=2000,
                     help="bootstrap replicates over subjects, >= 1 (default 2000)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)
