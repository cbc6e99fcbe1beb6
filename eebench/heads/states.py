"""Where head training reads hidden states from: a one-off cache on disk, or the backbone itself.

The backbone is frozen, so the states heads and gates learn from depend only on (backbone, tokens, exit layers).
``cached_states`` runs the backbone once over the training tokens and writes, per exit layer and for the last block,
a memory-mapped ``.npy`` in half precision under the artifact cache (kind ``hidden_states``); every head type, every
gate and every later run then reads batches from disk. ``LiveStates`` runs the backbone per batch instead (the
reference path, used to show both give the same heads).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from eebench.backbones.states import block_outputs
from eebench.cache import Artifact
from eebench.errors import EEBenchError
from eebench.resources import require_disk, states_bytes

STATE_FORMAT = 1
META = "states.json"
# numpy has no bfloat16: such states are stored as their raw 16 bits and reinterpreted on load.
_STORAGE = {"float16": (np.float16, None), "bfloat16": (np.uint16, torch.bfloat16), "float32": (np.float32, None)}


class LiveStates:
    """Runs the frozen backbone for every batch (what training did before the cache existed)."""

    def __init__(self, layered, tokens: torch.Tensor, exit_layers: list[int]):
        self.layered, self.tokens, self.exit_layers = layered, tokens, list(exit_layers)
        self.device = layered.lm_head.weight.device

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def seq_len(self) -> int:
        return self.tokens.shape[1]

    def batch(self, rows: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(final block output, [output of each exit layer]) for the given sequences, float32 on the model's device."""
        layers = [*self.exit_layers, self.layered.num_layers - 1]
        states = block_outputs(self.layered, self.tokens[rows].to(self.device), layers)
        return states[-1].float(), [s.float() for s in states[:-1]]


