"""Every stage in float32, bfloat16 and float16, with verdicts that never depend on this machine's CPU flags.

``backbone.dtype=auto`` is tested with injected CPU flags and injected probe timings; every other test pins the
dtype it means. Exactness (engine == transformers, DSSD == greedy) is asserted in float32 only; in 16-bit formats
the tests check that every result is complete and that token match is recorded as a measured number.
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import ROOT, point_results, run_eebench
from hydra import compose, initialize_config_dir

from eebench.backbones import load_backbone
from eebench.backbones import precision as precision_module
from eebench.backbones.precision import DtypeChoice, probe_choice, resolve_dtype, training_precision
from eebench.config import BackboneConfig, register_configs, validate
from eebench.errors import EEBenchError
from eebench.experiment import run_experiment

CPU = torch.device("cpu")
NO_BF16 = {"avx2", "fma"}
BF16 = {"avx2", "avx512_bf16", "amx_bf16"}


def fixed_timer(ms: dict):
    """A probe timer that reports the given milliseconds per dtype instead of measuring."""
    return lambda dtype, shape, device: ms[dtype]


def test_auto_is_float32_where_bfloat16_is_not_native():
    choice = resolve_dtype("auto", CPU, flags=NO_BF16)
    assert choice.dtype == "float32" and "no native bfloat16" in choice.reason


@pytest.mark.parametrize(
    ("fp32_ms", "bf16_ms", "expected"),
    [(0.068, 0.103, "float32"), (0.068, 0.030, "bfloat16"), (0.068, 0.066, "float32")],  # the last is a tie
)
def test_auto_keeps_the_faster_native_precision(fp32_ms, bf16_ms, expected):
    choice = probe_choice((1536, 576), CPU, timer=fixed_timer({torch.float32: fp32_ms, torch.bfloat16: bf16_ms}))
    assert choice.dtype == expected
    assert f"{fp32_ms:.3f} ms in float32" in choice.reason and f"{bf16_ms:.3f} ms in bfloat16" in choice.reason


def test_auto_probes_once_per_machine_and_remembers_the_decision(monkeypatch):
    calls = []

    def probe(shape, device):
        calls.append(shape)
        return DtypeChoice("bfloat16", "auto: injected")

    monkeypatch.setattr(precision_module, "cpu_flags", lambda: BF16)
    monkeypatch.setattr(precision_module, "probe_choice", probe)
    monkeypatch.setattr(precision_module, "machine_busy", lambda device: "")
    first = resolve_dtype("auto", CPU, (64, 16), flags=BF16)
    assert resolve_dtype("auto", CPU, (64, 16), flags=BF16) == first == DtypeChoice("bfloat16", "auto: injected")
    assert calls == [(64, 16)]  # the second point of a sweep reads the first one's decision


def test_a_busy_cpu_is_not_probed_and_nothing_is_remembered(monkeypatch):
    monkeypatch.setattr(precision_module, "machine_busy", lambda device: "load average 3.5 on 2 cores")
    monkeypatch.setattr(precision_module, "probe_choice", lambda shape, device: pytest.fail("probed a busy CPU"))
    choice = resolve_dtype("auto", CPU, (64, 16), flags=BF16)
    assert choice.dtype == "float32" and "busy (load average 3.5 on 2 cores)" in choice.reason
    assert not list((precision_module.cache_root() / "precision").glob("*.json"))


def test_the_real_probe_measures_both_dtypes():
    choice = probe_choice((256, 64), CPU)
    assert choice.dtype in ("float32", "bfloat16") and "ms in float32" in choice.reason


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_explicit_dtypes_load_exactly(tiny_model_dirs, dtype):
    backbone = load_backbone(BackboneConfig(name="tiny", name_or_path=str(tiny_model_dirs["llama"]), dtype=dtype), "cpu")
    assert backbone.dtype == dtype and backbone.model.dtype == getattr(torch, dtype)
    assert backbone.dtype_reason == f"backbone.dtype={dtype} (explicit)"


def test_training_precision_auto_follows_the_backbone():
    assert training_precision("auto", "bfloat16") == "bfloat16"
    assert training_precision("auto", "float32") == "float32" and training_precision("auto", "float16") == "float32"
    assert training_precision("float32", "bfloat16") == "float32"  # explicit stays exact


def _compose(overrides: list[str]):
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=overrides)


def test_a_combination_that_cannot_work_is_refused_at_composition():
    with pytest.raises(EEBenchError) as caught:
        validate(_compose(["backbone.dtype=float16", "head.training.precision=bfloat16"]))
    message = str(caught.value)
    assert "\n" not in message and "head.training.precision=bfloat16" in message and "backbone.dtype=float16" in message
    validate(_compose(["backbone.dtype=float16", "head.training.precision=auto"]))  # the allowed ones compose


def _smoke_overrides(model_dir, prose, dtype: str, run_dir) -> list[str]:
    return [
        "experiment=smoke",
        f"backbone.name_or_path={model_dir}",
        f"backbone.dtype={dtype}",
        f"data.source={prose}",
        "eval.tasks=[]",
        "logger=none",
        "timing.repeats=5",
        f"hydra.run.dir={run_dir}",
    ]


def test_a_point_that_takes_the_bf16_native_decision_completes(tiny_model_dirs, tmp_path, monkeypatch):
    """auto on an injected bf16-native CPU whose injected probe finds bfloat16 faster: the whole point runs in it."""
    from conftest import _write_prose

    monkeypatch.setattr(precision_module, "cpu_flags", lambda: BF16)
    monkeypatch.setattr(precision_module, "machine_busy", lambda device: "")
    timer = fixed_timer({torch.float32: 0.2, torch.bfloat16: 0.1})
    monkeypatch.setattr(precision_module, "probe_choice", lambda shape, device: probe_choice(shape, device, timer))
    prose = _write_prose(tmp_path / "prose.txt")
    cfg = validate(_compose(_smoke_overrides(tiny_model_dirs["llama"], prose, "auto", tmp_path / "run")))
    result = run_experiment(cfg, tmp_path / "run")
    assert result.backbone_dtype == "bfloat16" and "0.100 ms in bfloat16" in result.backbone_dtype_reason
    assert result.heads_training.heads.precision == "bfloat16"  # auto training precision follows the backbone
    assert result.timing.dtype == "bfloat16" and 0.0 <= result.timing.token_match_with_reference <= 1.0


# Three families besides gpt2 (which the float32 sweep tests use); transformers' assistant_early_exit fails inside
# transformers on the GPT-2 and GPT-NeoX families, so those time the engine's baselines only.
PRECISION_SWEEPS = [
    ("llama", "bfloat16", "[static,layerskip,assistant_early_exit]"),
    ("gpt_neox", "bfloat16", "[static,layerskip]"),
    ("phi3", "bfloat16", "[static,layerskip,assistant_early_exit]"),
    ("qwen2", "float16", "[static,layerskip,assistant_early_exit]"),
    ("llama", "float32", "[static,layerskip,assistant_early_exit]"),
]


@pytest.mark.parametrize(("arch", "dtype", "baselines"), PRECISION_SWEEPS)
def test_a_sweep_with_every_strategy_and_baseline_completes_in_each_precision(
    tmp_path, sweep_env, tiny_model_dirs, arch, dtype, baselines
):
    env, common = sweep_env
    common = [arg for arg in common if not arg.startswith(("backbone.", "hydra."))]
    sweep = tmp_path / "sweep"
    args = [
        "-m",
        *common,
        f"backbone.name_or_path={tiny_model_dirs[arch]}",
        f"backbone.name=tiny-{arch}",
        f"backbone.dtype={dtype}",
        "logger=none",
        "timing.strategy=lazy,skip,dssd",
        f"timing.baselines={baselines}",
        f"hydra.sweep.dir={sweep}",
    ]
    proc = run_eebench(args, tmp_path, env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    runs = point_results(sweep, "run_dir")
    assert len(runs) == 3 and {r["status"] for r in runs} == {"complete"}
    for run in runs:
        timing = run["timing"]
        assert run["backbone_dtype"] == dtype == timing["dtype"]
        assert run["heads_training"]["heads"]["precision"] == ("bfloat16" if dtype == "bfloat16" else "float32")
        assert run["tasks"]["tiny_mc"]["acc"] is not None and run["baseline_tasks"]["tiny_mc"]["acc"] is not None
        # Token match is a measured number in every precision, for the strategy and every baseline.
        for match in (timing["token_match_with_reference"], timing["engine_full_token_match_with_reference"]):
            assert isinstance(match, float) and 0.0 <= match <= 1.0
        assert len(timing["baselines"]) == baselines.count(",") + 1
        assert all(0.0 <= row["token_match_with_reference"] <= 1.0 for row in timing["baselines"])
        if dtype == "float32":  # exactness is a float32 property: engine == transformers, DSSD == greedy
            assert timing["engine_full_token_match_with_reference"] == 1.0
            assert timing["strategy"] != "dssd" or timing["token_match_with_reference"] == 1.0
    for name in ("report.md", "report.html", "report.pdf"):
        assert (sweep / name).stat().st_size > 0, name
    assert dtype in (sweep / "report.md").read_text()


def test_states_cached_in_float16_train_heads_for_a_bfloat16_backbone(tiny_model_dirs, tmp_path):
    """The cache's storage dtype, the teacher's dtype and the heads' float32 weights meet at one boundary."""
    from eebench.config import HeadTrainingConfig
    from eebench.heads import ExitHeads
    from eebench.heads.states import cached_states
    from eebench.heads.train import train_heads

    backbone = load_backbone(BackboneConfig(name="tiny", name_or_path=str(tiny_model_dirs["qwen2"]), dtype="bfloat16"), "cpu")
    tokens = torch.randint(1, 300, (8, 16), generator=torch.Generator().manual_seed(0))
    for state_dtype in ("float16", "bfloat16", "float32"):
        for precision in ("float32", "bfloat16"):
            heads = ExitHeads.create(backbone.layered, [1, 3], "linear", dtype=torch.float32)
            states = cached_states(backbone, tokens, heads.exit_layers, state_dtype)
            cfg = HeadTrainingConfig(
                max_tokens=64, batch_size=2, eval_every=32, val_sequences=2, state_dtype=state_dtype, precision=precision
            )
            log = train_heads(backbone.layered, heads, states, cfg, seed=0)
            assert log["precision"] == precision and all(m["final_heldout_loss"] >= 0 for m in log["modules"])
            assert {p.dtype for p in heads.parameters()} == {torch.float32}
    assert json.loads((states.directory / "states.json").read_text())["dtype"] == "float32"
