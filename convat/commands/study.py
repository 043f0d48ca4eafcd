"""``convat study``: the reference study (models x training seeds x data draws under LOSO) as a result bundle."""

from __future__ import annotations

import argparse
from pathlib import Path

from convat.commands import (
    UsageError,
    check_data_root,
    check_device,
    check_distinct,
    check_folder,
    check_models,
    int_at_least,
)
from convat.recipe import RECIPE

DESCRIPTION = """\
The reference study: every model, every training seed and every SynthME draw under leave-one-subject-out, with
the linear reference on the same folds, written to a bundle folder (default results/study) that is committed to
the repository. Each cell is a resumable LOSO run folder: interrupt the study at any point and run the same
command again; it continues at the first missing fold. bundle.json records the spec, the code fingerprint, the
commit, the machine, the date and each cell's wall and CPU time. `convat study show` prints mean +- SD over
seeds per model and the paired verdicts (subjects x seeds bootstrap) against the reference model, and says
whether the bundle is stale (the code that decides results changed since it was made).
"""

EXAMPLES = """\
examples:
  convat study run                                       # composite profile, 3 training seeds, all models
  convat study run --train-seeds 0 1 2 3 4 --device cuda  # 5 seeds on a GPU
  convat study run --profile quick --data-seeds 0 1 2 --out runs/study-quick   # quick: 3 draws
  convat study run --backend submitit --train-seeds 0 1 2 3 4 --device cuda      # a Slurm job array
  convat study run --cells convat_tiny:2 --out /scratch/study   # one cell here; then, in the repository:
  convat study merge /scratch/study                             # ... bring it into results/study
  convat study show results/study
"""


#: The model every other is compared with unless --reference names another (a study without it shows no verdicts).
DEFAULT_REFERENCE = "convat_tiny"


def _spec(args: argparse.Namespace):
    from convat.experiments.study import StudySpec

    return StudySpec(dataset=args.dataset, profile=args.profile, data_seeds=tuple(args.data_seeds),
                     train_seeds=tuple(args.train_seeds), models=tuple(args.models), linear=not args.no_linear,
                     img_size=args.img_size, flow=args.flow, epochs=args.epochs, steps=args.steps)


def validate(args: argparse.Namespace):
    """The study's spec, after what argparse cannot check: the models, the reference, the device, the bundle
    folder and the cluster (each a :class:`UsageError` naming the flag), before any cell runs."""
    from convat.experiments.study import LINEAR

    check_models(args.models)
    check_distinct(args.models, "--models")
    check_distinct(args.train_seeds, "--train-seeds")
    check_distinct(args.data_seeds, "--data-seeds")
    models = [*args.models, *(() if args.no_linear else (LINEAR,))]
    if args.reference not in models and args.reference != DEFAULT_REFERENCE:  # the default may be left out
        raise UsageError("--reference", args.reference, "is not one of the study's models: " + ", ".join(models))
    check_device(args.device, here=args.backend == "local")  # submitit: the nodes have the GPUs
    check_folder(args.out, what="bundle folder")
    check_data_root(args.dataset, args.data_root)
    if args.cluster is not None and args.backend != "submitit":
        raise UsageError("--cluster", args.cluster, "chooses a submitit executor; it needs --backend submitit")
    if args.steps is not None and args.epochs is not None:
        raise UsageError("--steps", args.steps, "and --epochs are two budgets; give one (default: the recipe's)")
    spec = _spec(args)
    args.chosen_cells = None if args.cells is None else chosen_cells(args.cells, spec)
    return spec


def chosen_cells(values: list[str], spec) -> list[tuple[int, str, int | None]]:
    """``--cells`` values (``MODEL:SEED``, ``MODEL:SEED:DRAW``, ``linear`` or ``linear:DRAW``; the draw defaults
    to the study's first) as cells of ``spec``, in the study's order; a value that names no cell of the spec is a
    :class:`UsageError` listing what would."""
    from convat.experiments.study import LINEAR

    grid = spec.cells()
    first = spec.draws()[0]
    chosen = set()
    for value in values:
        parts = value.split(":")
        try:
            if parts[0] == LINEAR and len(parts) <= 2:
                cell = (int(parts[1]) if len(parts) == 2 else first, LINEAR, None)
            elif len(parts) in (2, 3):
                cell = (int(parts[2]) if len(parts) == 3 else first, parts[0], int(parts[1]))
            else:
                raise ValueError
        except ValueError:
            raise UsageError("--cells", value, "is not MODEL:SEED, MODEL:SEED:DRAW, linear or linear:DRAW") from None
        if cell not in grid:
            names = ", ".join(f"{m}:{s}" if s is not None else m for d, m, s in grid if d == first)
            raise UsageError("--cells", value, f"is not a cell of this study (its cells: {names}"
                             + (", each in draws " + " ".join(map(str, spec.draws())) if len(spec.draws()) > 1 else "")
                             + ")")
        chosen.add(cell)
    return [c for c in grid if c in chosen]


