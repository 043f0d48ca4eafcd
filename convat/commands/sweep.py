"""``convat sweep``: LOSO runs over models x seeds x draws, locally or as a Slurm job array (submitit)."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Many LOSO runs: every combination of --models, --seeds (training seeds) and --draws (SynthME generation
seeds), each in its own run folder ROOT/<model>/seed<S>-draw<D>. Points are idempotent: rerun the same
command after a crash or a pre-empted job and finished points are read back, unfinished ones resume from their
first missing fold. The pooled scores of every point go to ROOT/sweep.csv.
"""

EXAMPLES = """\
examples:
  convat sweep --models convat_tiny ststnet --seeds 0 1 2 --out runs/sweep --jobs 2
  convat sweep --models convat_tiny --seeds 0 1 2 3 --draws 0 1 --profile composite --out runs/sweep \\
      --backend submitit --slurm-partition gpu --gpus 1 --timeout-min 60      # one Slurm array task per point
  convat sweep --models convat_tiny --seeds 0 1 --out runs/try --backend submitit --cluster local
"""


def _run(args: argparse.Namespace) -> int:
    from convat.sweep import SweepSpec, grid, run_sweep

    spec = SweepSpec(dataset=args.dataset, profile=args.profile, data_root=args.data_root, img_size=args.img_size,
                     flow=args.flow, epochs=args.epochs, device=args.device, strategy=args.strategy,
                     parallel_folds=args.parallel_folds)
    points = grid(args.models, args.seeds, args.draws)
    slurm = {"timeout_min": args.timeout_min}
    if args.slurm_partition:
        slurm["slurm_partition"] = args.slurm_partition
    if args.gpus:
        slurm["gpus_per_node"] = args.gpus
    if args.cpus:
        slurm["cpus_per_task"] = args.cpus
    print(f"{len(points)} runs ({len(args.models)} models x {len(args.seeds)} seeds x {len(args.draws)} draws), "
          f"backend {args.backend}")
    frame = run_sweep(points, spec, args.out, backend=args.backend, jobs=args.jobs, cluster=args.cluster,
                      slurm=slurm)
    cols = [c for c in ("model", "seed", "draw", "UF1", "UAR", "accuracy") if c in frame.columns]
    print(frame[cols].round(4).to_string(index=False))
    print(f"written: {args.out}/sweep.csv")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("sweep", help="LOSO runs over models x seeds x draws (local pool or Slurm array)",
                              description=DESCRIPTION, epilog=EXAMPLES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["convat_tiny"], help="timm model names (default convat_tiny)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0], help="training seeds (default 0)")
    p.add_argument("--draws", nargs="+", type=int, default=[0], help="SynthME generation seeds (default 0)")
    p.add_argument("--out", required=True, help="sweep folder (one run folder per point below it)")
    p.add_argument("--dataset", default="synthme", help="dataset name (default synthme)")
    p.add_argument("--data-root", default=None, help="folder of the real datasets (default: $CONVAT_DATA)")
    p.add_argument("--profile", default="quick", help="SynthME profile: quick or composite (default quick)")
    p.add_argument("--img-size", type=int, default=64, help="model input size (default 64)")
    p.add_argument("--flow", default="tvl1", help="optical-flow method (default tvl1)")
    p.add_argument("--epochs", type=int, default=30, help="epochs per fold (default 30)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default auto)")
    p.add_argument("--strategy", default="auto", choices=["auto", "sequential", "pool", "batched"],
                   help="how each run executes its folds (see convat loso --help)")
    p.add_argument("--parallel-folds", type=int, default=1, help="fold workers within each run (default 1)")
    p.add_argument("--backend", default="local", choices=["local", "submitit"],
                   help="local: worker pool on this machine; submitit: a Slurm job array (default local)")
    p.add_argument("--jobs", type=int, default=1, help="local backend: runs at a time (default 1)")
    p.add_argument("--cluster", default=None, choices=[None, "slurm", "local", "debug"],
                   help="submitit executor (default: Slurm when available, else local)")
    p.add_argument("--slurm-partition", default=None, help="Slurm partition")
    p.add_argument("--gpus", type=int, default=0, help="GPUs per array task")
    p.add_argument("--cpus", type=int, default=0, help="CPUs per array task")
    p.add_argument("--timeout-min", type=int, default=240, help="time limit per array task in minutes")
    p.set_defaults(func=_run)
