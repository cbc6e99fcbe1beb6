"""The engine's per-step sharing: one mask and one rotary computation per geometry, no mask where sdpa's own is exact."""

import torch
from engine_support import random_prompts, single_thread, tiny_backbone
from transformers import DynamicCache

from eebench.engine.exit_plan import no_exits
from eebench.engine.generate import generate
from eebench.engine.kv import RaggedKVCache, drop_first, join_runs, runs_of
from eebench.engine.layerwise import LayerwiseDecoder, Request

CPU = torch.device("cpu")


def _prepare(cache, layer, rows, positions):
    width = max(len(p) for p in positions)
    padded = torch.tensor([p + p[-1:] * (width - len(p)) for p in positions])
    return cache.prepare(layer, rows, padded, [len(p) for p in positions])


def _consume(cache, layer, rows, width):
    states = torch.zeros(len(rows), 1, width, 2)
    cache.update(states, states.clone(), layer)


def test_runs_describe_positions_on_the_host():
    assert runs_of([0, 1, 2, 4, 5, 9]) == ((0, 3), (4, 6), (9, 10))
    assert join_runs(((0, 3),), ((3, 5), (7, 8))) == ((0, 5), (7, 8))
    assert drop_first(((0, 2), (4, 7)), 3) == ((5, 7),)
    cache = RaggedKVCache(1, 1, 8, CPU)
    for chunk in ([0, 1, 2], [4], [5, 6]):  # position 3 skipped, as skip mode leaves a deep block
        _prepare(cache, 0, [0], [chunk])
        _consume(cache, 0, [0], len(chunk))
    assert cache.runs[0][0] == ((0, 3), (4, 7)) and cache.stored_positions(0, 0) == [0, 1, 2, 4, 5, 6]
    cache.crop(0, keep_below=5)
    assert cache.stored_positions(0, 0) == [0, 1, 2, 4] and cache.lengths[0][0] == 4


def test_no_mask_exactly_where_the_attention_default_is_the_same_mask():
    cache = RaggedKVCache(2, 2, 16, CPU, windows=[None, 3], implicit_causal=True)
    assert _prepare(cache, 0, [0], [[0, 1, 2]]) is None  # fresh prompt: top-left causal
    _consume(cache, 0, [0], 3)
    assert _prepare(cache, 0, [0], [[3]]) is None  # one query sees every stored key
    _consume(cache, 0, [0], 1)
    mask = _prepare(cache, 0, [0], [[4, 5]])  # two queries after four keys: not top-left causal
    assert mask[0, 0].tolist() == [[True] * 5 + [False], [True] * 6]
    _consume(cache, 0, [0], 2)
    mask = _prepare(cache, 0, [0, 1], [[6], [0, 1]])  # rows of different lengths: padding to hide
    assert mask.shape == (2, 1, 2, 7) and mask[1, 0, 1].tolist() == [True, True] + [False] * 5
    _consume(cache, 0, [0, 1], 2)
    assert _prepare(cache, 1, [0], [[0, 1, 2]]) is None  # within the window of 3
    _consume(cache, 1, [0], 3)
    mask = _prepare(cache, 1, [0], [[3]])  # position 0 fell out of the window
    assert mask[0, 0, 0].tolist() == [False, True, True, True]
    _consume(cache, 1, [0], 1)
    spelled = RaggedKVCache(1, 1, 4, CPU)  # eager attention: every mask spelled out
    assert _prepare(spelled, 0, [0], [[0, 1]]).tolist() == [[[[True, False], [True, True]]]]


def test_full_depth_step_builds_one_mask_and_one_rotary(tiny_model_dirs):
    backbone, _ = tiny_backbone(tiny_model_dirs["llama"])
    lm = backbone.layered
    rotary_calls, masks = [], []
    hook = lm.rotary.register_forward_hook(lambda *args: rotary_calls.append(1))
    run_block = lm.run_block
    lm.run_block = lambda index, hidden, positions, mask, *rest: (
        masks.append(mask) or run_block(index, hidden, positions, mask, *rest)
    )
    try:
        decoder = LayerwiseDecoder(lm, no_exits(), "full", batch=2, capacity=16, device="cpu")
        prompts = random_prompts([4, 6], seed=2)
        for step, requests in enumerate(
            [
                [Request(0, prompts[0], 0), Request(1, prompts[1], 0)],
                [Request(0, torch.tensor([3]), 4), Request(1, torch.tensor([5]), 6)],
            ]
        ):
            rotary_calls.clear(), masks.clear()
            decoder.step(requests)
            assert len(rotary_calls) == 1, f"step {step}"
            assert len(masks) == lm.num_layers and all(m is masks[0] for m in masks), f"step {step}"
            assert masks[0] is not None  # ragged rows need their mask
    finally:
        hook.remove()
        del lm.run_block


@torch.no_grad()
def test_batch_one_full_depth_logits_are_bit_identical_to_transformers(tiny_model_dirs):
    """At batch 1 the engine's blocks get what transformers' forward gives them (no mask, the same kernels)."""
    backbone, _ = tiny_backbone(tiny_model_dirs["llama"])
    lm, model = backbone.layered, backbone.model
    prompt = random_prompts([7], seed=4)[0]
    with single_thread():
        decoder = LayerwiseDecoder(lm, no_exits(), "full", batch=1, capacity=16, device="cpu")
        cache, ids, start = DynamicCache(config=model.config), prompt[None], 0
        for _ in range(4):
            final = decoder.step([Request(0, ids[0], start)]).finals[0]
            ours = lm.logits_of_readout(lm.norm(final.hidden)[-1:])  # as final_predictions reads it out
            theirs = model(ids, past_key_values=cache, use_cache=True, logits_to_keep=1).logits[0]  # as generate asks
            assert torch.equal(ours, theirs)
            start += ids.shape[1]
            ids = theirs.argmax(-1)[None]
    assert torch.equal(
        generate(lm, prompt[None], 6).tokens[0],
        model.generate(prompt[None], max_new_tokens=6, do_sample=False, pad_token_id=0)[0, 7:],
    )
