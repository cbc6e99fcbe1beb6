"""Every family eebench accepts computes exactly what transformers computes; every other one is refused in one line.

Each supported family runs on a tiny random fp32 model with what makes it differ switched on (sliding
windows shorter than the prompts, GQA, partial rotary, multipliers, soft-capping, project_in/out, ALiBi).
"""

import json
from pathlib import Path

import pytest
import torch
from engine_support import median_entropy_policy, random_prompts, tiny_backbone
from transformers import AutoConfig, GenerationConfig

from eebench.backbones import load_backbone
from eebench.backbones.families import FAMILIES, REFUSED, family_for, markdown_table, supported_list
from eebench.backbones.tiny import FAMILY_ARCHS, REFUSED_ARCHS, WINDOW, make_tiny_model
from eebench.cli import main
from eebench.config import BackboneConfig
from eebench.engine.generate import generate
from eebench.engine.kv import RaggedKVCache
from eebench.errors import EEBenchError

LENGTHS = [9, 13, 6]  # every prompt is longer than the sliding window
NEW = 10
EXITS = (1, 2)  # heads below the last of 4 blocks, so DSSD can draft


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="session")
def family_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    return {arch: make_tiny_model(arch, root / arch, num_layers=4, family_features=True) for arch in FAMILY_ARCHS}


@pytest.fixture(scope="session")
def family_setups(family_dirs):
    """(backbone, heads) per family, built once: the tests below only read them."""
    return {}


def _setup(family_setups, family_dirs, arch):
    if arch not in family_setups:
        family_setups[arch] = tiny_backbone(family_dirs[arch], EXITS)
    return family_setups[arch]


@torch.no_grad()
def _transformers_greedy(model, prompt):
    """transformers' greedy decoding, never stopping and never suppressing any token (EOS included)."""
    # eos_token_id=[]: a None would be refilled from the model's config (see eebench/timing/workloads.py)
    config = GenerationConfig(max_new_tokens=NEW, do_sample=False, eos_token_id=[], pad_token_id=0)
    return model.generate(prompt[None], generation_config=config)[0, len(prompt) :]


@torch.no_grad()
def _engine_style_logits(lm, ids, chunks):
    """The layered view run chunk by chunk against the engine's cache and masks (sliding windows included)."""
    cache, outs, start = RaggedKVCache(lm.num_layers, 1, ids.shape[1], torch.device("cpu"), lm.sliding_windows), [], 0
    for size in chunks:
        positions = torch.arange(start, start + size)[None]
        hidden = lm.embed(ids[:, start : start + size], positions)
        rotary = lm.rotary_embeddings(hidden, positions)
        for layer in range(lm.num_layers):
            mask = cache.prepare(layer, [0], positions, [size])
            hidden = lm.run_block(layer, hidden, positions, mask, cache, rotary)
        outs.append(lm.final_logits(hidden))
        start += size
    return torch.cat(outs, dim=1)


def test_every_tiny_family_is_registered_and_has_what_makes_it_differ(family_dirs):
    assert set(FAMILY_ARCHS) == set(FAMILIES)
    config = AutoConfig.from_pretrained(family_dirs["gemma2"])
    assert config.sliding_window == WINDOW and "full_attention" in config.layer_types


