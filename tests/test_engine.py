import math

import pytest
import torch
from engine_support import median_entropy_policy, random_prompts, reference_greedy, tiny_backbone

from eebench.engine.exit_plan import fixed_exit
from eebench.engine.generate import STRATEGIES, generate
from eebench.engine.kv import RaggedKVCache
from eebench.engine.layerwise import LayerwiseDecoder, Request
from eebench.errors import EEBenchError
from eebench.exits.policy import ExitPolicy

LENGTHS = [5, 9, 3]  # prompts of different lengths in one batch
NEW = 12


pytestmark = pytest.mark.usefixtures("one_thread")


def _early(output) -> int:
    return sum(1 for i in output.flat_exit_indices if i < len(output.exit_layers))


def _assert_batch_equals_alone(lm, prompts, batch, **kwargs):
    for row, prompt in enumerate(prompts):
        alone = generate(lm, prompt[None], NEW, **kwargs)
        assert torch.equal(batch.tokens[row, : batch.lengths[row]], alone.tokens[0]), f"row {row}"
        assert batch.row_exit_indices[row] == alone.flat_exit_indices, f"row {row}"


def test_full_depth_engine_equals_transformers_greedy(tiny_model_dir):
    backbone, _ = tiny_backbone(tiny_model_dir)
    prompts = random_prompts(LENGTHS, seed=3)
    ours = generate(backbone.layered, prompts, NEW)
    assert ours.tokens.shape == (len(prompts), NEW)
    for row, prompt in enumerate(prompts):
        assert torch.equal(ours.tokens[row], reference_greedy(backbone.model, prompt, NEW)), f"row {row}"
        assert torch.equal(generate(backbone.layered, prompt[None], NEW).tokens[0], ours.tokens[row])


def test_lazy_equals_full_and_really_exits(tiny_model_dir):
    backbone, heads = tiny_backbone(tiny_model_dir)
    prompts = random_prompts(LENGTHS, seed=4)
    policy = median_entropy_policy(backbone.model, heads, prompts)
    full = generate(backbone.layered, prompts, NEW, heads, policy, strategy="full")
    lazy = generate(backbone.layered, prompts, NEW, heads, policy, strategy="lazy")
    assert torch.equal(full.tokens, lazy.tokens)
    assert full.row_exit_indices == lazy.row_exit_indices
    assert _early(lazy) >= 3, "too few tokens exited early: the test would prove little"
    _assert_batch_equals_alone(backbone.layered, prompts, lazy, heads=heads, policy=policy, strategy="lazy")


@pytest.mark.parametrize("strategy", ["copy", "skip"])
def test_approximate_strategies_exit_per_sequence(tiny_model_dirs, strategy):
    backbone, heads = tiny_backbone(tiny_model_dirs["qwen2"])
    prompts = random_prompts(LENGTHS, seed=6)
    policy = median_entropy_policy(backbone.model, heads, prompts)
    out = generate(backbone.layered, prompts, NEW, heads, policy, strategy=strategy)
    assert out.tokens.shape == (len(prompts), NEW) and out.lengths == [NEW] * len(prompts)
    assert _early(out) >= 3
    _assert_batch_equals_alone(backbone.layered, prompts, out, heads=heads, policy=policy, strategy=strategy)


@pytest.mark.parametrize("strategy", ["lazy", "copy", "skip"])
def test_never_exit_policy_equals_full_model(tiny_model_dir, strategy):
    backbone, heads = tiny_backbone(tiny_model_dir)
    prompts = random_prompts(LENGTHS, seed=5)
    policy = ExitPolicy([1, 3], "entropy", [-math.inf, -math.inf])
    plain = generate(backbone.layered, prompts, NEW)
    out = generate(backbone.layered, prompts, NEW, heads, policy, strategy)
    assert torch.equal(out.tokens, plain.tokens)
    assert out.flat_exit_indices == [len(heads)] * (NEW * len(prompts))


