"""Save and load heads as safetensors + json (never pickle: head files may come from someone else)."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from eebench.errors import EEBenchError
from eebench.heads.modules import ExitHeads

WEIGHTS = "heads.safetensors"
META = "heads.json"


def save_heads(heads: ExitHeads, directory: Path, extra: dict | None = None) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in heads.state_dict().items()}
    save_file(state, str(directory / WEIGHTS))
    meta = {
        "exit_layers": heads.exit_layers,
        "kind": heads.kind,
        "options": heads.options,
        "gate_width": heads.gate_width,
        **(extra or {}),
    }
    (directory / META).write_text(json.dumps(meta, indent=2))


def load_heads(directory: Path, layered) -> ExitHeads:
    directory = Path(directory)
    if not (directory / WEIGHTS).exists() or not (directory / META).exists():
        raise EEBenchError(f"no exit heads in {str(directory)!r}; expected {WEIGHTS} and {META}")
    meta = json.loads((directory / META).read_text())
    heads = ExitHeads.create(
        layered,
        meta["exit_layers"],
        meta["kind"],
        init_from_lm_head=False,
        gate_width=meta.get("gate_width", 0),
        options=meta.get("options", {}),
    )  # older files: no options
    heads.load_state_dict(load_file(str(directory / WEIGHTS), device=str(layered.lm_head.weight.device)))
    return heads
