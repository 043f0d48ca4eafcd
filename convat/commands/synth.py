"""``convat synth``: describe a SynthME dataset."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    from convat.data.records import records_table
    from convat.data.synth import generate

    table = records_table(generate(args.profile, seed=args.seed))
    n_subjects = table.subject.nunique()
    print(f"SynthME profile {args.profile!r}, seed {args.seed}: {len(table)} clips, {n_subjects} subjects")
    print(table.groupby(["subject", "label"]).size().unstack(fill_value=0).to_string())
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("synth", help="describe a SynthME dataset (clips per subject and class)")
    p.add_argument("--profile", default="quick", help="SynthME profile: quick or composite (default: quick)")
    p.add_argument("--seed", type=int, default=0, help="generator seed (default: 0)")
    p.set_defaults(func=_run)
