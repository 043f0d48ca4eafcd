"""``convat synth``: describe a SynthME dataset."""

from __future__ import annotations

import argparse

from convat.commands import int_at_least


def _run(args: argparse.Namespace) -> int:
    from convat.data.records import records_table
    from convat.data.synth import GENERATOR_VERSION, generate

    table = records_table(generate(args.profile, seed=args.data_seed, label_scheme=args.label_scheme))
    n_subjects = table.subject.nunique()
    print(f"SynthME ({GENERATOR_VERSION}) profile {args.profile!r}, data seed {args.data_seed}, "
          f"scheme {args.label_scheme!r}: "
          f"{len(table)} clips, {n_subjects} subjects")
    print(table.groupby("label").size().rename("clips").to_string())
    print(table.groupby(["subject", "label"]).size().unstack(fill_value=0).to_string())
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("synth", help="describe a SynthME dataset (clips per subject and class)")
    from convat.data.synth import LABEL_SCHEMES, PROFILES

    p.add_argument("--profile", default="quick", choices=sorted(PROFILES), help="SynthME profile (default: quick)")
    p.add_argument("--data-seed", type=int_at_least(0), default=0,
                   help="the draw: SynthME's generator seed (default: 0, the draw the book reports)")
    p.add_argument("--label-scheme", default="megc3", choices=sorted(LABEL_SCHEMES),
                   help="megc3 (default: negative, positive, surprise) or 5class (CASME II-style)")
    p.set_defaults(func=_run)
