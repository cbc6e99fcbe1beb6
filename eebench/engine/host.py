"""Host data onto the device without making the host wait for the device.

A plain host-to-CUDA copy (``torch.tensor(data, device="cuda")``, ``t.to("cuda")``) synchronises the stream: every
queued kernel finishes first, like a read of a value. The engine builds small index tensors from host data inside the
decode loop (cache rows, key positions of masks), so it stages them in pinned memory and queues the copy like any
kernel; the caching host allocator keeps each staging buffer until its copy has run.
"""

from __future__ import annotations

import torch


def to_device(data, device: torch.device) -> torch.Tensor:
    """``torch.tensor(data)`` on ``device``; on CUDA copied from pinned memory without a synchronisation."""
    host = torch.tensor(data)
    if device.type != "cuda":
        return host.to(device)
    return host.pin_memory().to(device, non_blocking=True)
