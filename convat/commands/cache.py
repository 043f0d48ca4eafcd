"""``convat cache``: what the cache folder (``$CONVAT_CACHE``) holds, and clearing it (all or down to a size)."""

from __future__ import annotations

import argparse


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _root(args: argparse.Namespace):
    from pathlib import Path

    from convat.commands import check_folder
    from convat.runstore import default_cache_dir

    check_folder(args.root or None, "--cache-dir", "cache folder")  # empty: the default cache
    return Path(args.root) if args.root else default_cache_dir()


def _info(args: argparse.Namespace) -> int:
    from convat.runstore import cache_info

    root = _root(args)
    info = cache_info(root)
    total = sum(b for _, b in info.values())
    print(f"cache {root}: {sum(c for c, _ in info.values())} entries, {_human(total)}")
    for kind in sorted(info):
        count, size = info[kind]
        print(f"  {kind:8s} {count:6d}  {_human(size)}")
    return 0


def _clear(args: argparse.Namespace) -> int:
    from convat.runstore import cache_entries, clear_cache, in_use

    root = _root(args)
    removed, freed = clear_cache(root, args.max_size)
    cap = f" (down to at most {_human(args.max_size)})" if args.max_size is not None else ""
    print(f"cache {root}: removed {removed} entries, {_human(freed)}{cap}")
    kept = [path for kind, path, _, _ in cache_entries(root) if in_use(kind, path)]
    if kept:
        print(f"  kept {len(kept)} in use (a live process, or another machine's within a day of its last change): "
              + ", ".join(str(p.relative_to(root)) for p in kept))
    return 0


def _size(text: str) -> int:
    from convat.runstore import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(subparsers) -> None:
    p = subparsers.add_parser("cache", help="list or clear the cache of tensors, runs and explanation weights",
                              description="The cache folder is $CONVAT_CACHE (default ~/.cache/convat). Only "
                              "entries convat writes are listed or removed; a run folder locked by a live "
                              "process is kept.")
    sub = p.add_subparsers(dest="cache_command", required=True, metavar="ACTION")
    info = sub.add_parser("info", help="entries and sizes per kind (tensor, run, weights, damaged, tmp)")
    info.add_argument("--cache-dir", "--root", default=None, dest="root",
                      help="cache folder (default: $CONVAT_CACHE; --root is the old name)")
    info.set_defaults(func=_info)
    clear = sub.add_parser("clear", help="remove entries: all, or the least recently used down to --max-size")
    clear.add_argument("--cache-dir", "--root", default=None, dest="root",
                      help="cache folder (default: $CONVAT_CACHE; --root is the old name)")
    clear.add_argument("--max-size", type=_size, default=None,
                       help="keep the most recently used entries up to this size, e.g. 500M or 2G")
    clear.set_defaults(func=_clear)
