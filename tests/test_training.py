"""Head and gate training from cached hidden states: same heads as the backbone path, budget and early stopping,
a state cache that never serves another backbone's states, one-line errors for bad budgets, the paper preset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from eebench.backbones import load_backbone
from eebench.backbones.tiny import make_tiny_model
from eebench.config import BackboneConfig, HeadTrainingConfig, register_configs, validate
from eebench.errors import EEBenchError
from eebench.heads import ExitHeads
from eebench.heads.states import META, LiveStates, cached_states
from eebench.heads.train import train_heads

ROOT = Path(__file__).resolve().parents[1]
SEQ = 16


@pytest.fixture(scope="module")
def backbone(tiny_model_dirs):
    return load_backbone(BackboneConfig(name="tiny", name_or_path=str(tiny_model_dirs["llama"]), dtype="float32"), "cpu")


@pytest.fixture(scope="module")
def tokens():
    return torch.randint(1, 300, (12, SEQ), generator=torch.Generator().manual_seed(0))


def _settings(**overrides) -> HeadTrainingConfig:
    base = dict(
        max_tokens=6 * 2 * SEQ,
        batch_size=2,
        lr=1e-2,
        warmup_steps=1,
        eval_every=2 * SEQ,
        patience=100,
        val_sequences=4,
        state_dtype="float32",
        precision="float32",
    )
    return HeadTrainingConfig(**{**base, **overrides})


def _train(backbone, states, cfg):
    torch.manual_seed(0)
    heads = ExitHeads.create(backbone.layered, [1, 3], "linear")
    for head in heads.heads:  # start away from the logit lens, so that there is something to learn
        head.proj.weight.data += 0.2 * torch.randn_like(head.proj.weight)
    return heads, train_heads(backbone.layered, heads, states, cfg, seed=0)


def test_cached_states_train_the_same_heads_as_running_the_backbone(backbone, tokens):
    cfg = _settings()
    cached = cached_states(backbone, tokens, [1, 3], "float32")
    from_cache, cache_log = _train(backbone, cached, cfg)
    from_backbone, live_log = _train(backbone, LiveStates(backbone.layered, tokens, [1, 3]), cfg)
    for a, b in zip(from_cache.heads.parameters(), from_backbone.heads.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert [h["final_heldout_loss"] for h in cache_log["modules"]] == pytest.approx(
        [h["final_heldout_loss"] for h in live_log["modules"]], rel=1e-4
    )
    # Training did something: the held-out KL fell, and the default half-precision cache learns nearly the same heads.
    assert all(h["best_heldout_loss"] < 0.9 * h["first_heldout_loss"] for h in cache_log["modules"])
    half, _ = _train(backbone, cached_states(backbone, tokens, [1, 3], "float16"), cfg)
    for a, b in zip(half.heads.parameters(), from_cache.heads.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=5e-3)


def test_budget_stops_training_at_the_budget(backbone, tokens):
    cfg = _settings(max_tokens=int(3.5 * 2 * SEQ))  # three and a half batches: three steps
    _, log = _train(backbone, cached_states(backbone, tokens, [1, 3], "float32"), cfg)
    assert log["steps"] == 3 and log["tokens"] == 3 * 2 * SEQ and log["tokens_per_s"] > 0
    for head in log["modules"]:
        assert head["stop_reason"] == "budget" and head["tokens_seen"] == 3 * 2 * SEQ
    assert [c["tokens"] for c in log["curves"]] == [[0, 32, 64, 96]] * 2
    # Every evaluation also probed the head as an entropy exit: one coverage per point, a share of tokens.
    for curve in log["curves"]:
        assert len(curve["coverage"]) == len(curve["top1_agreement"]) == 4
        assert all(0.0 <= c <= 1.0 for c in curve["coverage"] + curve["top1_agreement"])


def test_exit_probe_calibrates_on_one_half_and_judges_the_other():
    from eebench.heads.train import exit_probe

    # Fitting half: agreement stays >= 0.9 up to entropy 0.2, so the threshold is 0.2.
    # Judged half: two of four tokens are <= 0.2 (coverage 0.5), one of them agrees; three of four agree overall.
    entropy = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.15, 0.25, 0.05, 0.5])
    agree = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    assert exit_probe(entropy, agree, 4, 0.9) == {"coverage": 0.5, "agreement": 0.5, "top1_agreement": 0.75}
    # A target nothing reaches: no token exits, and the agreement of exiting tokens is unknown, not 0 or 1.
    assert exit_probe(entropy, torch.zeros(8), 4, 0.9) == {"coverage": 0.0, "agreement": None, "top1_agreement": 0.0}


def test_early_stopping_stops_a_flat_curve_and_says_why(backbone, tokens):
    # lr so small that the held-out KL cannot move by min_delta: each head stops after `patience` flat evaluations.
    cfg = _settings(max_tokens=40 * 2 * SEQ, lr=1e-12, patience=2, min_delta=1e-3)
    _, log = _train(backbone, cached_states(backbone, tokens, [1, 3], "float32"), cfg)
    for head in log["modules"]:
        assert head["stop_reason"] == "converged"
        assert head["evaluations"] == 3 and head["tokens_seen"] == 2 * 2 * SEQ  # one evaluation per step
    assert log["steps"] == 2


def test_gates_train_in_the_same_loop(backbone, tokens):
    from eebench.config import GateConfig
    from eebench.heads.train import train_gates

    torch.manual_seed(0)
    heads = ExitHeads.create(backbone.layered, [1, 3], "linear", gate_width=16)
    for head in heads.heads:
        head.proj.weight.data += 0.2 * torch.randn_like(head.proj.weight)
    gate = GateConfig(width=16, max_tokens=30 * 2 * SEQ, batch_size=2, lr=1e-2)
    log = train_gates(backbone.layered, heads, cached_states(backbone, tokens, [1, 3], "float32"), gate, _settings(), seed=0)
    assert log["loss"] == "bce" and len(log["modules"]) == 2
    assert all(g["best_heldout_loss"] < g["first_heldout_loss"] for g in log["modules"])


def test_state_cache_is_keyed_on_the_backbone_and_rebuilt_when_it_does_not_match(backbone, tokens, tmp_path):
    first = cached_states(backbone, tokens, [1, 3], "float16")
    assert cached_states(backbone, tokens, [1, 3], "float16").directory == first.directory  # reused
    other = load_backbone(
        BackboneConfig(name="other", name_or_path=str(make_tiny_model("llama", tmp_path / "o", seed=1)), dtype="float32"), "cpu"
    )
    rebuilt = cached_states(other, tokens, [1, 3], "float16")
    assert rebuilt.directory != first.directory
    assert not torch.equal(rebuilt.batch(torch.tensor([0]))[0], first.batch(torch.tensor([0]))[0])
    # A state file whose metadata says it came from another backbone is rebuilt, never trusted.
    meta = json.loads((first.directory / META).read_text())
    meta["spec"]["backbone"] = other.identity
    (first.directory / META).write_text(json.dumps(meta))
    again = cached_states(backbone, tokens, [1, 3], "float16")
    assert json.loads((again.directory / META).read_text())["spec"]["backbone"] == backbone.identity
    torch.testing.assert_close(again.batch(torch.tensor([0]))[0], first.batch(torch.tensor([0]))[0])


@pytest.mark.parametrize(
    "override, key",
    [
        ({"max_tokens": 100}, "head.training.max_tokens=100 is smaller than one batch"),
        ({"patience": 0}, "head.training.patience=0 must be >= 1"),
        ({"val_sequences": 800}, "head.training.val_sequences=800 leaves no training sequences"),
        ({"val_sequences": 1}, "head.training.val_sequences=1 must be >= 2"),
        ({"probe_target": 1.0}, "head.training.probe_target=1.0 is outside (0, 1)"),
    ],
)
def test_bad_training_budgets_are_one_line_errors(override, key):
    with pytest.raises(EEBenchError) as err:
        validate({"head": {"training": override}})
    assert key in str(err.value) and "\n" not in str(err.value)


def test_paper_preset_composes_for_the_bundled_and_a_hub_backbone():
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        params = compose("config", overrides=["experiment=paper"], return_hydra_config=True).hydra.sweeper.params
        paper = validate(compose("config", overrides=["experiment=paper"]))
        hub = validate(compose("config", overrides=["experiment=paper", "backbone=pythia-410m"]))
    assert params.confidence == "entropy,gate"
    assert [float(t) for t in params.threshold.split(",")] == [0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99]
    assert paper.backbone.name_or_path == "bundled:smollm2-135m" and hub.backbone.name_or_path == "EleutherAI/pythia-410m"
    for cfg in (paper, hub):
        assert (cfg.placement.kind, cfg.placement.num_heads, cfg.head.kind) == ("equal", 4, "linear")
        assert cfg.calibration.method == "max_coverage" and cfg.timing.enabled and "prose_lastword" in cfg.eval.tasks
        assert cfg.head.training.max_tokens >= 1_000_000 and cfg.head.training.patience >= 1
