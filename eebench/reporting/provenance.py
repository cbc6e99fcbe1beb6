"""Provenance section: code version, packages, hardware, dates and a hash of every run's config."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from eebench.reporting.comparability import mixed_hardware_note
from eebench.reporting.document import Bullets, Callout, Heading, Table
from eebench.reporting.formatting import MISSING, distinct
from eebench.tracking.contract import RunResult

# The resolved config each job saved; JSON first because its bytes do not depend on YAML styling.
CONFIG_FILES = ("config.json", "config.yaml")
HASH_CHARS = 12


def config_hash(run_dir: str | Path | None) -> tuple[str, str]:
    """(file name, first HASH_CHARS of its sha256) for a run's saved config, or (–, –) if none."""
    for name in CONFIG_FILES:
        path = Path(run_dir or "") / name
        if run_dir and path.is_file():
            try:
                return name, hashlib.sha256(path.read_bytes()).hexdigest()[:HASH_CHARS]
            except OSError:
                continue
    return MISSING, MISSING


def package_versions(runs: list[RunResult]) -> list[str]:
    versions: dict[str, set] = {}
    for results in runs:
        packages = results.provenance.packages if results.provenance else {}
        for name, version in packages.items():
            versions.setdefault(name, set()).add("n/a" if version is None else str(version))
    return [f"{name} {' / '.join(sorted(found))}" for name, found in sorted(versions.items())]


def run_dates(frame: pd.DataFrame) -> str:
    times = pd.to_datetime(frame["time"], utc=True, errors="coerce").dropna() if not frame.empty else []
    return f"{min(times):%Y-%m-%d %H:%M} – {max(times):%Y-%m-%d %H:%M} UTC" if len(times) else "unknown"


def _short_run_dir(run_dir: str) -> str:
    parts = Path(str(run_dir)).parts
    return "/".join(parts[-2:]) if len(parts) >= 2 else str(run_dir)


def _short_time(value) -> str:
    time = pd.to_datetime(value, utc=True, errors="coerce")
    return MISSING if pd.isna(time) else f"{time:%Y-%m-%d %H:%M}"


def _runs_table(frame: pd.DataFrame) -> Table:
    rows = []
    for _, row in frame.iterrows():
        name, digest = config_hash(row["run_dir"])
        rows.append(
            [
                _short_run_dir(row["run_dir"]),
                row["family"],
                f"{row['threshold']:g}",
                name,
                digest,
                str(row["git_sha"] or MISSING)[:10],
                f"{row['device']}@{row['hostname']}",
                _short_time(row["time"]),
            ]
        )
    return Table(
        ["run", "family", "threshold", "config file", "config sha256", "git sha", "device@host", "date (UTC)"],
        rows,
        title="Runs and config hashes",
        caption=f"Config sha256: first {HASH_CHARS} hex digits of the run's saved config file; "
        "equal hashes mean identical configurations.",
    )


def provenance_section(frame: pd.DataFrame, runs: list[RunResult]) -> list:
    shas = distinct(frame["git_sha"]) if not frame.empty else []
    blocks = [
        Heading("Provenance"),
        Bullets(
            [
                f"eebench git sha: {', '.join(shas) or 'unknown'}"
                + (" (**runs come from different commits**)" if len(shas) > 1 else ""),
                f"Packages: {', '.join(package_versions(runs)) or 'unknown'}",
                f"Timing devices: {', '.join(distinct(frame['device'])) or 'unknown'}",
                f"Hosts: {', '.join(distinct(frame['hostname'])) or 'unknown'}",
                f"Timing strategy: {', '.join(distinct(frame['timing_strategy'])) or 'timing disabled'}",
                f"Run dates: {run_dates(frame)}",
                f"Report generated: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
            ]
        ),
    ]
    note = mixed_hardware_note(frame)
    blocks += [Callout(note)] if note else []
    return blocks + ([_runs_table(frame)] if not frame.empty else [])
