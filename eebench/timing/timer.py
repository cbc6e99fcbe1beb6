"""Wall-clock timing: perf_counter on CPU, CUDA events (after synchronising) on GPU."""
from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


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


def paired_runs(baseline: Callable[[], object], candidate: Callable[[], object], device: torch.device,
                warmup: int, repeats: int) -> tuple[list[float], list[float]]:
    """Time two workloads alternately in one process, so each ratio compares like with like."""
    for _ in range(warmup):
        baseline()
        candidate()
    base_times, cand_times = [], []
    for _ in range(repeats):
        base_times.append(elapsed_seconds(baseline, device))
        cand_times.append(elapsed_seconds(candidate, device))
    return base_times, cand_times
