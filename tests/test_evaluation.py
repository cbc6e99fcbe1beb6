import math

import pytest
import torch
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM

from eebench.backbones import load_backbone
from eebench.config import BackboneConfig
from eebench.evaluation.lm import EarlyExitLM
from eebench.evaluation.scores import ScoreStore
from eebench.exits.policy import ExitPolicy
from eebench.heads import ExitHeads
from eebench.model import EarlyExitModel
from eebench.traces.trace import Trace

REQUESTS = [("The model exits", " early"), ("A head is", " confident and fast"), ("Tokens leave", " the network")]


def _instances():
    return [Instance("loglikelihood", {}, args, i) for i, args in enumerate(REQUESTS)]


def _ee_model(model_dir):
    backbone = load_backbone(BackboneConfig(name="tiny", name_or_path=str(model_dir), dtype="float32"), "cpu")  # exactness: fp32
    torch.manual_seed(0)
    heads = ExitHeads.create(backbone.layered, [1, 3])
    for head in heads.heads:
        head.proj.weight.data += 0.1 * torch.randn_like(head.proj.weight)
    empty = Trace({"entropy": torch.zeros(2, 1)}, torch.zeros(2, 1, dtype=torch.long), torch.zeros(1, dtype=torch.long))
    return EarlyExitModel(backbone, heads, empty)


@pytest.mark.parametrize("arch", ["llama", "gpt_neox", "gpt2"])
def test_exits_false_equals_stock_hf_model(tiny_model_dirs, arch):
    ee = _ee_model(tiny_model_dirs[arch])
    ours = EarlyExitLM(ee_model=ee, exits=False, batch_size=2).loglikelihood(_instances())
    stock = HFLM(pretrained=ee.backbone.model, tokenizer=ee.backbone.tokenizer, batch_size=2).loglikelihood(_instances())
    for (a, ga), (b, gb) in zip(ours, stock):
        assert a == pytest.approx(b, abs=1e-4) and ga == gb


def test_policy_mixes_exits_and_reuses_stored_scores(tiny_model_dirs, tmp_path):
    ee = _ee_model(tiny_model_dirs["llama"])
    store_path = tmp_path / "scores.safetensors"
    never = ExitPolicy([1, 3], "entropy", [-math.inf, -math.inf])
    always = ExitPolicy([1, 3], "entropy", [math.inf, math.inf])
    full = EarlyExitLM(ee_model=ee, exits=False, score_store=ScoreStore(store_path)).loglikelihood(_instances())
    assert store_path.exists()
    reloaded = ScoreStore(store_path)
    assert len(reloaded.items) == len(REQUESTS)
    # With every head unconfident the policy is the full model; with the first head always confident it is head 0
    # for every continuation token but the first, which comes from the final layer as the engine's prompt pass gives it.
    assert EarlyExitLM(ee_model=ee, policy=never, score_store=reloaded).loglikelihood(_instances()) == full
    first_head = EarlyExitLM(ee_model=ee, policy=always, score_store=reloaded)
    head_scores = first_head.loglikelihood(_instances())
    tokens = sum(item.logprob.shape[1] for item in reloaded.items.values())
    assert first_head.exit_counts == {2: len(REQUESTS), 0: tokens - len(REQUESTS)}
    for (score, _), (full_score, _), item in zip(head_scores, full, reloaded.items.values()):
        if item.logprob.shape[1] == 1:  # a one-token continuation never exits
            assert score == pytest.approx(full_score)
    assert [s for s, _ in head_scores] != pytest.approx([s for s, _ in full])


def _generation_instances(max_gen_toks: int = 6):
    options = {"until": ["\n\n"], "max_gen_toks": max_gen_toks, "do_sample": False}
    return [Instance("generate_until", {}, (context, options), i) for i, (context, _) in enumerate(REQUESTS)]


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_generate_until_goes_through_the_batched_engine(tiny_model_dirs, arch):
    ee = _ee_model(tiny_model_dirs[arch])
    never = ExitPolicy([1, 3], "entropy", [-math.inf, -math.inf])
    always = ExitPolicy([1, 3], "entropy", [math.inf, math.inf])
    # No head confident: the engine's greedy text equals the stock HF generate path (exits=False).
    stock = EarlyExitLM(ee_model=ee, exits=False, batch_size=3).generate_until(_generation_instances())
    assert EarlyExitLM(ee_model=ee, policy=never, batch_size=3).generate_until(_generation_instances()) == stock
    # Every token from head 0: rows of different lengths batched together give what each gives alone.
    batched_lm = EarlyExitLM(ee_model=ee, policy=always, batch_size=3)
    batched = batched_lm.generate_until(_generation_instances())
    alone = EarlyExitLM(ee_model=ee, policy=always, batch_size=1).generate_until(_generation_instances())
    assert batched == alone and batched != stock
    # Each row's first token comes from the full-depth prompt pass; every later one exits at head 0.
    assert set(batched_lm.exit_counts) == {0, 2} and batched_lm.exit_counts[2] == len(REQUESTS)
