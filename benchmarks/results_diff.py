"""Compare two results.json files field by field, leaving out what legitimately differs between two runs of the
same configuration: provenance, wall-clock figures and the machine's paths.

    python benchmarks/results_diff.py BEFORE/results.json AFTER/results.json

Prints every field whose value differs (floats compared exactly: the same code on the same machine reproduces
them bit for bit), every field only one side has, and ends in one summary line; exit status 1 when a shared field
differs. Used to show that a refactor leaves a point's results unchanged.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# Keys (at any depth) that record when, where and how fast a run ran, not what it computed.
VOLATILE_KEYS = frozenset(
    {"provenance", "seconds", "build_seconds", "tokens_per_s", "build_tokens_per_s", "stage_seconds", "time"}
)
PATH_KEYS = frozenset({"backbone_path", "dir", "heads_dir", "calibration_trace_dir", "run_dir"})


def flatten(value, prefix: str = "") -> dict[str, object]:
    """Dotted key -> leaf value; a list of records is flattened by index (``heads[1].agreement``), so a field added
    to every record reads as added rather than as the whole list differing; other lists are leaves."""
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        leaves: dict[str, object] = {f"{prefix}.length": len(value)}
        for index, item in enumerate(value):
            leaves.update(flatten(item, f"{prefix}[{index}]"))
        return leaves
    if not isinstance(value, dict):
        return {prefix: value}
    leaves: dict[str, object] = {}
    for key, item in value.items():
        if key in VOLATILE_KEYS or key in PATH_KEYS:
            continue
        leaves.update(flatten(item, f"{prefix}.{key}" if prefix else key))
    return leaves


def compare(before: dict, after: dict) -> tuple[list[str], list[str], list[str], int]:
    """(differing shared keys, keys only before has, keys only after has, shared keys compared)."""
    old, new = flatten(before), flatten(after)
    shared = sorted(old.keys() & new.keys())
    differing = [key for key in shared if old[key] != new[key]]
    return differing, sorted(old.keys() - new.keys()), sorted(new.keys() - old.keys()), len(shared)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    for path in (args.before, args.after):
        if not path.is_file():
            parser.error(f"{path} is not a file; allowed: a results.json a run wrote")
    before, after = (json.loads(path.read_text(encoding="utf-8")) for path in (args.before, args.after))
    differing, only_before, only_after, compared = compare(before, after)
    old, new = flatten(before), flatten(after)
    for key in differing:
        print(f"differs  {key}: {str(old[key])[:80]} -> {str(new[key])[:80]}")
    for key in only_before:
        print(f"removed  {key}")
    for key in only_after:
        print(f"added    {key}: {str(new[key])[:80]}")
    print(
        f"{compared} shared fields compared: {len(differing)} differ; {len(only_before)} only in {args.before}, "
        f"{len(only_after)} only in {args.after}"
    )
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
