import pytest
import torch

from eebench.backbones import load_backbone
from eebench.config import BackboneConfig, HeadTrainingConfig
from eebench.engine.flops import CostModel
from eebench.heads import ExitHeads, load_heads, save_heads
from eebench.heads.states import cached_states
from eebench.heads.train import train_heads


@pytest.fixture(scope="module")
def backbone(tiny_model_dirs):
    return load_backbone(
        BackboneConfig(name="tiny", name_or_path=str(tiny_model_dirs["llama"]), dtype="float32"), "cpu"
    )  # exactness: fp32


@pytest.mark.parametrize("kind", ["linear", "mlp", "lens", "logit_lens"])
def test_heads_start_as_logit_lens_and_round_trip(backbone, kind, tmp_path):
    heads = ExitHeads.create(backbone.layered, [1, 3], kind)
    hidden = torch.randn(2, 5, backbone.layered.hidden_size)
    lens = backbone.layered.final_logits(hidden)
    # Every head type is initialised so that it equals the logit lens before training.
    torch.testing.assert_close(heads.logits(0, hidden), lens)
    save_heads(heads, tmp_path)
    loaded = load_heads(tmp_path, backbone.layered)
    assert loaded.kind == kind and loaded.exit_layers == [1, 3]
    torch.testing.assert_close(loaded.logits(1, hidden), heads.logits(1, hidden))
    # Heads sharing the backbone's lm_head do not copy it into their file.
    size = (tmp_path / "heads.safetensors").stat().st_size
    own_vocab_matrix = kind in ("linear", "mlp")
    assert (size > backbone.layered.lm_head.weight.numel() * 4) == own_vocab_matrix


@pytest.mark.parametrize("kind", ["linear", "mlp", "lens"])
def test_self_distillation_lowers_the_kl(backbone, kind):
    torch.manual_seed(0)
    heads = ExitHeads.create(backbone.layered, [1, 3], kind)
    for param in (p for p in heads.parameters() if p.requires_grad):  # start away from the logit lens
        param.data += 0.1 * torch.randn_like(param)
    tokens = torch.randint(1, 300, (8, 32), generator=torch.Generator().manual_seed(0))
    cfg = HeadTrainingConfig(
        max_tokens=25 * 4 * 32,
        batch_size=4,
        lr=1e-2,
        warmup_steps=2,
        eval_every=10 * 4 * 32,
        patience=5,
        val_sequences=2,
        precision="float32",
    )
    log = train_heads(backbone.layered, heads, cached_states(backbone, tokens, [1, 3]), cfg, seed=0)
    assert all(h["best_heldout_loss"] < 0.8 * h["first_heldout_loss"] for h in log["modules"])
    assert all(not p.requires_grad for p in backbone.model.parameters()), "the backbone must stay frozen"


def test_head_cost_counts_shared_lm_head(backbone):
    vocab_matrix = backbone.layered.lm_head.weight.numel()
    hidden = backbone.layered.hidden_size
    costs = {kind: ExitHeads.create(backbone.layered, [1], kind).projection_cost(0) for kind in ("linear", "lens", "logit_lens")}
    assert costs == {"linear": vocab_matrix, "lens": vocab_matrix + hidden * hidden + hidden, "logit_lens": vocab_matrix}
    model = CostModel.from_layered(backbone.layered, ExitHeads.create(backbone.layered, [1, 3], "linear"))
    assert model.head_cost == vocab_matrix and model.exit_layers == [1, 3]


def test_gates_learn_and_skip_the_vocab_projection_when_nobody_exits(backbone):
    import math

    from eebench.config import GateConfig
    from eebench.exits.policy import ExitPolicy
    from eebench.heads.train import train_gates

    torch.manual_seed(0)
    heads = ExitHeads.create(backbone.layered, [1, 3], "linear", gate_width=16)
    for head in heads.heads:
        head.proj.weight.data += 0.2 * torch.randn_like(head.proj.weight)
    tokens = torch.randint(1, 300, (8, 32), generator=torch.Generator().manual_seed(0))
    gate = GateConfig(width=16, max_tokens=30 * 4 * 32, batch_size=4, lr=1e-2)
    train_cfg = HeadTrainingConfig(eval_every=10 * 4 * 32, val_sequences=2, precision="float32")
    log = train_gates(backbone.layered, heads, cached_states(backbone, tokens, [1, 3]), gate, train_cfg, seed=0)
    assert all(g["best_heldout_loss"] < g["first_heldout_loss"] for g in log["modules"])
    hidden = torch.randn(1, 1, backbone.layered.hidden_size)
    confident, logits = ExitPolicy([1, 3], "gate", [-math.inf, -math.inf]).exit_decision(heads, 0, hidden)
    assert not bool(confident.any()) and logits is None
    confident, logits = ExitPolicy([1, 3], "gate", [math.inf, math.inf]).exit_decision(heads, 0, hidden)
    assert bool(confident.all()) and logits.shape[-1] == backbone.layered.vocab_size
    gated = CostModel.from_layered(backbone.layered, heads, gated=True)
    ungated = CostModel.from_layered(backbone.layered, heads, gated=False)
    assert gated.no_exit_overhead() < 0.05 * ungated.no_exit_overhead()
