"""Warnings that points do not compare: timings from several machines, points run in several precisions."""

from __future__ import annotations

import pandas as pd

from eebench.reporting.formatting import distinct
from eebench.reporting.speed import column, timed_points


def mixed_hardware_note(frame: pd.DataFrame) -> str:
    """A warning when timings come from several devices or hosts; empty when they do not. Untimed points (theoretical
    speedup only) measured nothing on their hardware, so they never make a report mixed."""
    timed = timed_points(frame)
    if timed.empty:
        return ""
    devices, hosts, cpus = distinct(timed["device"]), distinct(timed["hostname"]), distinct(column(timed, "cpu_model"))
    if len(devices) <= 1 and len(hosts) <= 1 and len(cpus) <= 1:
        return ""
    return (
        f"**Timings come from different machines** (devices: {', '.join(devices) or '?'}; "
        f"hosts: {', '.join(hosts) or '?'}; CPUs: {', '.join(cpus) or '?'}). "
        "Compare measured speedups and tokens/s only within one device/host."
    )


def mixed_precision_note(frame: pd.DataFrame) -> str:
    """A warning when the points ran in more than one precision; empty when they did not."""
    dtypes = distinct(column(frame, "backbone_dtype"))
    if len(dtypes) <= 1:
        return ""
    return (
        f"**Points run in different precisions** ({', '.join(dtypes)}): each family and front holds one precision "
        "(labels carry dtype=), and accuracy or speed compares fairly only within one."
    )


MIXED_HARDWARE_CAPTION = (
    "⚠ Timings come from different devices/hosts: compare measured speedups and tokens/s only within one device@host."
)


def mixed_hardware_caption(frame: pd.DataFrame) -> str:
    """A short form of the mixed-hardware warning for table and figure captions ('' if not mixed)."""
    return f" {MIXED_HARDWARE_CAPTION}" if mixed_hardware_note(frame) else ""
