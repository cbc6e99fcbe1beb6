"""Where a decoded token's time goes: wall time inside each part of the model, beside its weight reads alone.

After the timed schedule, each workload runs again with forward hooks on the modules of every part (the backbone's
blocks, the exit heads, the gates, the final norm + lm_head). A hook pair adds the wall time between a module's
entry and exit to its part and counts the call, step by step: a step runs from one token embedding to the next
(every step embeds its new tokens first), and a step that embeds more than one position per sequence is a prompt
pass, left out (prompts of one token would count as decode steps). What no part accounts for is ``other``: Python,
the engine's and transformers' bookkeeping, confidence metrics, host reads.

Beside each part stands what the cost model (eebench/engine/flops.py: a batch-1 step costs its weight reads)
predicts for it on this machine: the part's calls per token times the time of its modules' matrix products alone,
measured here on a one-row input. Their sum is the cost model's time per token; measured / predicted says how far
the engine (or transformers) is from it.

A step that never reaches the final lm_head left at an exit (for dssd: a draft step; the others verify).

On CUDA every hook synchronises, so parts add up, at the price of a slower profiled run than the timed one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import nn

from eebench.timing.workloads import Generated, Workload
from eebench.tracking.contract_timing import BreakdownPart, TimeBreakdown

PARTS = ("blocks", "exit_heads", "gates", "final_readout")
OTHER = "other"
MATVEC_ROUNDS = 5  # passes over a part's matrices; the fastest counts


def model_parts(lm, heads) -> dict[str, list[nn.Module]]:
    """The modules of every part. The final readout's norm is hooked on the model's own module, which
    transformers' forward calls directly and the engine's ``Readout`` wraps."""
    parts = {"blocks": list(lm.blocks), "final_readout": [*lm.norm, lm.lm_head]}
    if heads is not None:
        parts["exit_heads"] = list(heads.heads)
        parts["gates"] = list(heads.gates)
    return parts


@dataclass
class _Step:
    """One decoding step: from its token embedding to the next step's (or the end of the call)."""

    prompt: bool  # a prompt pass: it embeds more than one position per sequence
    seconds: float = 0.0
    part_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PARTS, 0.0))
    calls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PARTS, 0))
    reached_full: bool = False


class PartClock:
    """Forward hooks adding each part's wall time to the current step; the outermost hooked module of a call owns
    it (a lens head calling the shared lm_head is the head's time, not the final readout's)."""

    def __init__(self, parts: dict[str, list[nn.Module]], step_marker: nn.Module, device: torch.device):
        self.parts, self.step_marker = parts, step_marker
        self.sync = torch.cuda.synchronize if device.type == "cuda" else None
        self.final_head = parts["final_readout"][-1]
        self.steps: list[_Step] = []
        self._open: tuple[nn.Module, str, float] | None = None
        self._step_start = 0.0
        self._handles = []

    def _now(self) -> float:
        if self.sync is not None:
            self.sync()
        return time.perf_counter()

    def _enter(self, module: nn.Module, part: str):
        def hook(*_):
            if self._open is None and self.steps:
                self._open = (module, part, self._now())

        return hook

    def _leave(self, module: nn.Module):
        def hook(*_):
            if self._open is None or self._open[0] is not module:
                return
            _, part, start = self._open
            step = self.steps[-1]
            step.part_seconds[part] += self._now() - start
            self._open = None
            if part != "final_readout" or module is self.final_head:  # the final norm is part of lm_head's call
                step.calls[part] += 1
            step.reached_full |= module is self.final_head

        return hook

    def _new_step(self, _module, args):
        now = self._now()
        self._close_step(now)
        ids = args[0] if args else None
        self.steps.append(_Step(prompt=isinstance(ids, torch.Tensor) and ids.dim() > 0 and ids.shape[-1] > 1))
        self._step_start = now

    def _close_step(self, now: float) -> None:
        if self.steps:
            self.steps[-1].seconds = now - self._step_start

    def __enter__(self) -> PartClock:
        for part, modules in self.parts.items():
            for module in modules:
                self._handles.append(module.register_forward_pre_hook(self._enter(module, part)))
                self._handles.append(module.register_forward_hook(self._leave(module)))
        self._handles.append(self.step_marker.register_forward_pre_hook(self._new_step))
        return self

    def __exit__(self, *_):
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def run(self, workload: Workload, new_tokens: int) -> tuple[list[_Step], list]:
        """One call of the workload, profiled: its steps, and its outputs."""
        self.steps, self._open = [], None
        outputs = workload(new_tokens)
        self._close_step(self._now())
        return self.steps, outputs


