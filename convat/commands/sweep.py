"""``convat sweep``: LOSO runs over models x seeds x draws, locally or as a Slurm job array (submitit)."""

from __future__ import annotations

import argparse

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
from convat.sweep import SLURM_TIMEOUT_MIN

DESCRIPTION = """\
Many LOSO runs: every combination of --models, --train-seeds and --data-seeds (SynthME draws), each in its
own run folder ROOT/<model>/seed<S>-draw<D> (S the training seed, D the data seed). Everything else is the
reference recipe (convat.recipe.RECIPE) unless a flag changes it. Points are idempotent: rerun the same
command after a crash or a pre-empted job and finished points are read back, unfinished ones resume from their
first missing fold. The pooled scores of every point go to ROOT/sweep.csv.
"""

EXAMPLES = """\
examples:
  convat sweep --models convat_tiny ststnet --train-seeds 0 1 2 --out runs/sweep --jobs 2
  convat sweep --models convat_tiny --train-seeds 0 1 2 3 --data-seeds 0 1 --profile composite --out runs/sweep \\
      --backend submitit --slurm-partition gpu --gpus 1 --timeout-min 60      # one Slurm array task per point
  convat sweep --models convat_tiny --train-seeds 0 1 --out runs/try --backend submitit --cluster local
"""


def validate(args: argparse.Namespace) -> None:
    """What argparse cannot check, for every point before any of them runs: the model names, the device, the
    sweep folder, repeated seeds or draws, and one budget (raises :class:`UsageError` naming the flag)."""
    check_models(args.models)
    check_device(args.device, here=args.backend == "local")  # submitit: the nodes have the GPUs
    check_folder(args.out, what="sweep folder")
    check_data_root(args.dataset, args.data_root)
    check_distinct(args.train_seeds, "--train-seeds")
    check_distinct(args.data_seeds, "--data-seeds")
    check_distinct(args.models, "--models")
    if args.steps is not None and args.epochs is not None:
        raise UsageError("--steps", args.steps, "and --epochs are two budgets; give one (default: the recipe's)")
    if args.cluster is not None and args.backend != "submitit":
        raise UsageError("--cluster", args.cluster, "chooses a submitit executor; it needs --backend submitit")
    if args.backend != "submitit":  # the array task's resources mean nothing to the local backend
        for flag, value in (("--slurm-partition", args.slurm_partition), ("--gpus", args.gpus), ("--cpus", args.cpus),
                            ("--timeout-min", args.timeout_min)):
            if value is not None:  # given at all, even at its Slurm default: it would be ignored here
                raise UsageError(flag, value, "sets a Slurm array task's resources; it needs --backend submitit")


def _run(args: argparse.Namespace) -> int:
    from convat.sweep import SweepSpec, grid, run_sweep

    validate(args)
    spec = SweepSpec(dataset=args.dataset, profile=args.profile, data_root=args.data_root, img_size=args.img_size,
                     flow=args.flow, epochs=args.epochs, steps=args.steps, device=args.device, strategy=args.strategy,
                     parallel_folds=args.parallel_folds)
    points = grid(args.models, args.train_seeds, args.data_seeds)
    slurm = {}  # only what was given: convat.sweep fills in the time limit (SLURM_TIMEOUT_MIN) and the rest
    if args.timeout_min is not None:
        slurm["timeout_min"] = args.timeout_min
    if args.slurm_partition:
        slurm["slurm_partition"] = args.slurm_partition
    if args.gpus:
        slurm["gpus_per_node"] = args.gpus
    if args.cpus:
        slurm["cpus_per_task"] = args.cpus
    print(f"{len(points)} runs ({len(args.models)} models x {len(args.train_seeds)} training seeds x "
          f"{len(args.data_seeds)} data seeds), "
          f"backend {args.backend}")
    from tqdm.auto import tqdm

    bar = tqdm(total=len(points), desc="sweep", unit="run", disable=args.quiet, position=0)

    def done(point, row) -> None:  # each point as it finishes, with its score
        bar.update(1)
        bar.write(f"{point.model} seed {point.seed} draw {point.draw}: UF1 {row.get('UF1', float('nan')):.4f} "
                  f"({row['folder']})")

    try:
        frame = run_sweep(points, spec, args.out, backend=args.backend, jobs=args.jobs, cluster=args.cluster,
                          slurm=slurm, on_done=done, progress=not args.quiet)
    finally:
        bar.close()
    cols = [c for c in ("model", "seed", "draw", "UF1", "UAR", "accuracy") if c in frame.columns]
    print(frame[cols].round(4).to_string(index=False))
    print(f"written: {args.out}/sweep.csv")
    return 0


