"""benchmarks/train_speed.py: every variant trains from one cache build, and the readout's rows are what it says."""

import json

import pytest
from conftest import _write_prose, benchmark_module
from engine_support import single_thread


def test_train_speed_compares_readouts_from_one_state_cache(tiny_model_dirs, tmp_path, capsys):
    out = tmp_path / "speed.json"
    argv = [
        "--model", str(tiny_model_dirs["llama"]), "--data", str(_write_prose(tmp_path / "prose.txt")),
        "--num-heads", "2", "--seq-len", "16", "--batch-size", "2", "--train-tokens", "64", "--val-sequences", "2",
        "--variants", "full@float32,shortlist:16@float32,shortlist:16@bfloat16", "--threads", "1", "--out", str(out),
    ]  # fmt: skip
    with single_thread():
        result = benchmark_module("train_speed").main(argv)
    assert json.loads(out.read_text())["variants"] == result["variants"]
    full, short, short_bf16 = result["variants"]
    assert [v["precision"] for v in result["variants"]] == ["float32", "float32", "bfloat16"]
    assert full["rows"] > short["rows"] == 16
    assert full["teacher_mass_outside_rows"] is None and 0 < short["teacher_mass_outside_rows"] < 1
    assert short["teacher_mass_outside_rows"] == short_bf16["teacher_mass_outside_rows"]  # the same rows, same states
    assert full["loss"] == "kl" and short["loss"] == "kl_over_readout_rows"
    # Linear heads: hidden x rows trainable weights per head, so the parameter counts scale with the rows.
    assert full["trainable_parameters"] * 16 == short["trainable_parameters"] * full["rows"]
    for v in result["variants"]:
        assert v["tokens"] == 64 and v["tokens_per_s"] > 0
        assert v["hours_per_1m_tokens"] == pytest.approx(1e6 / v["tokens_per_s"] / 3600)
    assert full["speedup_vs_first"] == 1.0
    assert '"variant": "shortlist:16@bfloat16"' in capsys.readouterr().out


def test_train_speed_rejects_unknown_readout():
    from eebench.errors import EEBenchError

    with pytest.raises(EEBenchError, match="readout"):
        benchmark_module("train_speed").parse_variant("shortlst:16@float32")
