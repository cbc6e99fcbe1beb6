import pytest
import torch
from engine_support import median_entropy_policy, random_prompts, reference_greedy, tiny_backbone

from eebench.engine.generate import generate
from eebench.engine.kv import RaggedKVCache
from eebench.errors import EEBenchError

NEW = 16
BATCHES = [[7], [5, 9, 3]]  # batch 1, and a batch of prompts of different lengths


pytestmark = pytest.mark.usefixtures("one_thread")


def _speculate(backbone, heads, strategy, prompts, eos_token_id=None):
    if strategy == "dssd":
        policy = median_entropy_policy(backbone.model, heads, prompts)
        return generate(backbone.layered, prompts, NEW, heads, policy, "dssd", eos_token_id, max_draft=4)
    return generate(backbone.layered, prompts, NEW, strategy="layerskip", eos_token_id=eos_token_id, exit_layer=1, draft_length=3)


def _assert_stats_match_labels(out, batch):
    """Accepted drafts keep their exit label; every full pass adds one full-model token after the prompt's."""
    stats, full = out.speculation, len(out.exit_layers)
    assert sum(1 for i in out.flat_exit_indices if i < full) == stats.accepted
    assert sum(1 for i in out.flat_exit_indices if i == full) == stats.full_passes + batch
    assert stats.verifications <= stats.full_passes
    assert stats.acceptance_rate == pytest.approx(stats.accepted / stats.drafted)


@pytest.mark.parametrize("strategy", ["dssd", "layerskip"])
def test_speculation_equals_transformers_greedy(tiny_model_dir, strategy):
    backbone, heads = tiny_backbone(tiny_model_dir)
    drafted = accepted = 0
    for seed, lengths in enumerate(BATCHES):
        prompts = random_prompts(lengths, seed=seed)
        out = _speculate(backbone, heads, strategy, prompts)
        assert out.tokens.shape == (len(prompts), NEW)
        for row, prompt in enumerate(prompts):
            assert torch.equal(out.tokens[row], reference_greedy(backbone.model, prompt, NEW)), f"row {row}"
        _assert_stats_match_labels(out, len(prompts))
        drafted, accepted = drafted + out.speculation.drafted, accepted + out.speculation.accepted
    # Both accepted and rejected drafts must occur, or the KV cropping went untested.
    assert 0 < accepted < drafted, f"drafted={drafted} accepted={accepted}"


@pytest.mark.parametrize("strategy", ["dssd", "layerskip"])
def test_speculation_stops_at_eos_like_transformers(tiny_model_dirs, strategy):
    backbone, heads = tiny_backbone(tiny_model_dirs["gpt_neox"])
    prompts = random_prompts(BATCHES[1], seed=12)
    eos = int(_speculate(backbone, heads, strategy, prompts).tokens[1, 4])
    out = _speculate(backbone, heads, strategy, prompts, eos_token_id=eos)
    assert out.lengths[1] <= 5
    for row, prompt in enumerate(prompts):
        expected = reference_greedy(backbone.model, prompt, NEW, eos_token_id=eos)
        assert torch.equal(out.tokens[row, : out.lengths[row]], expected), f"row {row}"


def test_single_draft_is_still_exact(tiny_model_dirs):
    backbone, heads = tiny_backbone(tiny_model_dirs["llama"])
    prompts = random_prompts(BATCHES[1], seed=13)
    policy = median_entropy_policy(backbone.model, heads, prompts)
    out = generate(backbone.layered, prompts, NEW, heads, policy, "dssd", max_draft=1)
    assert out.speculation.drafted > 0 and out.speculation.verifications == out.speculation.drafted
    for row, prompt in enumerate(prompts):
        assert torch.equal(out.tokens[row], reference_greedy(backbone.model, prompt, NEW))


