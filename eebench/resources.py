"""Cheap failure before expensive work: disk and memory a point's head training needs, checked before it starts.

A point that cannot fit its hidden-state cache on disk, or its heads' training state in memory, should say so in a
second, not an hour into caching states or after the first optimizer step runs out of memory.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from eebench.errors import require

GIB = 1024**3
# Per trainable parameter during training: float32 weights, gradient, AdamW's two moments, the best-state snapshot.
TRAINING_BYTES_PER_PARAMETER = 4 * 5
# Vocabulary-sized float32 tensors alive at once per step (logits, softmax, their gradients, the teacher's probs).
LIVE_VOCAB_TENSORS = 4


def gib(size: float) -> str:
    return f"{size / GIB:.2f} GiB"


def free_disk_bytes(path: Path) -> int:
    path = Path(path)
    while not path.exists():  # the folder an artifact will land in may not exist yet
        path = path.parent
    return shutil.disk_usage(path).free


def available_memory_bytes(device: torch.device) -> int | None:
    """Memory a new allocation can take on ``device`` (None where it cannot be told)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def require_disk(need: int, where: Path, what: str, remedy: str) -> None:
    free = free_disk_bytes(where)
    require(need <= free, f"{what} needs {gib(need)} on disk at {where} but {gib(free)} are free; {remedy}")


def require_memory(need: int, device: torch.device, what: str, remedy: str) -> None:
    free = available_memory_bytes(device)
    require(
        free is None or need <= free,
        f"{what} needs {gib(need)} of {device.type} memory but {gib(free or 0)} are available; {remedy}",
    )


def states_bytes(layers: int, tokens: int, hidden: int, state_dtype: str) -> int:
    return layers * tokens * hidden * torch.tensor([], dtype=getattr(torch, state_dtype)).element_size()


def training_bytes(trainable_parameters: int, batch_tokens: int, vocab: int) -> int:
    return trainable_parameters * TRAINING_BYTES_PER_PARAMETER + LIVE_VOCAB_TENSORS * batch_tokens * vocab * 4