class CachedStates(LiveStates):
    """Batches read from memory-mapped state files written once by ``cached_states``."""

    def __init__(self, layered, directory: Path, exit_layers: list[int]):
        self.layered, self.directory, self.exit_layers = layered, Path(directory), list(exit_layers)
        self.device = layered.lm_head.weight.device
        self.meta = json.loads((self.directory / META).read_text())
        self.arrays = {int(k): np.load(self.directory / name, mmap_mode="r") for k, name in self.meta["files"].items()}
        self.final = self.arrays[layered.num_layers - 1]

    def __len__(self) -> int:
        return self.final.shape[0]

    @property
    def seq_len(self) -> int:
        return self.final.shape[1]

    def _read(self, layer: int, rows: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(self.arrays[layer][rows]))
        view_as = _STORAGE[self.meta["dtype"]][1]
        tensor = tensor.view(view_as) if view_as is not None else tensor
        return tensor.to(self.device).float()

    def batch(self, rows: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        picks = rows.numpy()
        return self._read(self.layered.num_layers - 1, picks), [self._read(layer, picks) for layer in self.exit_layers]


HIDDEN_STATES = Artifact(
    kind="hidden_states",
    builder=__name__,
    inputs={
        "backbone": "the backbone's identity",
        "tokens": "a hash of the training token ids",
        "shape": "their shape (sequences x tokens)",
        "layers": "the exit layers and the last block",
        "dtype": "`head.training.state_dtype`",
        "format": "the version of the state files' layout",
    },
    code=("eebench.backbones.states", "eebench.backbones.layered", "eebench.backbones.families"),
)


def tokens_digest(tokens: torch.Tensor) -> str:
    return hashlib.sha256(tokens.to(torch.int64).contiguous().numpy().tobytes()).hexdigest()[:16]


def states_spec(identity: dict, tokens: torch.Tensor, layers: list[int], dtype: str) -> dict:
    return {
        "backbone": identity,
        "tokens": tokens_digest(tokens),
        "shape": list(tokens.shape),
        "layers": layers,
        "dtype": dtype,
        "format": STATE_FORMAT,
    }


def cached_states(
    backbone, tokens: torch.Tensor, exit_layers: list[int], dtype: str = "float16", batch_size: int = 8
) -> CachedStates:
    """States of ``exit_layers`` and the last block for ``tokens``: built once, then read from the artifact cache."""
    layers = sorted({*exit_layers, backbone.num_layers - 1})
    spec = states_spec(backbone.identity, tokens, layers, dtype)

    def build(tmp: Path) -> None:
        need = states_bytes(len(layers), tokens.numel(), backbone.layered.hidden_size, dtype)
        require_disk(
            need,
            tmp,
            f"the hidden-state cache ({len(layers)} layers x {tokens.numel()} tokens x {backbone.layered.hidden_size} x {dtype})",
            "allowed: free space there, EEBENCH_CACHE on a larger disk, a smaller data.train_sequences or "
            "head.training.state_dtype=float16",
        )
        write_states(backbone.layered, tokens, spec, tmp, batch_size)

    directory = HIDDEN_STATES.get_or_build(spec, build)
    problem = mismatch(directory, spec, backbone.layered.hidden_size)
    if problem:  # never train from states of another backbone or text: rebuild them once
        print(f"eebench: cached hidden states in {directory} do not match this run ({problem}); rebuilding them")
        shutil.rmtree(directory)
        directory = HIDDEN_STATES.get_or_build(spec, build)
        problem = mismatch(directory, spec, backbone.layered.hidden_size)
        if problem:
            raise EEBenchError(f"cached hidden states in {directory} do not match this run ({problem}) even after a rebuild")
    return CachedStates(backbone.layered, directory, exit_layers)


def mismatch(directory: Path, spec: dict, hidden_size: int) -> str:
    """Why the state files in ``directory`` cannot serve ``spec`` ('' when they can)."""
    try:
        meta = json.loads((Path(directory) / META).read_text())
        shapes = {layer: np.load(Path(directory) / name, mmap_mode="r").shape for layer, name in meta["files"].items()}
    except (OSError, ValueError, KeyError) as exc:
        return f"unreadable: {type(exc).__name__}"
    if meta.get("spec") != json.loads(json.dumps(spec, default=str)):
        return "written for another backbone, text, layer set or dtype"
    expected = (*spec["shape"], hidden_size)
    if {str(layer) for layer in spec["layers"]} != set(shapes) or any(s != expected for s in shapes.values()):
        return f"shapes {sorted(set(shapes.values()))} instead of {expected}"
    return ""


def write_states(layered, tokens: torch.Tensor, spec: dict, out: Path, batch_size: int) -> None:
    """Run the backbone once over ``tokens`` and write one memory-mapped array per layer of ``spec``."""
    layers, dtype = spec["layers"], spec["dtype"]
    np_dtype, torch_view = _STORAGE[dtype]
    shape = (*tokens.shape, layered.hidden_size)
    files = {str(layer): f"layer{layer:03d}.npy" for layer in layers}
    arrays = {
        layer: np.lib.format.open_memmap(out / files[str(layer)], mode="w+", dtype=np_dtype, shape=shape) for layer in layers
    }
    device = layered.lm_head.weight.device
    started = time.perf_counter()
    for start in tqdm(range(0, len(tokens), batch_size), desc="caching hidden states", unit="batch"):
        outputs = block_outputs(layered, tokens[start : start + batch_size].to(device), layers)
        for layer, hidden in zip(layers, outputs):
            arrays[layer][start : start + len(hidden)] = _to_storage(hidden, dtype, torch_view)
    for array in arrays.values():
        array.flush()
    seconds = time.perf_counter() - started
    meta = {
        "spec": json.loads(json.dumps(spec, default=str)),
        "files": files,
        "dtype": dtype,
        "build_seconds": seconds,
        "tokens_per_s": tokens.numel() / max(seconds, 1e-9),
    }
    (out / META).write_text(json.dumps(meta, indent=2))


def _to_storage(hidden: torch.Tensor, dtype: str, torch_view) -> np.ndarray:
    if dtype == "float16":
        limit = torch.finfo(torch.float16).max
        if hidden.abs().max().item() > limit:
            raise EEBenchError(
                f"hidden states exceed the float16 range (|h| > {limit:.0f}); set head.training.state_dtype=bfloat16"
            )
        return hidden.to(torch.float16).cpu().numpy()
    if torch_view is not None:
        return hidden.to(torch_view).cpu().view(torch.int16).numpy().view(np.uint16)
    return hidden.float().cpu().numpy()