def _weights(module: nn.Module) -> list[tuple[torch.Tensor, bool]]:
    """Every distinct matrix a call of ``module`` multiplies by, and whether it is stored [in, out] (GPT-2's
    Conv1D) rather than [out, in]. Embedding tables are looked up, not multiplied."""
    seen, found = set(), []
    for sub in module.modules():
        weight = getattr(sub, "weight", None)
        if isinstance(sub, nn.Embedding) or not isinstance(weight, torch.Tensor) or weight.dim() != 2:
            continue
        if id(weight) not in seen:
            seen.add(id(weight))
            found.append((weight, type(sub).__name__ == "Conv1D"))
    return found


def _products(modules: list[nn.Module]):
    """One one-row product with every matrix of ``modules``, in order, as one call."""
    pairs = [pair for module in modules for pair in _weights(module)]
    inputs = [torch.randn(1, w.shape[0] if transposed else w.shape[1], dtype=w.dtype, device=w.device) for w, transposed in pairs]

    def run():
        for (weight, transposed), x in zip(pairs, inputs):
            _ = x @ weight if transposed else nn.functional.linear(x, weight)

    return (run if pairs else None), bool(pairs) and pairs[0][0].device.type == "cuda"


@torch.no_grad()
def matvec_ms(modules: list[nn.Module]) -> float:
    """Milliseconds of the matrix products of one batch-1 call of each of ``modules`` alone: their weight reads.

    The products run one module after another, as a decoding step reaches them, so a matrix is read from memory
    rather than from a cache the previous product left it in (a block's matrices fit in a CPU's last-level cache;
    a model's do not). The fastest of a few rounds counts: the one least disturbed by the rest of the machine."""
    run, cuda = _products(modules)
    if run is None:
        return 0.0  # nothing multiplied: an embedding looks its rows up
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    run()
    rounds = []
    for _ in range(MATVEC_ROUNDS):
        sync()
        start = time.perf_counter()
        run()
        sync()
        rounds.append(time.perf_counter() - start)
    return 1000 * min(rounds)


def part_matvec_ms(parts: dict[str, list[nn.Module]]) -> dict[str, float]:
    """Per part, the weight-read time of one call: all its modules' products in turn, per module (the modules of a
    part have the same shapes; the final readout's norm and lm_head are one call)."""
    out = {}
    for part, modules in parts.items():
        if modules:
            out[part] = matvec_ms(modules) / (1 if part == "final_readout" else len(modules))
    return out


def profile_workload(name: str, workload: Workload, clock: PartClock, matvec: dict[str, float], new_tokens: int, repeats: int):
    """The decode breakdown of one workload: every step after a prompt pass, summed over ``repeats`` profiled runs."""
    decode: list[_Step] = []
    for _ in range(repeats):
        steps, outputs = clock.run(workload, new_tokens)
        decode += [step for step in steps if not step.prompt]
    per_token = 1000 / (repeats * Generated.of(outputs).decode_steps)  # ms per token of one sequence, from seconds in all runs
    seconds = {p: sum(step.part_seconds[p] for step in decode) for p in PARTS}
    calls = {p: sum(step.calls[p] for step in decode) * per_token / 1000 for p in PARTS}
    total = sum(step.seconds for step in decode)
    parts = [BreakdownPart(p, seconds[p] * per_token, calls[p], calls[p] * matvec[p]) for p in PARTS if p in matvec and calls[p]]
    parts.append(BreakdownPart(OTHER, (total - sum(seconds.values())) * per_token, None, 0.0))
    exited = [step for step in decode if not step.reached_full]
    return TimeBreakdown(
        workload=name,
        ms_per_token=total * per_token,
        weight_read_ms_per_token=sum(part.weight_read_ms_per_token for part in parts),
        parts=parts,
        exited_step_share=sum(step.seconds for step in exited) / total if total > 0 else 0.0,
        exited_steps_per_token=len(exited) * per_token / 1000,
        full_steps_per_token=(len(decode) - len(exited)) * per_token / 1000,
        profiled_repeats=repeats,
    )


def time_breakdowns(
    workloads: dict[str, Workload], lm, heads, device: torch.device, new_tokens: int, repeats: int
) -> list[TimeBreakdown]:
    """Every workload's decode breakdown, profiled one after another with the same hooks; none for 0 repeats."""
    if repeats == 0:
        return []
    parts = model_parts(lm, heads)
    matvec = part_matvec_ms(parts)
    with PartClock(parts, lm.token_embedding, device) as clock:
        return [profile_workload(name, w, clock, matvec, new_tokens, repeats) for name, w in workloads.items()]
