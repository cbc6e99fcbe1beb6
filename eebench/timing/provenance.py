"""Where a timing was measured: code (git sha and whether the tree was dirty), packages, hardware, threads, load."""

from __future__ import annotations

import subprocess
from pathlib import Path

import torch

from eebench.timing.timer import cpu_model, load_average_1min, physical_cores
from eebench.tracking.results import collect_provenance


def git_dirty(root: Path | None = None) -> bool | None:
    """Whether tracked files differ from the commit (None without git): a dirty tree's sha does not name the code."""
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root or Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


def timing_provenance(device: str, seed: int) -> dict:
    return {
        **collect_provenance(device, seed),
        "git_dirty": git_dirty(),
        "cpu_model": cpu_model(),
        "physical_cores": physical_cores(),
        "threads": torch.get_num_threads(),
        "load_average_1min": load_average_1min(),
    }
