import math

import torch

from eebench.backbones import load_backbone
from eebench.config import BackboneConfig
from eebench.engine.generate import generate
from eebench.exits.confidence import uncertainty
from eebench.exits.policy import ExitPolicy
from eebench.heads import ExitHeads


def _setup(model_dir, thresholds):
    backbone = load_backbone(BackboneConfig(name="tiny", name_or_path=str(model_dir)), "cpu")
    torch.manual_seed(1)
    heads = ExitHeads.create(backbone.layered, [1, 3], init_from_lm_head=True)
    for head in heads.heads:  # perturb so heads disagree with the final layer
        head.proj.weight.data += 0.05 * torch.randn_like(head.proj.weight)
    return backbone, heads, ExitPolicy([1, 3], "entropy", thresholds)


def test_full_depth_engine_equals_transformers_greedy(tiny_model_dir):
    backbone, _, _ = _setup(tiny_model_dir, [0.0, 0.0])
    ids = torch.randint(1, 300, (1, 9), generator=torch.Generator().manual_seed(3))
    ours = generate(backbone.layered, ids, max_new_tokens=12).tokens
    reference = backbone.model.generate(ids, max_new_tokens=12, do_sample=False, min_new_tokens=12)[:, 9:]
    assert torch.equal(ours, reference)


def test_lazy_equals_full_and_really_exits(tiny_model_dir):
    # The median entropy of a random tiny model's heads makes roughly half the tokens exit.
    backbone, heads, _ = _setup(tiny_model_dir, [0.0, 0.0])
    ids = torch.randint(1, 300, (1, 7), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        hidden = backbone.model(ids, output_hidden_states=True).hidden_states
        levels = [float(uncertainty("entropy", heads.logits(i, hidden[l + 1])).median()) for i, l in enumerate([1, 3])]
    policy = ExitPolicy([1, 3], "entropy", levels)
    full = generate(backbone.layered, ids, 16, heads, policy, strategy="full")
    lazy = generate(backbone.layered, ids, 16, heads, policy, strategy="lazy")
    assert torch.equal(full.tokens, lazy.tokens)
    assert full.exit_index == lazy.exit_index
    assert any(i < 2 for i in lazy.exit_index[1:]), "no token exited early: the test would prove nothing"


def test_never_exit_policy_equals_full_model(tiny_model_dirs):
    backbone, heads, _ = _setup(tiny_model_dirs["llama"], [-math.inf, -math.inf])
    ids = torch.randint(1, 300, (1, 5), generator=torch.Generator().manual_seed(5))
    policy = ExitPolicy([1, 3], "entropy", [-math.inf, -math.inf])
    plain = generate(backbone.layered, ids, 10).tokens
    assert torch.equal(generate(backbone.layered, ids, 10, heads, policy, "lazy").tokens, plain)
