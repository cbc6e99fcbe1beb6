"""The low_rank head type, end to end: Hydra config group, validation, SVD initialisation, cost, save/load."""

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from eebench.backbones import load_backbone
from eebench.config import BackboneConfig, register_configs, validate
from eebench.errors import EEBenchError
from eebench.heads import ExitHeads, load_heads, save_heads

ROOT = Path(__file__).resolve().parents[1]


def test_low_rank_head_config_svd_init_cost_and_round_trip(tiny_model_dirs, tmp_path):
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = validate(compose("config", overrides=["head=low_rank", "head.options.rank=8"]))
        default = validate(compose("config", overrides=["head=low_rank"]))
    assert (cfg.head.kind, cfg.head.options, default.head.options) == ("low_rank", {"rank": 8}, {"rank": 64})
    with pytest.raises(EEBenchError, match=r"head.options.rank=0 is invalid"):
        validate({"head": {"kind": "low_rank", "options": {"rank": 0}}})
    with pytest.raises(EEBenchError, match=r"head.options.rank is not an option of head.kind=linear; allowed: none"):
        validate({"head": {"kind": "linear", "options": {"rank": 8}}})

    tiny = BackboneConfig(name="tiny", name_or_path=str(tiny_model_dirs["llama"]), dtype="float32")
    layered = load_backbone(tiny, "cpu").layered
    heads = ExitHeads.create(layered, [1, 3], cfg.head.kind, options=cfg.head.options)
    weight, head = layered.lm_head.weight, heads.heads[0]
    vocab, hidden = weight.shape
    assert heads.projection_cost(0) == 8 * (hidden + vocab)
    # Initialised with lm_head's best rank-8 approximation: the residual is the dropped singular values (Eckart-Young).
    dropped = torch.linalg.svdvals(weight.detach())[8:]
    residual = torch.linalg.matrix_norm(weight.detach() - head.up.weight @ head.down.weight)
    torch.testing.assert_close(residual, dropped.norm(), rtol=1e-4, atol=1e-4)
    # At full rank it starts as the logit lens, like the other head types.
    full = ExitHeads.create(layered, [1], "low_rank", options={"rank": hidden})
    x = torch.randn(2, 5, hidden)
    torch.testing.assert_close(full.logits(0, x), layered.final_logits(x), rtol=1e-4, atol=1e-4)
    with pytest.raises(EEBenchError, match=rf"head.options.rank={hidden + 1} exceeds the backbone's hidden size {hidden}"):
        ExitHeads.create(layered, [1], "low_rank", options={"rank": hidden + 1})

    save_heads(heads, tmp_path)
    loaded = load_heads(tmp_path, layered)
    assert (loaded.kind, loaded.options) == ("low_rank", {"rank": 8})
    torch.testing.assert_close(loaded.logits(1, x), heads.logits(1, x))
