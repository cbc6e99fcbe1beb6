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
        "readout": heads.readout,
        "readout_options": heads.readout_options,
        **(extra or {}),
    }
    (directory / META).write_text(json.dumps(meta, indent=2))


def load_heads(directory: Path, layered) -> ExitHeads:
    directory = Path(directory)
    if not (directory / WEIGHTS).exists() or not (directory / META).exists():
        raise EEBenchError(f"no exit heads in {str(directory)!r}; expected {WEIGHTS} and {META}")
    meta = json.loads((directory / META).read_text())
    state = load_file(str(directory / WEIGHTS), device=str(layered.lm_head.weight.device))
    heads = ExitHeads.create(
        layered,
        meta["exit_layers"],
        meta["kind"],
        init_from_lm_head=False,
        gate_width=meta.get("gate_width", 0),
        options=meta.get("options", {}),  # older files: no options, no readout
        readout=meta.get("readout", "full"),
        readout_ids=state.get("readout_ids"),  # the shortlist's rows are rebuilt from lm_head and these ids
        readout_opts=meta.get("readout_options", {}),
    )
    heads.load_state_dict(state)
    return heads
