"""Command line entry point: ``eebench <command> ...``.

Each subcommand is a ``register_<name>(subparsers)`` function that adds its parser and sets
``handler``; add new ones to ``COMMANDS``. Handlers return an exit code. User errors are raised as
``EEBenchError`` and printed as one ``error: ...`` line with exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from eebench.errors import EEBenchError, require

USAGE_ERROR = 2


def _existing_dirs(paths: list[str]) -> list[Path]:
    dirs = [Path(p) for p in paths]
    for folder in dirs:
        require(folder.is_dir(), f"{folder} is not a directory (expected a sweep or run directory)")
    return dirs


def run_report(args: argparse.Namespace) -> int:
    from eebench.reporting.report import ReportNotWritten, write_report  # keep `eebench --help` fast
    from eebench.tracking.wandb_runs import gather_sources, is_wandb_source, parse_wandb_source

    wandb_sources = [parse_wandb_source(source) for source in args.dirs if is_wandb_source(source)]
    local_dirs = _existing_dirs([source for source in args.dirs if not is_wandb_source(source)])
    require(
        args.out is not None or (len(local_dirs) == 1 and not wandb_sources),
        "several sources or a wandb: source given; choose where the report goes with --out DIR",
    )
    out_dir = Path(args.out) if args.out else local_dirs[0]
    sweep_dirs, skipped = gather_sources(local_dirs, wandb_sources, out_dir)
    try:
        report = write_report(sweep_dirs, out_dir, skipped, link_figures=args.link_figures)
    except ReportNotWritten as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"report written to {report}")
    return 0


def register_report(subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="write summary.csv, pareto.csv, hypervolume.csv, figures and report.md/.html/.pdf for sweep(s)"
    )
    parser.add_argument(
        "dirs",
        nargs="+",
        metavar="DIR",
        help="sweep (multirun), run or W&B (e.g. SWEEP/wandb) directories, "
        "or wandb:ENTITY/PROJECT[/GROUP] to download the runs' results from W&B",
    )
    parser.add_argument(
        "--out", metavar="DIR", default=None, help="output directory (default: the single DIR given; required otherwise)"
    )
    parser.add_argument(
        "--link-figures",
        action="store_true",
        help="report.html links figures/*.png instead of embedding them (smaller; the HTML then needs its folder)",
    )
    parser.set_defaults(handler=run_report)


def run_cache(args: argparse.Namespace) -> int:
    from datetime import datetime

    from eebench import cache

    if args.action == "clear":
        removed = cache.clear(args.kind, args.older_than)
        print(f"removed {len(removed)} entries from {cache.cache_root()}")
        return 0
    entries = [e for e in cache.list_entries() if args.kind is None or e["kind"] == args.kind]
    problems = 0
    for e in entries:
        when = datetime.fromtimestamp(e["mtime"]).strftime("%Y-%m-%d %H:%M")
        line = f"{e['kind']:<14} {e['key']:<34} {e['bytes'] / 2**20:9.1f} MiB  {when}  code={e['code'] or '-':<12} {e['state']}"
        if args.action == "verify":
            problem = cache.entry_check(e)
            problems += problem is not None
            line += f"  PROBLEM: {problem}" if problem else "  verified"
        print(line)
    print(f"{len(entries)} entries in {cache.cache_root()}" + (f", {problems} with problems" if args.action == "verify" else ""))
    return 1 if problems else 0


def register_cache(subparsers) -> None:
    parser = subparsers.add_parser(
        "cache", help="list, verify (checksums; exit 1 on problems) or clear cached artifacts (all kinds, temp folders too)"
    )
    parser.add_argument("action", choices=["ls", "verify", "clear"])
    parser.add_argument("--kind", default=None, help="only this kind of artifact, e.g. heads")
    parser.add_argument("--older-than", type=float, default=None, metavar="DAYS", help="only entries older than DAYS (clear)")
    parser.set_defaults(handler=run_cache)


def run_tiny_model(args: argparse.Namespace) -> int:
    from eebench.backbones.tiny import make_tiny_model

    out = make_tiny_model(args.arch, args.out, num_layers=args.layers)
    print(f"tiny random {args.arch} model written to {out}")
    return 0


def register_tiny_model(subparsers) -> None:
    from eebench.backbones.tiny import TINY_ARCHS

    parser = subparsers.add_parser("tiny-model", help="write a tiny random model (for smoke runs and tests)")
    parser.add_argument("arch", choices=TINY_ARCHS)
    parser.add_argument("out", metavar="DIR")
    parser.add_argument("--layers", type=int, default=6)
    parser.set_defaults(handler=run_tiny_model)


def run_families(args: argparse.Namespace) -> int:
    from eebench.backbones.families import markdown_table

    print(markdown_table() if args.markdown else markdown_table().replace("`", ""))
    return 0


def register_families(subparsers) -> None:
    parser = subparsers.add_parser("families", help="list the backbone families eebench supports (and refuses)")
    parser.add_argument("--markdown", action="store_true", help="print the README's markdown table")
    parser.set_defaults(handler=run_families)


COMMANDS: list[Callable] = [register_report, register_cache, register_tiny_model, register_families]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eebench", description="Early-exit LLM inference benchmark.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMANDS:
        register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help or bad usage; return its code instead
        return exc.code if isinstance(exc.code, int) else USAGE_ERROR
    try:
        return args.handler(args)
    except EEBenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
