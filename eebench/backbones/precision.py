"""Precision: what ``backbone.dtype=auto`` loads, and the dtype rule at every stage boundary.

The rule, written once (the README's "Precision" section states the same):

- **backbone**: runs in its compute dtype ``D`` (``backbone.dtype``; ``auto`` resolved per device by ``resolve_dtype``).
- **hidden-state cache**: stored as ``head.training.state_dtype`` (storage only); read back as float32.
- **teacher** (the final norm + lm_head during training): runs in ``D`` on states cast to ``D`` (``to_compute``);
  its logits become float32 before the softmax and the KL.
- **heads and gates, training**: float32 parameters (master weights, so small AdamW steps are not rounded away);
  forwards in float32, or under bfloat16 autocast when ``head.training.precision=bfloat16``.
  ``precision=auto`` follows the backbone: bfloat16 exactly when ``D`` is bfloat16 (``training_precision``).
- **heads and gates, inference** (traces, lm-eval scoring, the engine, DSSD, ``EarlyExitModel.from_run``): cast to
  ``D`` when loaded, fed ``D`` hidden states; confidences and calibration are computed from float32 logits.
- **timing**: transformers greedy and the engine both run the backbone in ``D``.

``auto`` means what a user would deploy, which is the faster precision the device runs natively, not merely a
native one: on some bf16-native CPUs a bfloat16 matrix-vector product is slower than a float32 one. Where bfloat16
is native, a short probe times the backbone's own decode-shaped product in both dtypes and keeps the faster; the
decision and its reason are recorded (``DtypeChoice``) and remembered per machine in the cache, so the points of one
sweep agree; a busy CPU is never probed (float32 then, not remembered). Explicit dtypes are loaded exactly as asked.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from eebench.cache import cache_root, content_key, read_record, write_record

NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
# Where bf16 is native it must beat float32 by this margin: a tie goes to float32, the exact one.
PROBE_MARGIN = 0.95
PROBE_REPEATS = 100
BUSY_LOAD_PER_CORE = 0.5  # above this 1-minute load per core, a CPU probe times contention, not the hardware


@dataclass(frozen=True)
class DtypeChoice:
    """The dtype a backbone is loaded in, and why (recorded in results as ``backbone_dtype`` / its reason)."""

    dtype: str
    reason: str


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


def matvec_ms(dtype: torch.dtype, shape: tuple[int, int], device: torch.device, repeats: int = PROBE_REPEATS) -> float:
    """Fastest of ``repeats`` products of a ``shape`` matrix and a vector in ``dtype`` (the operation batch-1 decoding
    is made of). The fastest, not the median: other work on the machine only ever adds time, so the minimum is the
    hardware's own figure and a busy machine does not decide a precision it will then remember."""
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(shape, generator=generator).to(device=device, dtype=dtype)
    vector = torch.randn(1, shape[1], generator=generator).to(device=device, dtype=dtype)  # one token's hidden state
    times = []
    for _ in range(repeats + 3):  # the first calls warm up the kernels
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        torch.nn.functional.linear(vector, weight)  # the call a decode step makes
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times[3:]) * 1e3


def probe_choice(shape: tuple[int, int], device: torch.device, timer=matvec_ms) -> DtypeChoice:
    """float32 vs bfloat16 on this device, timed alternately on the backbone's decode shape; the faster wins."""
    fp32, bf16 = [], []
    for _ in range(3):
        fp32.append(timer(torch.float32, shape, device))
        bf16.append(timer(torch.bfloat16, shape, device))
    fast, slow = min(bf16), min(fp32)
    winner = "bfloat16" if fast < PROBE_MARGIN * slow else "float32"
    reason = (
        f"auto: bfloat16 is native on {device_label(device)}; a {shape[0]}x{shape[1]} matrix-vector product took "
        f"{slow:.3f} ms in float32 and {fast:.3f} ms in bfloat16, so {winner} is the faster deployment"
    )
    return DtypeChoice(winner, reason)


def device_label(device: torch.device, cpuinfo: str = "/proc/cpuinfo") -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        lines = Path(cpuinfo).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")
    return model or platform.processor() or platform.machine() or "this CPU"


def resolve_dtype(
    requested: str, device: torch.device, shape: tuple[int, int] = (1536, 576), flags: set[str] | None = None
) -> DtypeChoice:
    """The dtype actually loaded: ``requested`` (validated by BackboneConfig) itself, or for ``auto`` the faster
    native one (see the module doc)."""
    if requested != "auto":
        return DtypeChoice(requested, f"backbone.dtype={requested} (explicit)")
    if not native_bf16(device, flags):
        return DtypeChoice("float32", f"auto: {device_label(device)} has no native bfloat16 (emulated it is slower)")
    return remembered_probe(shape, device)


def machine_busy(device: torch.device) -> str:
    """Why a CPU probe now would measure other work rather than the hardware ('' when the CPU is quiet enough)."""
    if device.type != "cpu" or not hasattr(os, "getloadavg"):
        return ""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    return f"load average {load:.1f} on {cores} cores" if load > BUSY_LOAD_PER_CORE * cores else ""


def remembered_probe(shape: tuple[int, int], device: torch.device) -> DtypeChoice:
    """The probe's decision, kept in the cache per machine, torch version, thread count and shape. A busy CPU is not
    probed (other processes slow multi-threaded kernels unevenly, so the slower dtype can win): float32, the exact
    choice, for this process only, and the next quiet load probes."""
    machine = {
        "device": device_label(device),
        "flags": sorted(cpu_flags() & set(NATIVE_BF16_CPU_FLAGS)) if device.type == "cpu" else [],
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "shape": list(shape),
    }
    path = cache_root() / "precision" / f"{content_key(machine)}.json"
    try:
        return DtypeChoice(**json.loads(read_record(path) or ""))
    except (ValueError, TypeError):
        pass  # not probed yet on this machine (or a record that fails its checksum): probe now
    busy = machine_busy(device)
    if busy:
        return DtypeChoice("float32", f"auto: bfloat16 is native here but the CPU is busy ({busy}), so not probed: float32")
    choice = probe_choice(shape, device)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_record(path, json.dumps(asdict(choice)))  # checksummed, so `eebench cache verify` knows it
    return choice


def decode_shape(config) -> tuple[int, int]:
    """The backbone's MLP up-projection (intermediate x hidden): the largest matrix a decode step reads per block."""
    hidden = getattr(config, "hidden_size", None) or getattr(config, "n_embd", None) or 576
    inner = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None) or 4 * hidden
    return int(inner), int(hidden)


def training_precision(requested: str, backbone_dtype: str) -> str:
    """``head.training.precision``: ``auto`` trains under bfloat16 autocast exactly when the backbone is bfloat16."""
    if requested != "auto":
        return requested
    return "bfloat16" if backbone_dtype == "bfloat16" else "float32"


def to_compute(tensor: torch.Tensor, module: torch.nn.Module) -> torch.Tensor:
    """``tensor`` in the dtype of ``module``'s weights (a stage boundary: e.g. float32 states into a bf16 lm_head)."""
    weight = next(module.parameters(), None)
    return tensor if weight is None or tensor.dtype == weight.dtype else tensor.to(weight.dtype)
