"""Wall-clock timing: perf_counter on CPU, CUDA events (after synchronising) on GPU; peak memory."""

from __future__ import annotations

import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

try:
    import resource
except ImportError:  # Windows has no getrusage
    resource = None

MIB = 2**20


def elapsed_seconds(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        stream = torch.cuda.current_stream(device)  # the model's device, which need not be the current one
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(stream)
        fn()
        end.record(stream)
        torch.cuda.synchronize(device)
        return start.elapsed_time(end) / 1000.0
    begin = time.perf_counter()
    fn()
    return time.perf_counter() - begin


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


@dataclass
class Runs:
    """Per workload: the seconds of each repeat, the peak CUDA allocation (None off CUDA), the last result;
    and the order the workloads ran in, per repeat."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    peak_cuda_bytes: dict[str, int | None] = field(default_factory=dict)
    last_result: dict[str, object] = field(default_factory=dict)
    orders: list[list[str]] = field(default_factory=list)


def repeat_orders(names: list[str], repeats: int, seed: int) -> list[list[str]]:
    """A fresh random order of the workloads for every repeat, reproducible from ``seed``."""
    rng = random.Random(seed)
    return [rng.sample(names, len(names)) for _ in range(repeats)]


def interleaved_runs(
    workloads: dict[str, Callable[[], object]], device: torch.device, warmup: int, repeats: int, seed: int = 0
) -> Runs:
    """Time the workloads in turn, each repeat running all of them, so every ratio compares like with like.

    Interleaving spreads drifts in machine load (other processes, thermal throttling) evenly over the
    workloads; a seeded random order per repeat also keeps a fixed position (always right after a
    given other workload, whose caches or allocations it inherits) from biasing one of them.
    """
    for _ in range(warmup):
        for fn in workloads.values():
            fn()
    runs = Runs({name: [] for name in workloads}, {name: None for name in workloads})
    runs.orders = repeat_orders(list(workloads), repeats, seed)
    for order in runs.orders:
        for name in order:
            _timed_call(runs, name, workloads[name], device)
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


def physical_cores(cpuinfo: str = "/proc/cpuinfo") -> int:
    """Physical cores this process may use: hyperthread siblings share one core's arithmetic units, so
    more threads than cores only adds contention. Falls back to the logical CPU count off Linux."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return usable
    cores, physical = set(), "0"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "physical id":
            physical = value.strip()
        elif key.strip() == "core id":
            cores.add((physical, value.strip()))
    return max(1, min(usable, len(cores) or usable))


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str | None:
    try:
        for line in Path(cpuinfo).read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


@contextmanager
def torch_threads(threads: int | None):
    """Run with ``threads`` intra-op threads (None: physical cores), restoring the previous count after.
    Yields the count in force, which is what the timing records."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads or physical_cores())
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)
