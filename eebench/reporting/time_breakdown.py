"""Where the time goes: per timed point, a decoded token's measured time by part beside the cost model's weight reads.

The cost model (eebench/engine/flops.py) says a batch-1 step costs its weight reads; the breakdown
(eebench/timing/breakdown.py) measures each part's wall time and times the same parts' matrix products alone. A
reader sees which part an exit saves, what it costs to decide, and how much of each token is neither (other).
"""

from __future__ import annotations

from eebench.reporting.document import Heading, Paragraph, Table
from eebench.reporting.formatting import fmt
from eebench.tracking.contract import RunResult
from eebench.tracking.contract_timing import TimeBreakdown

PART_NAMES = {
    "blocks": "blocks",
    "exit_heads": "exit heads (readout projections)",
    "gates": "gates",
    "final_readout": "final norm + lm_head",
    "other": "other (Python, bookkeeping, metrics, host reads)",
}
WORKLOAD_NAMES = {"transformers": "transformers greedy", "full": "engine, full depth", "early_exit": "early exit"}
INTRO = (
    "Each timed point's workloads ran again after the timed schedule with hooks on every part of the model. "
    "Per decoded token: measured ms inside the part (calls per token), and the cost model's prediction, the same "
    "calls' matrix products alone timed on the same machine (`wr`). *Other* is the time no part accounts for. "
    "Profiled runs are a little slower than the timed ones (the hooks), so the totals can sit above the timed ms/token."
)


def point_title(run: RunResult) -> str:
    timing = run.timing
    readout = run.readout if not run.readout_options else f"{run.readout}:{fmt_options(run.readout_options)}"
    return (
        f"{run.backbone}, {run.head}+{readout}, {run.confidence} @ {run.threshold:g}, {timing.strategy} "
        f"({timing.dtype}, {timing.cpu_model or timing.device})"
    )


def fmt_options(options: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(options.items()))


def _cell(breakdown: TimeBreakdown, part: str) -> str:
    found = next((p for p in breakdown.parts if p.part == part), None)
    if found is None:
        return "–"
    calls = "" if found.calls_per_token is None else f" ({fmt(found.calls_per_token, '.1f')})"
    predicted = "" if part == "other" else f", wr {fmt(found.weight_read_ms_per_token, '.1f')}"
    return f"{fmt(found.ms_per_token, '.1f')}{calls}{predicted}"


def breakdown_table(run: RunResult) -> Table:
    workloads = run.timing.breakdown
    parts = [p for p in PART_NAMES if any(p == part.part for b in workloads for part in b.parts)]
    rows = [[PART_NAMES[p]] + [_cell(b, p) for b in workloads] for p in parts]
    rows.append(
        ["total (cost model)"] + [f"{fmt(b.ms_per_token, '.1f')} ({fmt(b.weight_read_ms_per_token, '.1f')})" for b in workloads]
    )
    exited = [b for b in workloads if b.exited_steps_per_token > 0]
    caption = "; ".join(
        f"{WORKLOAD_NAMES.get(b.workload, b.workload)}: {b.exited_step_share:.0%} of decode time in steps that left "
        f"at an exit ({b.exited_steps_per_token:.2f} per token), {b.full_steps_per_token:.2f} full-depth steps per token"
        for b in exited
    )
    if run.timing.strategy == "dssd" and exited:
        caption += " (dssd: exited steps draft, full-depth steps verify)"
    headers = ["part: ms per token (calls), wr = weight reads alone"] + [
        WORKLOAD_NAMES.get(b.workload, b.workload) for b in workloads
    ]
    return Table(headers, rows, title=point_title(run), caption=caption)


def time_breakdown_section(runs: list[RunResult]) -> list:
    timed = [r for r in runs if r.timing is not None and r.timing.breakdown]
    if not timed:
        return []
    return [Heading("Where the time goes"), Paragraph(INTRO), *[breakdown_table(r) for r in timed]]
