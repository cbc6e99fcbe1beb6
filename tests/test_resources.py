"""A point that cannot fit its hidden-state cache on disk or its head training in memory stops in one line, before
the expensive work starts."""

from __future__ import annotations

import pytest
from conftest import ROOT, _write_prose
from hydra import compose, initialize_config_dir

from eebench import resources
from eebench.config import register_configs, validate
from eebench.errors import EEBenchError
from eebench.experiment import run_experiment
from eebench.resources import states_bytes, training_bytes


def _smoke(tiny_model_dirs, tmp_path):
    register_configs()
    overrides = [
        "experiment=smoke",
        f"backbone.name_or_path={tiny_model_dirs['llama']}",
        "backbone.dtype=float32",
        f"data.source={_write_prose(tmp_path / 'prose.txt')}",
        "eval.tasks=[]",
        "timing=none",
        "logger=none",
    ]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return validate(compose("config", overrides=overrides))


def test_the_estimates_count_what_is_stored_and_trained():
    assert states_bytes(layers=5, tokens=1000, hidden=64, state_dtype="float16") == 5 * 1000 * 64 * 2
    assert training_bytes(trainable_parameters=10, batch_tokens=3, vocab=7) == 10 * 20 + 4 * 3 * 7 * 4


@pytest.mark.parametrize(
    ("patched", "message"),
    [
        ("free_disk_bytes", r"the hidden-state cache \(5 layers x 2048 tokens x 64 x float16\) needs .* GiB on disk"),
        ("available_memory_bytes", r"training 4 linear heads .* needs .* GiB of cpu memory but 0.00 GiB are available"),
    ],
)
def test_a_point_that_does_not_fit_stops_in_one_line_before_training(tiny_model_dirs, tmp_path, monkeypatch, patched, message):
    cfg = _smoke(tiny_model_dirs, tmp_path)
    monkeypatch.setattr(resources, patched, lambda where: 1)
    with pytest.raises(EEBenchError, match=message) as caught:
        run_experiment(cfg, tmp_path / "run")
    assert "\n" not in str(caught.value) and "allowed:" in str(caught.value)
    assert not list((tmp_path / "cache").glob("heads/*/heads.safetensors"))  # nothing trained