@pytest.mark.parametrize("arch", FAMILY_ARCHS)
def test_layered_forward_equals_transformers(family_setups, family_dirs, arch):
    backbone, _ = _setup(family_setups, family_dirs, arch)
    ids = random_prompts([14], seed=2)[0][None]
    with torch.no_grad():
        reference = backbone.model(ids).logits
    for chunks in ([14], [5, 1, 1, 7], [3, 4, 7]):
        torch.testing.assert_close(_engine_style_logits(backbone.layered, ids, chunks), reference, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("arch", FAMILY_ARCHS)
def test_engine_full_greedy_equals_transformers_generate(family_setups, family_dirs, arch):
    backbone, _ = _setup(family_setups, family_dirs, arch)
    prompts = random_prompts(LENGTHS, seed=3)
    ours = generate(backbone.layered, prompts, NEW)
    for row, prompt in enumerate(prompts):
        assert torch.equal(ours.tokens[row], _transformers_greedy(backbone.model, prompt)), f"row {row}"


@pytest.mark.parametrize("arch", FAMILY_ARCHS)
def test_lazy_equals_full_and_dssd_equals_generate(family_setups, family_dirs, arch):
    backbone, heads = _setup(family_setups, family_dirs, arch)
    prompts = random_prompts(LENGTHS, seed=4)
    policy = median_entropy_policy(backbone.model, heads, prompts)
    full = generate(backbone.layered, prompts, NEW, heads, policy, strategy="full")
    lazy = generate(backbone.layered, prompts, NEW, heads, policy, strategy="lazy")
    assert torch.equal(full.tokens, lazy.tokens) and full.row_exit_indices == lazy.row_exit_indices
    early = sum(1 for i in lazy.flat_exit_indices if i < len(EXITS))
    assert early >= 3, f"only {early} tokens exited early: the test would prove little"
    dssd = generate(backbone.layered, prompts, NEW, heads, policy, "dssd", max_draft=3)
    assert dssd.speculation.drafted > 0
    for row, prompt in enumerate(prompts):
        assert torch.equal(dssd.tokens[row], _transformers_greedy(backbone.model, prompt)), f"row {row}"


def test_sliding_window_mask_keeps_only_the_last_window_keys():
    cache = RaggedKVCache(2, 1, 16, torch.device("cpu"), windows=[None, 3])
    positions = torch.arange(6)[None]
    assert cache.prepare(0, [0], positions, [6])[0, 0, 5].tolist() == [True] * 6
    assert cache.prepare(1, [0], positions, [6])[0, 0, 5].tolist() == [False, False, False, True, True, True]


def _assert_one_line_refusal(message: str, family: str):
    assert f"'{family}'" in message and supported_list() in message and "\n" not in message


@pytest.mark.parametrize("arch", REFUSED_ARCHS)
def test_refused_family_is_one_line_error(tmp_path, arch):
    directory = make_tiny_model(arch, tmp_path / arch, num_layers=2)
    with pytest.raises(EEBenchError) as info:
        load_backbone(BackboneConfig(name="refused", name_or_path=str(directory)), "cpu")
    _assert_one_line_refusal(str(info.value), arch)


@pytest.mark.parametrize(
    "model_type, overrides, fragment",
    [
        ("falcon", {"alibi": True}, "alibi=true"),
        ("gemma3_text", {"use_bidirectional_attention": True}, "use_bidirectional_attention"),
        ("gemma3", {}, "text-only"),
    ],
)
def test_refused_variant_is_one_line_error(model_type, overrides, fragment):
    with pytest.raises(EEBenchError) as info:
        family_for(AutoConfig.for_model(model_type, **overrides))
    assert fragment in str(info.value)
    _assert_one_line_refusal(str(info.value), model_type)


def test_custom_code_needs_trust_remote_code(tmp_path):
    config = {"model_type": "my_custom_lm", "auto_map": {"AutoConfig": "configuration_custom.CustomConfig"}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(EEBenchError) as info:
        load_backbone(BackboneConfig(name="custom", name_or_path=str(tmp_path)), "cpu")
    assert "backbone.trust_remote_code=true" in str(info.value) and "\n" not in str(info.value)


def test_docs_support_table_is_generated_from_the_registry(capsys):
    backbones_doc = (Path(__file__).resolve().parents[1] / "docs" / "backbones.md").read_text()
    assert markdown_table() in backbones_doc
    assert main(["families", "--markdown"]) == 0
    assert capsys.readouterr().out.strip() == markdown_table()
    assert all(f"`{name}`" in markdown_table() for name in list(FAMILIES) + list(REFUSED))
