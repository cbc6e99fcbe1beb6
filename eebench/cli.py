"""Command line entry point: ``eebench <command> ...``.

Each subcommand is a ``register_<name>(subparsers)`` function that adds its parser and sets
``handler``; add new ones to ``COMMANDS``. Handlers return an exit code. User errors are raised as
``EEBenchError`` and printed as one ``error: ...`` line with exit code 2, never a traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from eebench.errors import EEBenchError, require

USAGE_ERROR = 2


def _existing_dirs(paths: list[str]) -> list[Path]:
    dirs = [Path(p) for p in paths]
    for folder in dirs:
        require(folder.is_dir(), f"{folder} is not a directory (expected a sweep or run directory)")
    return dirs


def run_report(args: argparse.Namespace) -> int:
    from eebench.reporting.report import write_report  # keep `eebench --help` fast

    sweep_dirs = _existing_dirs(args.dirs)
    require(args.out is not None or len(sweep_dirs) == 1,
            "several directories given; choose where the combined report goes with --out DIR")
    out_dir = Path(args.out) if args.out else sweep_dirs[0]
    report = write_report(sweep_dirs, out_dir)
    print(f"report written to {report}")
    return 0


def register_report(subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="write summary.csv, pareto.csv, pareto.png and report.md for sweep(s)")
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="sweep (multirun) or run directories")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="output directory (default: the single DIR given; required for several)")
    parser.set_defaults(handler=run_report)


COMMANDS: list[Callable] = [register_report]


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
