"""``convat data check``: validate a copy of a real dataset against its annotations and print the counts."""

from __future__ import annotations

import argparse
import sys


def _check(args: argparse.Namespace) -> int:
    import pandas as pd

    from convat.data.readers import DatasetError, class_counts, read_dataset, subject_counts

    options = {"layout": args.layout} if args.layout else {}
    try:
        records, report = read_dataset(args.dataset, args.root, scheme=args.scheme, strict=False, **options)
    except (DatasetError, ValueError, TypeError) as exc:
        print(f"convat data check: {exc}", file=sys.stderr)
        return 2
    print(report.format())
    with pd.option_context("display.max_rows", None, "display.width", 120):
        print("\nClips per class:")
        print(class_counts(records).to_string())
        if not args.no_subjects:
            print("\nClips per subject:")
            print(subject_counts(records).to_string())
    return 1 if report.errors else 0


def register(subparsers) -> None:
    from convat.data.readers import DATASETS

    p = subparsers.add_parser("data", help="real datasets: validate a copy against its annotations")
    sub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    check = sub.add_parser(
        "check", help="validate a dataset and print the report and the per-class, per-subject counts",
        description="Read a dataset the way the book does, check every annotation row against the frames on "
        "disk and print the validation report (dataset, file, row, frame of each problem) and the counts. "
        "Exit status: 0 clean, 1 annotation errors, 2 the dataset cannot be read at all.",
    )
    check.add_argument("--dataset", required=True, choices=DATASETS, help="which dataset")
    check.add_argument("--data-root", "--root", dest="root", default=None,
                       help="data root holding CASME2/, SAMM/, SMIC/ (default: $CONVAT_DATA; --root is the old name)")
    check.add_argument("--scheme", default=None, help="class scheme: megc3 or 5class (default: the dataset's own)")
    check.add_argument("--layout", default=None, choices=("auto", "raw", "cropped"), help="CASME II frame layout")
    check.add_argument("--no-subjects", action="store_true", help="leave out the per-subject table")
    check.set_defaults(func=_check)
