"""``backbone.dtype=auto``: the precision a user would deploy on this hardware.

bfloat16 where the hardware computes it natively (CUDA devices that support it; x86 CPUs with
AVX512-BF16 or AMX-BF16), float32 otherwise: on a CPU without those instructions bfloat16 is
emulated and slower than float32, so nobody would deploy it there.
"""

from __future__ import annotations

from pathlib import Path

import torch

NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str]:
    """The CPU feature flags Linux reports; empty where there is no /proc/cpuinfo (macOS, Windows)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def native_bf16(device: torch.device, flags: set[str] | None = None) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool((cpu_flags() if flags is None else flags) & set(NATIVE_BF16_CPU_FLAGS))


def resolve_dtype(requested: str, device: torch.device) -> str:
    """The dtype name actually loaded: ``requested`` itself, or for "auto" the native choice."""
    if requested != "auto":
        return requested
    return "bfloat16" if native_bf16(device) else "float32"