def register(subparsers) -> None:
    from convat.commands.loso import _datasets, _flows, _profiles

    p = subparsers.add_parser("sweep", help="LOSO runs over models x seeds x draws (local pool or Slurm array)",
                              description=DESCRIPTION, epilog=EXAMPLES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=[RECIPE.model], help=f"timm model names (default {RECIPE.model})")
    p.add_argument("--train-seeds", nargs="+", type=int_at_least(0), default=[RECIPE.train_seed],
                   help=f"training seeds, each >= 0 and given once (default {RECIPE.train_seed})")
    p.add_argument("--data-seeds", nargs="+", type=int_at_least(0), default=[RECIPE.data_seed],
                   help=f"SynthME draws, each >= 0 and given once (default {RECIPE.data_seed}; a real dataset has one)")
    p.add_argument("--out", required=True, help="sweep folder (one run folder per point below it)")
    p.add_argument("--dataset", default=RECIPE.dataset, choices=_datasets(),
                   help=f"dataset name (default {RECIPE.dataset})")
    p.add_argument("--data-root", default=None, help="folder of the real datasets (default: $CONVAT_DATA)")
    p.add_argument("--profile", default=RECIPE.profile, choices=_profiles(),
                   help=f"SynthME profile (default {RECIPE.profile})")
    p.add_argument("--img-size", type=int_at_least(8), default=RECIPE.img_size,
                   help=f"model input size, >= 8 (default {RECIPE.img_size})")
    p.add_argument("--flow", default=RECIPE.flow, choices=_flows(), help=f"optical-flow method (default {RECIPE.flow})")
    p.add_argument("--epochs", type=int_at_least(1), default=None,
                   help="epochs per fold (default: the recipe's budget for the dataset and profile)")
    p.add_argument("--steps", type=int_at_least(1), default=None,
                   help=f"optimiser steps per fold instead (the recipe's budget is {RECIPE.steps} steps, "
                        f"{RECIPE.smoke_epochs} epochs on the quick profile)")
    p.add_argument("--device", default=RECIPE.device, help=f"auto, cpu, cuda, cuda:N or mps (default {RECIPE.device})")
    p.add_argument("--strategy", default="auto", choices=["auto", "sequential", "pool", "batched"],
                   help="how each run executes its folds (see convat loso --help)")
    p.add_argument("--parallel-folds", type=int_at_least(1), default=1,
                   help="fold workers within each run (default 1)")
    p.add_argument("--backend", default="local", choices=["local", "submitit"],
                   help="local: worker pool on this machine; submitit: a Slurm job array (default local)")
    p.add_argument("--jobs", type=int_at_least(1), default=1, help="local backend: runs at a time (default 1)")
    p.add_argument("--cluster", default=None, choices=["slurm", "local", "debug"],
                   help="submitit executor (default: Slurm when available, else local); needs --backend submitit")
    p.add_argument("--slurm-partition", default=None, help="Slurm partition")
    p.add_argument("--gpus", type=int_at_least(0), default=None, help="GPUs per array task (default: none)")
    p.add_argument("--cpus", type=int_at_least(0), default=None,
                   help="CPUs per array task (default: the cluster's)")
    p.add_argument("--timeout-min", type=int_at_least(1), default=None,
                   help=f"time limit per array task in minutes (default {SLURM_TIMEOUT_MIN})")
    p.add_argument("--quiet", action="store_true", help="no progress bars and no line per finished run")
    p.set_defaults(func=_run)