def _run(args: argparse.Namespace) -> int:
    import time

    from convat.book import fold_workers
    from convat.experiments.study import run_study

    spec = validate(args)
    start = time.perf_counter()
    record = run_study(spec, args.out, data_root=args.data_root, device=args.device,
                       parallel_folds=args.parallel_folds or fold_workers(), progress=not args.quiet,
                       backend=args.backend, jobs=args.jobs, cluster=args.cluster, cells=args.chosen_cells)
    print(f"{len(record['cells'])} cells in {args.out} ({time.perf_counter() - start:.0f} s this time)")
    return _show_folder(args.out, args.reference, args.n_boot)


def _show_folder(out: str, reference: str, n_boot: int) -> int:
    import pandas as pd

    from convat.experiments.study import (
        BUNDLE_FILE,
        describe_study,
        load_study,
        remaining_estimate,
        study_comparisons,
        study_status,
        study_table,
    )

    folder = Path(out)
    if folder.name == BUNDLE_FILE and folder.is_file():  # the bundle's record named instead of its folder
        folder = folder.parent
    if folder.exists() and not folder.is_dir():
        raise UsageError("OUT", out, f"is a file, not a bundle folder (a folder holding {BUNDLE_FILE})")
    if not (folder / BUNDLE_FILE).exists():
        raise FileNotFoundError(f"{folder}: no {BUNDLE_FILE}, so not a study bundle (`convat study run --out "
                                f"{folder}` makes one)")
    study = load_study(folder)
    models = sorted(study.predictions["model"].unique())
    if reference not in models and reference != DEFAULT_REFERENCE:  # the default may not be in a custom study
        raise UsageError("--reference", reference, "is not a model of this bundle: " + ", ".join(models))
    for reason in study_status(study):  # each says what it is: stale, incomplete, in progress
        print(reason)
    estimate = remaining_estimate(study)
    if estimate:
        print(estimate)
    table = study_table(study)
    print(table.round(4).to_string(na_rep="–"))  # no SD from one run
    if reference in table.index:
        print(describe_study(table, study_comparisons(study, reference, n_boot=n_boot), reference,
                             smoke=study.spec.smoke))
    else:  # the default reference is not in this study: the sentences that need none, and how to get verdicts
        print(describe_study(table, pd.DataFrame(), reference, smoke=study.spec.smoke))
        print(f"No paired verdicts: the default reference {reference} is not in this bundle; --reference names one "
              f"of {', '.join(models)}.")
    return 0


MERGE_DESCRIPTION = """\
Merge SOURCE, a copy of the same study that went on elsewhere (another machine, a git worktree that ran while
the repository changed, a cluster's copy), into the bundle folder --out. The specs must be equal and every
cell the same run (identities checked, naming the differing fields). Only finished folds whose checksums match
are copied (never one being written), the manifest last; a fold both folders hold with other predictions is
kept as --out has it and reported. A cell finished in SOURCE is finished in --out, with its record in
bundle.json. Safe to run while SOURCE is still being written, and twice; refused while a process writes --out.
"""

MERGE_EXAMPLES = """\
examples:
  convat study merge /scratch/study-copy                     # into results/study
  convat study merge ../worktree/results/study --out results/study
"""


def _merge(args: argparse.Namespace) -> int:
    from convat.experiments.study import merge_study

    check_folder(args.out, what="bundle folder")
    source = Path(args.source)
    if not source.is_dir():
        raise UsageError("SOURCE", args.source, "is not a folder (a study bundle folder, holding bundle.json)")
    if source.resolve() == Path(args.out).resolve():
        raise UsageError("--out", args.out, "is SOURCE itself; merge another copy of the study into it")
    counts = merge_study(source, args.out)
    total = {"copied": 0, "present": 0, "finished": 0}
    for key, count in counts.items():
        total["copied"] += count.copied
        total["present"] += count.present
        total["finished"] += int(count.finished)
        notes = ([f"{len(count.differ)} differ from {args.out}'s, which are kept ({', '.join(count.differ)})"]
                 if count.differ else []) + (
            [f"{len(count.damaged)} damaged or unreadable in SOURCE, not copied ({', '.join(count.damaged)})"]
            if count.damaged else [])
        if count.copied or count.finished or notes:
            print(f"{key}: {count.copied} folds copied" + (", cell finished" if count.finished else "")
                  + "".join(f"; {n}" for n in notes))
    print(f"merged {source} into {args.out}: {total['copied']} folds copied, {total['present']} already there, "
          f"{total['finished']} cells finished (`convat study show {args.out}` for the table)")
    return 0


