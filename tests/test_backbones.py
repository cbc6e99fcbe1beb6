import pytest
import torch
from transformers import DynamicCache

from eebench.backbones import load_backbone
from eebench.config import BackboneConfig
from eebench.errors import EEBenchError


def causal_mask(query_len: int, past_len: int, key_padding: torch.Tensor | None = None, device=None) -> torch.Tensor:
    """Boolean mask [B or 1, 1, q, past+q]: query i sees keys up to past+i (and no padded key)."""
    keys = torch.arange(past_len + query_len, device=device)
    queries = torch.arange(query_len, device=device) + past_len
    mask = (keys[None, :] <= queries[:, None])[None, None]
    if key_padding is not None:  # key_padding: [B, past+q] True where the key is a real token
        mask = mask & key_padding[:, None, None, :].bool()
    return mask


def _layered_logits(backbone, ids, chunks):
    """Run the layered view chunk by chunk against a KV cache, as the early-exit engine does."""
    lm, cache, outs, start = backbone.layered, DynamicCache(), [], 0
    for size in chunks:
        piece = ids[:, start : start + size]
        pos = torch.arange(start, start + size)[None]
        hidden = lm.embed(piece, pos)
        rotary = lm.rotary_embeddings(hidden, pos)
        for i in range(lm.num_layers):
            hidden = lm.run_block(i, hidden, pos, causal_mask(size, start), cache, rotary)
        outs.append(lm.final_logits(hidden))
        start += size
    return torch.cat(outs, dim=1)


def test_layered_view_matches_hf_forward(tiny_model_dir):
    backbone = load_backbone(
        BackboneConfig(name="tiny", name_or_path=str(tiny_model_dir), dtype="float32"), device="cpu"
    )  # fp32 tolerances
    ids = torch.randint(0, backbone.layered.vocab_size, (1, 12), generator=torch.Generator().manual_seed(0))
    reference = backbone.model(ids).logits
    for chunks in ([12], [5, 1, 1, 5], [3, 4, 5]):
        torch.testing.assert_close(_layered_logits(backbone, ids, chunks), reference, atol=1e-4, rtol=1e-4)


def test_hidden_state_identity_is_stable(tiny_model_dirs):
    cfg = BackboneConfig(name="tiny", name_or_path=str(tiny_model_dirs["llama"]), dtype="float32")
    assert load_backbone(cfg, "cpu").identity == load_backbone(cfg, "cpu").identity


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"name_or_path": "/no/such/dir"}, "/no/such/dir"),
        ({"name_or_path": "./missing_model"}, "missing_model"),
    ],
)
def test_bad_backbone_path_is_one_line_error(kwargs, fragment):
    with pytest.raises(EEBenchError) as info:
        load_backbone(BackboneConfig(name="bad", **kwargs), "cpu")
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_unreadable_gguf_is_one_line_error(tmp_path):
    (tmp_path / "broken.gguf").write_bytes(b"not a gguf file at all")
    with pytest.raises(EEBenchError) as info:
        load_backbone(BackboneConfig(name="bad", name_or_path=str(tmp_path), gguf_file="broken.gguf"), "cpu")
    assert "broken.gguf" in str(info.value)