def _exit_once(lm, mode):
    """Prompt of 5, then position 5 exits at block 1, then position 6 goes to full depth."""
    decoder = LayerwiseDecoder(lm, fixed_exit(lm, 1), mode, batch=1, capacity=16, device="cpu")
    decoder.step([Request(0, random_prompts([5], seed=14)[0], 0, may_exit=False)])
    assert 0 in decoder.step([Request(0, torch.tensor([7]), 5)]).exits
    queued = [list(q[0]) for q in decoder.queues]
    decoder.step([Request(0, torch.tensor([8]), 6, may_exit=False)])
    return decoder, queued


@pytest.mark.parametrize("mode, deep_positions", [("lazy", [0, 1, 2, 3, 4, 5, 6]), ("skip", [0, 1, 2, 3, 4, 6])])
def test_deeper_blocks_see_exited_positions_per_mode(tiny_model_dirs, mode, deep_positions):
    backbone, _ = tiny_backbone(tiny_model_dirs["gpt_neox"])
    decoder, _ = _exit_once(backbone.layered, mode)
    for layer in range(backbone.layered.num_layers):
        expected = list(range(7)) if layer <= 1 else deep_positions
        assert decoder.cache.stored_positions(layer, 0) == expected, f"layer {layer}"


def test_copy_computes_deeper_kv_from_the_exited_state(tiny_model_dirs):
    backbone, _ = tiny_backbone(tiny_model_dirs["llama"])
    lm = backbone.layered
    decoder, queued = _exit_once(lm, "copy")
    position = torch.tensor([[5]])
    for layer in range(2, lm.num_layers):
        (copy,) = queued[layer]  # what block `layer` was given for position 5: block 1's output
        assert torch.equal(copy.positions, torch.tensor([5]))
        probe = RaggedKVCache(lm.num_layers, 1, 1, torch.device("cpu"))
        mask = probe.prepare(layer, [0], position, [1])
        hidden = copy.hidden[None]
        lm.run_block(layer, hidden, position, mask, probe, lm.rotary_embeddings(hidden, position))
        torch.testing.assert_close(decoder.cache.keys[layer][0, :, 5], probe.keys[layer][0, :, 0])
        torch.testing.assert_close(decoder.cache.values[layer][0, :, 5], probe.values[layer][0, :, 0])


def test_left_padded_batch_equals_list_of_prompts(tiny_model_dirs):
    backbone, heads = tiny_backbone(tiny_model_dirs["llama"])
    prompts = random_prompts(LENGTHS, seed=7)
    policy = median_entropy_policy(backbone.model, heads, prompts)
    width = max(LENGTHS)
    ids = torch.stack([torch.cat([torch.zeros(width - len(p), dtype=torch.long), p]) for p in prompts])
    mask = torch.stack([torch.arange(width) >= width - len(p) for p in prompts]).long()
    padded = generate(backbone.layered, ids, NEW, heads, policy, attention_mask=mask)
    listed = generate(backbone.layered, prompts, NEW, heads, policy)
    assert torch.equal(padded.tokens, listed.tokens) and padded.row_exit_indices == listed.row_exit_indices


def test_eos_stops_each_sequence_on_its_own(tiny_model_dirs):
    backbone, heads = tiny_backbone(tiny_model_dirs["mistral"])
    prompts = random_prompts(LENGTHS, seed=8)
    policy = median_entropy_policy(backbone.model, heads, prompts)
    free = generate(backbone.layered, prompts, NEW, heads, policy)
    eos = int(free.tokens[0, 2])  # row 0 must stop after 3 tokens (or earlier if it appears before)
    stopped = generate(backbone.layered, prompts, NEW, heads, policy, eos_token_id=eos)
    assert stopped.lengths[0] <= 3 and stopped.tokens[0, stopped.lengths[0] - 1] == eos
    assert (stopped.tokens[0, stopped.lengths[0] :] == eos).all()
    for row, prompt in enumerate(prompts):
        alone = generate(backbone.layered, prompt[None], NEW, heads, policy, eos_token_id=eos)
        assert torch.equal(stopped.tokens[row, : stopped.lengths[row]], alone.tokens[0])


