"""Wall-clock timing: perf_counter on CPU, CUDA events (after synchronising) on GPU; peak memory."""
from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

try:
    import resource
except ImportError:  # Windows has no getrusage
    resource = None

MIB = 2**20


def elapsed_seconds(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end) / 1000.0
    begin = time.perf_counter()
    fn()
    return time.perf_counter() - begin


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


@dataclass
class Runs:
    """Per workload: the seconds of each repeat, the peak CUDA allocation (None off CUDA), the last result."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    peak_cuda_bytes: dict[str, int | None] = field(default_factory=dict)
    last_result: dict[str, object] = field(default_factory=dict)


def interleaved_runs(workloads: dict[str, Callable[[], object]], device: torch.device,
                     warmup: int, repeats: int) -> Runs:
    """Time the workloads in turn, each repeat running all of them, so every ratio compares like with like.

    Interleaving spreads drifts in machine load (other processes, thermal throttling) evenly over the
    workloads instead of penalising whichever happened to run last.
    """
    for _ in range(warmup):
        for fn in workloads.values():
            fn()
    runs = Runs({name: [] for name in workloads}, {name: None for name in workloads})
    for _ in range(repeats):
        for name, fn in workloads.items():
            _timed_call(runs, name, fn, device)
    return runs


def _timed_call(runs: Runs, name: str, fn: Callable[[], object], device: torch.device) -> None:
    def call():
        runs.last_result[name] = fn()

    # The peak counter is reset and read outside the timed window, so it costs the timing nothing.
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    runs.seconds[name].append(elapsed_seconds(call, device))
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
        runs.peak_cuda_bytes[name] = max(peak, runs.peak_cuda_bytes[name] or 0)


def process_peak_rss_mib() -> float | None:
    """Peak resident memory of this whole process so far (monotone: never goes down), in MiB."""
    if resource is None:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / MIB if sys.platform == "darwin" else peak / 1024


def load_average_1min() -> float | None:
    """Runnable processes averaged over the last minute; other jobs competing for the CPU distort timings."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None
