"""Count the host synchronisations a run makes, on any device, a CPU included.

On CUDA, reading a tensor's value on the host (``.item()``, ``.tolist()``, ``bool(t)``, ``int(t)``, ``.numpy()``,
``.cpu()``, printing it), an op whose output shape depends on values (``nonzero``, boolean-mask indexing,
``masked_select``, ``unique``, ``torch.equal``), and a plain copy of host data to the device
(``torch.tensor(data, device=...)``; eebench/engine/host.py queues one instead) wait until every queued kernel has
run: the launch queue drains and the host's next launches no longer overlap the device's work. Early exit needs
some of them (whether a token leaves is a host decision), so their number per generated token is part of the
engine's cost on a GPU. This counter intercepts torch calls (a ``TorchFunctionMode``) on the watched device, so that
number is measured, and tested, without a GPU.

On a CPU run the source and target of ``.to()`` are one device, so ``.to()`` and ``copy_`` between host and device
cannot be told from no-ops and are not counted (``.cpu()`` is, and so is ``torch.tensor(host data, device=...)``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.overrides import TorchFunctionMode

# Calls that read a value on the host, whatever their arguments.
HOST_READS = frozenset(
    {"item", "tolist", "numpy", "cpu", "__bool__", "__int__", "__float__", "__index__", "__repr__", "__format__"}
)
# Calls whose output shape (or Python result) depends on the values, so the host waits for them.
VALUE_DEPENDENT = frozenset(
    {"nonzero", "argwhere", "masked_select", "unique", "unique_consecutive", "equal", "allclose", "is_nonzero"}
)
_INDEXING = frozenset({"__getitem__", "__setitem__"})  # synchronising only with a boolean-mask index
_FROM_HOST_DATA = frozenset({"tensor", "as_tensor"})  # synchronising when given host data and a device


def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _tensors(item)


def _boolean_index(args) -> bool:
    return len(args) > 1 and any(t.dtype == torch.bool for t in _tensors(args[1]))


def _copies_host_data(args, kwargs) -> bool:
    return kwargs.get("device") is not None and bool(args) and not isinstance(args[0], torch.Tensor)


def sync_kind(func, args, kwargs) -> str | None:
    """The name under which ``func(*args, **kwargs)`` is counted as a host synchronisation, or None."""
    name = getattr(func, "__name__", "")
    if name in HOST_READS or name in VALUE_DEPENDENT:
        return name
    if name in _INDEXING and _boolean_index(args):
        return f"{name}[bool mask]"
    if name in _FROM_HOST_DATA and _copies_host_data(args, kwargs):
        return f"{name}(host data, device=)"
    return None


def on_device(tensor: torch.Tensor | torch.device, device: torch.device) -> bool:
    where = tensor if isinstance(tensor, torch.device) else tensor.device
    return where.type == device.type and (device.index is None or where.index == device.index)


def _devices(args, kwargs):
    """Where a call works: its target device, or its first argument's."""
    if kwargs.get("device") is not None:
        yield torch.device(kwargs["device"])
    else:
        yield from (t.device for t in _tensors(args[:1]))


class SyncCounter(TorchFunctionMode):
    """``with SyncCounter(device) as counter: ...`` counts, by kind, the synchronising calls on that device's tensors."""

    def __init__(self, device):
        super().__init__()
        self.device = torch.device(device)
        self.calls: Counter = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        kind = sync_kind(func, args, kwargs)
        if kind is not None and any(on_device(d, self.device) for d in _devices(args, kwargs)):
            self.calls[kind] += 1
        return func(*args, **kwargs)

    @property
    def total(self) -> int:
        return sum(self.calls.values())


@dataclass(frozen=True)
class SyncCount:
    """Host synchronisations of one generation call and the new tokens it produced (every sequence)."""

    syncs: int
    tokens: int
    calls: dict


def count_generation(run: Callable[[], object], device) -> SyncCount:
    """Synchronisations of ``run()``, a call returning an engine ``GenerationOutput`` or a list of them."""
    with SyncCounter(device) as counter:
        output = run()
    outputs = output if isinstance(output, list) else [output]
    return SyncCount(counter.total, sum(sum(o.lengths) for o in outputs), dict(counter.calls))


def per_token(short: SyncCount, long: SyncCount) -> dict:
    """Synchronisations per new token: over the whole call (prompt pass included), and the marginal figure between
    two lengths (what each decoded token adds, the prompt pass cancelled out)."""
    return {
        "syncs_per_token": long.syncs / long.tokens,
        "marginal_syncs_per_token": (long.syncs - short.syncs) / (long.tokens - short.tokens),
        "syncs": long.syncs,
        "tokens": long.tokens,
        "calls": long.calls,
    }


def generation_syncs(generate_tokens: Callable[[int], object], device, short: int, long: int) -> dict:
    """``per_token`` of ``generate_tokens(n)`` (generation outputs of ``n`` new tokens per sequence) at two lengths."""
    return per_token(
        count_generation(lambda: generate_tokens(short), device), count_generation(lambda: generate_tokens(long), device)
    )
