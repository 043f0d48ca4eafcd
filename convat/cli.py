"""The ``convat`` command line: ``convat --help`` lists the subcommands."""

from __future__ import annotations

import argparse
import sys


def _synth_info(args: argparse.Namespace) -> int:
    from convat.data.records import records_table
    from convat.data.synth import generate

    table = records_table(generate(args.profile, seed=args.seed))
    print(f"SynthME profile {args.profile!r}, seed {args.seed}: {len(table)} clips, {table.subject.nunique()} subjects")
    print(table.groupby(["subject", "label"]).size().unstack(fill_value=0).to_string())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convat",
        description="ConVAT micro-expression recognition: data, preprocessing, LOSO training, explanations.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    synth = sub.add_parser("synth", help="describe a SynthME dataset (clips per subject and class)")
    synth.add_argument("--profile", default="quick", help="SynthME profile: quick or composite (default: quick)")
    synth.add_argument("--seed", type=int, default=0, help="generator seed (default: 0)")
    synth.set_defaults(func=_synth_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