def test_drafting_from_chosen_heads_only_is_still_exact(tiny_model_dirs):
    backbone, heads = tiny_backbone(tiny_model_dirs["llama"])
    prompts = random_prompts(BATCHES[1], seed=13)
    policy = median_entropy_policy(backbone.model, heads, prompts)
    first = heads.exit_layers[0]
    out = generate(backbone.layered, prompts, NEW, heads, policy, "dssd", max_draft=4, draft_exits=[first])
    assert out.speculation.drafted > 0  # the first head drafts, so the restriction left something to verify
    assert set(out.flat_exit_indices) <= {0, len(out.exit_layers)}  # accepted drafts all came from the first head
    for row, prompt in enumerate(prompts):
        assert torch.equal(out.tokens[row], reference_greedy(backbone.model, prompt, NEW))
    with pytest.raises(EEBenchError, match=r"exit blocks \[99\] are invalid \(\[99\]\); allowed: a non-empty subset"):
        generate(backbone.layered, prompts, NEW, heads, policy, "dssd", draft_exits=[99])


def test_crop_drops_positions_from_every_layer():
    cache = RaggedKVCache(num_layers=2, batch=2, capacity=8, device=torch.device("cpu"))

    def write(layer, rows, positions):
        width = max(len(p) for p in positions)
        padded = torch.tensor([p + p[-1:] * (width - len(p)) for p in positions])
        cache.prepare(layer, rows, padded, [len(p) for p in positions])
        keys = padded[:, None, :, None].float().expand(-1, 1, -1, 2)
        return cache.update(keys, keys.clone(), layer)

    write(0, [0, 1], [[0, 1, 2, 3], [0, 1]])
    write(1, [0], [[0, 1]])  # layer 1 of row 0 lags behind, as lazy leaves it
    write(1, [0], [[2, 3]])
    cache.crop(0, keep_below=2)
    assert cache.stored_positions(0, 0) == [0, 1] and cache.stored_positions(1, 0) == [0, 1]
    assert cache.stored_positions(0, 1) == [0, 1]  # other sequences are untouched
    keys, _ = write(0, [0], [[2]])  # the next write reuses the freed slot
    assert cache.stored_positions(0, 0) == [0, 1, 2] and keys[0, 0, :, 0].tolist() == [0, 1, 2]


def test_speculation_argument_errors(tiny_model_dirs):
    backbone, heads = tiny_backbone(tiny_model_dirs["llama"])
    lm, prompt = backbone.layered, random_prompts([4])
    with pytest.raises(EEBenchError, match="dssd"):
        generate(lm, prompt, 4, strategy="dssd")
    with pytest.raises(EEBenchError, match="exit_layer=None"):
        generate(lm, prompt, 4, strategy="layerskip")
    with pytest.raises(EEBenchError, match=f"exit_layer={lm.num_layers - 1}"):
        generate(lm, prompt, 4, strategy="layerskip", exit_layer=lm.num_layers - 1)
    with pytest.raises(EEBenchError, match="draft length 0"):
        generate(lm, prompt, 4, strategy="layerskip", exit_layer=1, draft_length=0)


def test_speculation_counts_acceptance_per_draft_position_and_merges():
    from eebench.engine.speculative import SpeculationStats

    stats = SpeculationStats()
    decoder = type("D", (), {"stats": stats})()
    from eebench.engine.speculative import SpeculativeDecoder

    for drafted, accepted in ((3, 1), (2, 2), (0, 0), (1, 0)):
        SpeculativeDecoder._record(decoder, drafted, accepted)
    assert (stats.drafted, stats.accepted, stats.full_passes, stats.verifications) == (6, 3, 4, 3)
    assert stats.drafted_at == [3, 2, 1] and stats.accepted_at == [2, 1, 0]
    assert stats.acceptance_by_position == [2 / 3, 1 / 2, 0.0]
    assert stats.mean_accepted_length == 1.0 and stats.tokens_per_full_pass == (3 + 4) / 4
    both = stats.merge(SpeculationStats(drafted=1, accepted=1, full_passes=1, verifications=1, drafted_at=[1], accepted_at=[1]))
    assert both.drafted_at == [4, 2, 1] and both.accepted_at == [3, 1, 0] and both.acceptance_rate == 4 / 7