def test_static_exit_at_last_block_is_the_full_model(tiny_model_dir):
    backbone, _ = tiny_backbone(tiny_model_dir)
    prompts = random_prompts(LENGTHS, seed=9)
    last = backbone.layered.num_layers - 1
    static = generate(backbone.layered, prompts, NEW, strategy="static", exit_layer=last)
    assert torch.equal(static.tokens, generate(backbone.layered, prompts, NEW).tokens)
    assert static.exit_layers == [last] and set(static.flat_exit_indices) == {0}


@torch.no_grad()
def _truncated_greedy(backbone, prompt, exit_layer, new_tokens):
    """Greedy decoding that reads every token out of block ``exit_layer`` (full recomputation each step)."""
    ids = prompt[None]
    for _ in range(new_tokens):
        hidden = backbone.model(ids, output_hidden_states=True).hidden_states[exit_layer + 1][:, -1]
        ids = torch.cat([ids, backbone.layered.final_logits(hidden).argmax(-1, keepdim=True)], dim=1)
    return ids[0, len(prompt) :]


def test_static_exit_reads_out_a_fixed_block(tiny_model_dir):
    backbone, _ = tiny_backbone(tiny_model_dir)
    prompts = random_prompts(LENGTHS, seed=10)
    static = generate(backbone.layered, prompts, NEW, strategy="static", exit_layer=2)
    for row, prompt in enumerate(prompts):
        assert torch.equal(static.tokens[row], _truncated_greedy(backbone, prompt, 2, NEW)), f"row {row}"


def test_static_exit_through_a_head(tiny_model_dirs):
    backbone, heads = tiny_backbone(tiny_model_dirs["phi3"])
    prompt = random_prompts([6], seed=11)
    out = generate(backbone.layered, prompt, NEW, heads, strategy="static", exit_layer=3)
    assert out.exit_layers == heads.exit_layers and set(out.flat_exit_indices) == {1}
    with pytest.raises(EEBenchError, match="exit_layer=2"):
        generate(backbone.layered, prompt, NEW, heads, strategy="static", exit_layer=2)


def test_unknown_strategy_is_one_line_error(tiny_model_dirs):
    backbone, _ = tiny_backbone(tiny_model_dirs["llama"])
    with pytest.raises(EEBenchError) as info:
        generate(backbone.layered, random_prompts([4]), 3, strategy="eager")
    message = str(info.value)
    assert "'eager'" in message and all(s in message for s in STRATEGIES) and "\n" not in message


def test_gate_exits_keep_lazy_equal_to_full(tiny_model_dirs):
    from torch import nn

    from eebench.exits.confidence import uncertainty
    from eebench.heads.gate import ExitGate

    backbone, heads = tiny_backbone(tiny_model_dirs["llama"])
    torch.manual_seed(2)
    lm = backbone.layered
    heads.gates = nn.ModuleList([ExitGate(lm.norm, lm.hidden_size, 8) for _ in heads.exit_layers])
    for gate in heads.gates:  # spread the random gates' probabilities so decisions vary from token to token
        gate.out.weight.data *= 3
    prompt = random_prompts([7], seed=6)[0][None]
    reference = generate(lm, prompt, 16).tokens
    with torch.no_grad():  # each gate lets out the most confident tenth of the full model's generated text
        hidden = backbone.model(torch.cat([prompt, reference], 1), output_hidden_states=True).hidden_states
        levels = [
            float(torch.quantile(-heads.gate_probability(i, hidden[layer + 1]).flatten(), 0.1))
            for i, layer in enumerate(heads.exit_layers)
        ]
    first = hidden[heads.exit_layers[0] + 1]
    assert torch.equal(uncertainty("gate", heads=heads, index=0, hidden=first), -heads.gate_probability(0, first).float())
    policy = ExitPolicy(heads.exit_layers, "gate", levels)
    full = generate(lm, prompt, 16, heads, policy, strategy="full")
    lazy = generate(lm, prompt, 16, heads, policy, strategy="lazy")
    assert torch.equal(full.tokens, lazy.tokens) and full.flat_exit_indices == lazy.flat_exit_indices
    assert _early(lazy) > 0 and lazy.flat_exit_indices.count(len(heads.exit_layers)) > 1
