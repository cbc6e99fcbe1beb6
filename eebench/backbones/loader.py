"""Load a backbone from a hub id, a local directory, a directory + GGUF file, or the bundled default."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from eebench.backbones.bundled import bundled_model_dir, converted_gguf_dir
from eebench.backbones.config import BackboneConfig
from eebench.backbones.families import family_for
from eebench.backbones.layered import LayeredModel, check_against_forward
from eebench.backbones.precision import decode_shape, resolve_dtype
from eebench.cache import file_digest
from eebench.errors import EEBenchError
from eebench.reuse import files_state, reuse

_ALLOWED = "a hub id (org/name), a local model directory, a directory with backbone.gguf_file, or bundled:smollm2-135m"


@dataclass
class Backbone:
    name: str
    path: str
    model: Any
    tokenizer: Any
    layered: LayeredModel
    device: torch.device
    identity: dict = field(default_factory=dict)  # what determines the weights: used in cache keys
    dtype_reason: str = ""  # why identity["dtype"] was chosen (backbone.dtype=auto decides per machine)

    @property
    def dtype(self) -> str:
        return self.identity["dtype"]

    @property
    def num_layers(self) -> int:
        return self.layered.num_layers


def pick_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise EEBenchError("device='cuda' was requested but torch sees no CUDA device; allowed here: auto, cpu")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def backbone_label(cfg: BackboneConfig) -> str:
    """``backbone.name`` if set, else the loaded model's own name: the bundled model's, the GGUF file's stem,
    the local directory's name or the hub id, so two models given only by path are never labelled alike."""
    if cfg.name:
        return cfg.name
    source = cfg.name_or_path
    if source.startswith("bundled:"):
        return source.split(":", 1)[1]
    if cfg.gguf_file:
        return Path(cfg.gguf_file).stem
    path = Path(source).expanduser()
    return path.resolve().name if path.is_dir() else source


def resolve_source(cfg: BackboneConfig) -> tuple[str, bool]:
    """Return (where to load from, whether it is a local directory)."""
    source = cfg.name_or_path
    if source.startswith("bundled:"):
        return str(bundled_model_dir(source.split(":", 1)[1])), True
    path = Path(source).expanduser()
    if cfg.gguf_file:
        if not (path / cfg.gguf_file).is_file():
            raise EEBenchError(f"backbone.gguf_file={cfg.gguf_file!r} not found in {str(path)!r}; allowed: {_ALLOWED}")
        return str(converted_gguf_dir(path, cfg.gguf_file)), True
    if path.is_dir():
        return str(path.resolve()), True
    if path.is_file():
        raise EEBenchError(f"backbone.name_or_path={source!r} is a file, not a model directory; allowed: {_ALLOWED}")
    if source.startswith(("/", ".", "~")) or path.suffix:
        raise EEBenchError(f"backbone.name_or_path={source!r} does not exist; allowed: {_ALLOWED}")
    return source, False


# Files besides the weights that change what a model computes: its tokenizer (ids of the same text),
# generation defaults and any custom code.
_TOKENIZER_FILES = (
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    "special_tokens_map.json",
    "added_tokens.json",
    "generation_config.json",
    "chat_template.jinja",
)
_TOKENIZER_SUFFIXES = (".model", ".tiktoken", ".py")


def _determining_files(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.iterdir()
        if p.is_file() and (p.name.startswith("tokenizer") or p.name in _TOKENIZER_FILES or p.suffix in _TOKENIZER_SUFFIXES)
    )


def local_identity(directory: str) -> dict:
    """Hash the config, weight and tokenizer files so a changed checkpoint or tokenizer never reuses stale
    heads, traces or baselines."""
    root = Path(directory)
    weights = sorted(p for p in root.iterdir() if p.suffix in (".safetensors", ".bin"))
    return {
        "config": file_digest(root / "config.json"),
        "weights": [file_digest(p) for p in weights],
        "tokenizer": {p.name: file_digest(p) for p in _determining_files(root)},
    }


def _load_error(cfg: BackboneConfig, exc: Exception) -> EEBenchError:
    reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    return EEBenchError(f"backbone.name_or_path={cfg.name_or_path!r} could not be loaded ({reason}); allowed: {_ALLOWED}")


def _load_config(source: str, cfg: BackboneConfig, common: dict):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source, **common)
    except Exception as exc:  # transformers raises many types for a bad or custom-code config
        if "trust_remote_code" in str(exc) and not cfg.trust_remote_code:
            raise EEBenchError(
                f"backbone.name_or_path={cfg.name_or_path!r} needs its own modelling code; "
                "set backbone.trust_remote_code=true to run it (its family must still be supported)"
            ) from None
        raise _load_error(cfg, exc) from None


def _load_model(source: str, cfg: BackboneConfig, common: dict, dtype, family):
    """The model with the first attention implementation of the family's list that loads (sdpa, else eager)."""
    from transformers import AutoModelForCausalLM

    error = None
    for implementation in family.attention:
        try:
            return AutoModelForCausalLM.from_pretrained(source, dtype=dtype, attn_implementation=implementation, **common)
        except Exception as exc:  # e.g. "does not support ... scaled_dot_product_attention": try the next one
            error = exc
    raise _load_error(cfg, error) from None


def load_backbone(cfg: BackboneConfig, device: str = "auto", shared: bool = False) -> Backbone:
    """The backbone. ``shared``: the one the previous caller in this process loaded, while config and files are
    unchanged (sweep points share it; nothing in eebench writes to a loaded backbone, heads copy what they take)."""
    source, is_local = resolve_source(cfg)
    target = pick_device(device)
    if not shared:
        return _load_backbone(cfg, source, is_local, target)
    key = (repr(cfg), str(target), files_state([source]) if is_local else None)
    return reuse("backbone", key, lambda: _load_backbone(cfg, source, is_local, target))


def _load_backbone(cfg: BackboneConfig, source: str, is_local: bool, target: torch.device) -> Backbone:
    from transformers import AutoTokenizer

    common = {"revision": cfg.revision, "trust_remote_code": cfg.trust_remote_code}
    config = _load_config(source, cfg, common)
    family = family_for(config)  # refuse an unsupported family before reading weights
    choice = resolve_dtype(cfg.dtype, target, decode_shape(config))  # "auto" -> the faster native precision
    dtype = getattr(torch, choice.dtype)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **common)
    except Exception as exc:
        raise _load_error(cfg, exc) from None
    model = _load_model(source, cfg, common, dtype, family)
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise EEBenchError(
                f"backbone.name_or_path={cfg.name_or_path!r} has a tokenizer with neither a pad nor an EOS "
                "token; allowed: a tokenizer that defines eos_token (or pad_token) in its tokenizer_config.json"
            )
        tokenizer.pad_token = tokenizer.eos_token
    model.to(target).eval().requires_grad_(False)
    layered = LayeredModel.from_model(model)
    if not type(model).__module__.startswith("transformers."):
        check_against_forward(layered, model, cfg.name_or_path)  # custom code: prove the layered view equal first
    if is_local:
        identity = {"local": local_identity(source)}
    else:
        identity = {"hub": source, "revision": cfg.revision, "commit": getattr(model.config, "_commit_hash", None)}
    identity["dtype"] = choice.dtype  # the resolved dtype: an "auto" run on bf16 and on fp32 hardware never share heads
    return Backbone(backbone_label(cfg), source, model, tokenizer, layered, target, identity, choice.reason)