def _show(args: argparse.Namespace) -> int:
    return _show_folder(args.out, args.reference, args.n_boot)


def register(subparsers) -> None:
    from convat.commands.loso import _datasets, _flows, _profiles
    from convat.experiments.study import DEFAULT_MODELS

    p = subparsers.add_parser("study", help="the reference study (models x seeds x draws) as a result bundle",
                              description=DESCRIPTION, epilog=EXAMPLES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="study_command", required=True, metavar="ACTION")
    run = sub.add_parser("run", help="run or resume every cell of the study",
                         description=DESCRIPTION, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--dataset", default=RECIPE.dataset, choices=_datasets(),
                     help="dataset (default: synthme)")
    run.add_argument("--data-root", default=None, help="folder of the real datasets (default: $CONVAT_DATA)")
    run.add_argument("--profile", default="composite", choices=_profiles(),
                     help="SynthME profile (default: composite, 68 subjects, 442 clips)")
    run.add_argument("--data-seeds", type=int_at_least(0), nargs="+", default=[0], help="SynthME draws (default: 0)")
    run.add_argument("--train-seeds", type=int_at_least(0), nargs="+", default=[0, 1, 2],
                     help="training seeds of every deep model (default: 0 1 2)")
    run.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help="timm model names")
    run.add_argument("--no-linear", action="store_true", help="leave out the linear reference")
    run.add_argument("--img-size", type=int_at_least(8), default=RECIPE.img_size,
                     help=f"model input size (default: {RECIPE.img_size})")
    run.add_argument("--flow", default=RECIPE.flow, choices=_flows(),
                     help="optical-flow method (default: tvl1)")
    run.add_argument("--epochs", type=int_at_least(1), default=None,
                     help="fixed budget per fold in epochs instead of the recipe's steps")
    run.add_argument("--steps", type=int_at_least(1), default=None,
                     help=f"fixed budget per fold in optimiser steps (default: the recipe's, {RECIPE.steps})")
    run.add_argument("--device", default=RECIPE.device,
                     help=f"auto, cpu, cuda, cuda:N or mps (default {RECIPE.device})")
    run.add_argument("--parallel-folds", type=int_at_least(1), default=None,
                     help="folds trained at once in worker processes (default: one per CPU core, 1 thread each, "
                          "as the committed bundles were made; fewer workers get more threads each, which "
                          "changes the last bits of the probabilities)")
    run.add_argument("--backend", default="local", choices=["local", "submitit"],
                     help="where the deep cells run: this machine, or a Slurm job array (convat.sweep)")
    run.add_argument("--jobs", type=int_at_least(1), default=1, help="cells at once with the local backend")
    run.add_argument("--cluster", default=None, choices=["slurm", "local", "debug"],
                     help="submitit cluster: slurm (default on a Slurm host), local or debug (no Slurm); needs "
                          "--backend submitit")
    run.add_argument("--cells", nargs="+", default=None, metavar="CELL",
                     help="run only these cells of the study, e.g. convat_tiny:2 resnet_me:2 linear (MODEL:SEED, "
                          "MODEL:SEED:DRAW, linear[:DRAW]); the spec stays the whole study's, so machines that each "
                          "run some cells give bundles that `convat study merge` joins")
    run.add_argument("--out", default="results/study", help="bundle folder (default: results/study)")
    run.add_argument("--reference", default=DEFAULT_REFERENCE,
                     help=f"model compared with the others (default: {DEFAULT_REFERENCE})")
    run.add_argument("--n-boot", type=int_at_least(1), default=2000, help="bootstrap replicates (default: 2000)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(func=_run)
    show = sub.add_parser("show", help="mean +- SD over seeds, paired verdicts and staleness of a bundle")
    show.add_argument("out", nargs="?", default="results/study", help="bundle folder (default: results/study)")
    show.add_argument("--reference", default=DEFAULT_REFERENCE,
                      help=f"model compared with the others (default: {DEFAULT_REFERENCE})")
    show.add_argument("--n-boot", type=int_at_least(1), default=2000, help="bootstrap replicates (default: 2000)")
    show.set_defaults(func=_show)
    merge = sub.add_parser("merge", help="merge another copy of the same study (another machine, a worktree)",
                           description=MERGE_DESCRIPTION, epilog=MERGE_EXAMPLES,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    merge.add_argument("source", help="the bundle folder to take finished folds and cells from")
    merge.add_argument("--out", default="results/study", help="the bundle folder merged into (default: results/study)")
    merge.set_defaults(func=_merge)
