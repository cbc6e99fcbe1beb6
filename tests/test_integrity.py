"""Issue 14: nothing stale (keys from every input), nothing lost (checksums, sweep dirs by configuration),
nothing executed (run dirs are data). Real files, real tiny models, real wandb offline, real Hydra."""

import dataclasses
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from conftest import _write_prose
from safetensors.torch import load_file, save_file

from eebench import cache, experiment
from eebench.backbones import load_backbone
from eebench.backbones.loader import resolve_source
from eebench.cli import main as eebench_cli
from eebench.config import (
    BackboneConfig,
    DataConfig,
    ExperimentConfig,
    GateConfig,
    HeadConfig,
    HeadTrainingConfig,
    TimingConfig,
)
from eebench.data.corpus import prepare_splits
from eebench.errors import EEBenchError
from eebench.evaluation.scores import RequestScores, ScoreStore
from eebench.heads import artifact as heads_artifact
from eebench.heads.placement import exit_layers
from eebench.heads.placements.equal import EqualPlacementConfig
from eebench.traces.artifact import build_trace
from eebench.traces.trace import Trace


def _count_builds(kind="demo", spec=None, code=()):
    calls = []

    def build(tmp):
        calls.append(tmp)
        (tmp / "data.json").write_text(json.dumps({"value": 1}))

    return cache.get_or_build(kind, spec or {"x": 1}, build, code=code), calls


# ----------------------------------------------------------------------------- integrity


def test_corrupt_entry_is_detected_moved_aside_and_rebuilt(capsys):
    entry, calls = _count_builds()
    assert len(calls) == 1 and cache.entry_problem(entry) is None
    assert _count_builds()[1] == []  # intact: reused
    (entry / "data.json").write_text("{garbage")
    assert eebench_cli(["cache", "verify"]) == 1
    assert "does not match its checksum" in capsys.readouterr().out
    again, calls = _count_builds()
    assert again == entry and len(calls) == 1 and json.loads((entry / "data.json").read_text()) == {"value": 1}
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and f"demo/{entry.name}" in warnings[0] and "data.json" in warnings[0]
    assert len(list((entry.parent / cache.CORRUPT_DIR).iterdir())) == 1
    assert eebench_cli(["cache", "clear"]) == 0 and eebench_cli(["cache", "verify"]) == 0


def test_entry_missing_a_file_is_rebuilt():
    entry, _ = _count_builds()
    (entry / "data.json").unlink()
    assert cache.entry_problem(entry) == "data.json is missing"
    assert len(_count_builds()[1]) == 1


def test_leftover_temp_folder_is_listed_cleared_and_removed_by_the_next_build(capsys):
    entry, _ = _count_builds()
    leftover = entry.parent / f".{entry.name}.abcd1234"  # what a job killed during a build leaves
    leftover.mkdir()
    (leftover / "half.bin").write_bytes(b"x" * 10)
    eebench_cli(["cache", "ls"])
    assert f".{entry.name}.abcd1234" in capsys.readouterr().out
    assert eebench_cli(["cache", "verify"]) == 1
    assert leftover in cache.clear() and not leftover.exists() and not entry.exists()
    leftover.mkdir()
    _count_builds()  # rebuilding a key removes its own dead temp folders
    assert not leftover.exists()


def _scores():
    return RequestScores(
        torch.zeros(2, 3), torch.ones(2, 3, dtype=torch.bool), {"entropy": torch.ones(1, 3)}, torch.zeros(2, 3, dtype=torch.long)
    )


def test_corrupt_score_file_is_moved_aside_listed_and_cleared(capsys):
    path = cache.cache_root() / "scores" / "abc.safetensors"
    store = ScoreStore(path)
    store.items["r1"], store.dirty = _scores(), True
    store.save()
    assert list(ScoreStore(path).items) == ["r1"]
    path.write_bytes(b"not a safetensors file")
    assert ScoreStore(path).items == {}  # no SafetensorError: moved aside, rescored
    assert "scores/abc.safetensors is corrupt" in capsys.readouterr().err
    store = ScoreStore(path)
    store.items["r2"], store.dirty = _scores(), True
    store.save()
    eebench_cli(["cache", "ls"])
    listing = capsys.readouterr().out
    assert "abc.safetensors" in listing and "corrupt" in listing
    assert eebench_cli(["cache", "clear", "--kind", "scores"]) == 0
    assert not path.exists() and not [p for p in path.parent.rglob("*.safetensors*") if p.suffix != ".lock"]


# ----------------------------------------------------------------------------- keys from every input


@pytest.fixture
def local_gpt2(tmp_path, tiny_model_dirs):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dirs["gpt2"], model)
    return model


def _heads(model_dir, data_file, head_kind="logit_lens"):
    cfg = ExperimentConfig(
        backbone=BackboneConfig(name_or_path=str(model_dir), dtype="float32"),
        head=HeadConfig(kind=head_kind, training=HeadTrainingConfig(val_sequences=2), gate=GateConfig(width=0)),
        data=DataConfig(source=str(data_file), seq_len=32, train_sequences=4, calibration_sequences=2, heldout_sequences=2),
        placement=EqualPlacementConfig(num_heads=2),
    )
    backbone = load_backbone(cfg.backbone, "cpu")
    layers = exit_layers(cfg.placement, backbone.num_layers)
    splits = prepare_splits(cfg.data, backbone.tokenizer)
    heads, directory = heads_artifact.build_heads(cfg, backbone, layers, splits)
    return backbone, heads, directory, splits


def _complete(kind):
    root = cache.cache_root() / kind
    return sorted(p.name for p in root.iterdir() if cache.is_complete(p)) if root.exists() else []


def test_each_input_alone_changes_the_heads_key(tmp_path, local_gpt2, monkeypatch):
    data = _write_prose(tmp_path / "prose.txt")
    first = _heads(local_gpt2, data)[2]
    assert _heads(local_gpt2, data)[2] == first  # nothing changed: reused
    # A tokenizer file changes (config and weights identical).
    config = json.loads((local_gpt2 / "tokenizer_config.json").read_text())
    (local_gpt2 / "tokenizer_config.json").write_text(json.dumps({**config, "model_max_length": 4096}))
    second = _heads(local_gpt2, data)[2]
    # The data file is edited.
    data.write_text(data.read_text().replace("model", "modal"))
    third = _heads(local_gpt2, data)[2]
    # The code that produces heads changes: a module the heads' declaration names has a new source.
    producer = tmp_path / "fake_head_code.py"
    producer.write_text("STEP = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    declared = heads_artifact.HEADS
    monkeypatch.setattr(heads_artifact, "HEADS", dataclasses.replace(declared, code=(*declared.code, "fake_head_code")))
    fourth = _heads(local_gpt2, data)[2]
    producer.write_text("STEP = 22\n")
    fifth = _heads(local_gpt2, data)[2]
    assert len({first, second, third, fourth, fifth}) == 5
    assert _complete("heads") == sorted(p.name for p in (first, second, third, fourth, fifth))


def test_traces_are_keyed_on_heads_contents_and_replaced_heads_are_rebuilt(tmp_path, local_gpt2, capsys):
    data = _write_prose(tmp_path / "prose.txt")
    backbone, heads, heads_dir, splits = _heads(local_gpt2, data, head_kind="linear")
    trace_dir = build_trace(backbone, heads, heads_dir, splits["calibration"], "calibration").directory
    original = load_file(str(heads_dir / "heads.safetensors"))
    save_file({k: torch.randn_like(v) for k, v in original.items()}, str(heads_dir / "heads.safetensors"))
    backbone, heads, again, _ = _heads(local_gpt2, data, head_kind="linear")
    assert again == heads_dir and "heads.safetensors does not match its checksum" in capsys.readouterr().err
    assert all(torch.equal(v, load_file(str(again / "heads.safetensors"))[k]) for k, v in original.items())
    # Traces follow the heads' contents: other weights under the same folder name get another trace key.
    spec_key = json.loads((trace_dir / "spec.json").read_text())["heads"]
    assert spec_key == cache.content_digest(heads_dir)
    save_file({k: torch.randn_like(v) for k, v in original.items()}, str(heads_dir / "heads.safetensors"))
    cache._write_manifest(heads_dir)  # even a "valid" entry with other weights
    assert cache.content_digest(heads_dir) != spec_key


def test_cache_ls_shows_code_fingerprint(capsys):
    _count_builds(code=("eebench.heads.train",))
    eebench_cli(["cache", "ls"])
    assert cache.code_fingerprint("eebench.heads.train") in capsys.readouterr().out


# ----------------------------------------------------------------------------- inputs


def test_seq_len_beyond_positions_is_one_line_error(local_gpt2):
    cfg = ExperimentConfig(backbone=BackboneConfig(name_or_path=str(local_gpt2), dtype="float32"), data=DataConfig(seq_len=1024))
    backbone = load_backbone(cfg.backbone, "cpu")
    with pytest.raises(EEBenchError, match=r"data.seq_len=1024 exceeds the 512 positions"):
        experiment.check_positions(cfg, backbone)
    ok = ExperimentConfig(backbone=cfg.backbone, data=DataConfig(seq_len=512), timing=TimingConfig(enabled=False))
    experiment.check_positions(ok, backbone)


def test_tokenizer_without_pad_or_eos_is_one_line_error(local_gpt2):
    config = json.loads((local_gpt2 / "tokenizer_config.json").read_text())
    config.update(eos_token=None, pad_token=None, bos_token=None)
    (local_gpt2 / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(EEBenchError, match="neither a pad nor an EOS token"):
        load_backbone(BackboneConfig(name_or_path=str(local_gpt2)), "cpu")


def test_file_as_backbone_directory_is_one_line_error(local_gpt2):
    with pytest.raises(EEBenchError, match=r"backbone.name_or_path=.*is a file, not a model directory"):
        resolve_source(BackboneConfig(name_or_path=str(local_gpt2 / "model.safetensors")))


def test_too_many_heads_for_the_depth_is_one_line_error():
    assert exit_layers(EqualPlacementConfig(num_heads=4), 6) == [1, 2, 3, 4]
    with pytest.raises(EEBenchError, match=r"placement.num_heads=5 is more than a 6-block backbone allows; allowed: 1..4"):
        exit_layers(EqualPlacementConfig(num_heads=5), 6)


# ----------------------------------------------------------------------------- run dirs are data


def test_run_dir_never_turns_on_remote_code_and_paths_must_be_trusted(tmp_path, local_gpt2):
    from eebench.heads import ExitHeads, save_heads
    from eebench.model import EarlyExitModel

    marker = tmp_path / "EXECUTED"
    (local_gpt2 / "configuration_evil.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
        "from transformers import GPT2Config\nclass EvilConfig(GPT2Config):\n    model_type = 'evil'\n"
    )
    config = json.loads((local_gpt2 / "config.json").read_text())
    (local_gpt2 / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoConfig": "configuration_evil.EvilConfig"}}))
    backbone = load_backbone(BackboneConfig(name_or_path=str(local_gpt2), dtype="float32"), "cpu")
    heads_dir, trace_dir = cache.cache_root() / "heads" / "h", cache.cache_root() / "traces" / "t"
    save_heads(ExitHeads.create(backbone.layered, [1, 2], "logit_lens", False, 0), heads_dir)
    trace_dir.mkdir(parents=True)
    Trace({"entropy": torch.rand(2, 6)}, torch.zeros(2, 6, dtype=torch.long), torch.zeros(6, dtype=torch.long)).save(trace_dir)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    from results_factory import make_results

    results = make_results()  # a complete results.json of the contract, pointing at these artifacts
    results["artifacts"] = {
        "heads_dir": str(heads_dir),
        "calibration_trace_dir": str(trace_dir),
        "backbone_config": {"name_or_path": str(local_gpt2), "trust_remote_code": True},
        "calibration_config": {"method": "max_coverage"},
    }
    (run_dir / "results.json").write_text(json.dumps(results))
    with pytest.raises(EEBenchError, match="backbone_config.name_or_path=.*outside the eebench cache"):
        EarlyExitModel.from_run(run_dir, device="cpu")
    # Named by the caller: it loads, and the file's trust_remote_code: true is ignored (nothing executed).
    model = EarlyExitModel.from_run(run_dir, device="cpu", backbone=str(local_gpt2))
    assert model.heads.exit_layers == [1, 2] and not marker.exists()
    elsewhere = tmp_path / "elsewhere_heads"
    shutil.copytree(heads_dir, elsewhere)
    results["artifacts"]["heads_dir"] = str(elsewhere)
    (run_dir / "results.json").write_text(json.dumps(results))
    with pytest.raises(EEBenchError, match="artifacts.heads_dir=.*lies outside the eebench cache"):
        EarlyExitModel.from_run(run_dir, device="cpu", backbone=str(local_gpt2))
    assert not marker.exists()


def test_unwritable_output_dir_is_one_line_error(tmp_path, sweep_env):
    from conftest import run_eebench

    env, common = sweep_env
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    proc = run_eebench([*common, "logger=none", f"hydra.run.dir={blocker / 'run'}"], tmp_path, env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "hydra.run.dir=" in proc.stderr and "not a writable directory" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="posix paths")
def test_cache_root_unwritable_is_one_line_error(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("EEBENCH_CACHE", str(tmp_path / "file" / "cache"))
    with pytest.raises(EEBenchError, match="EEBENCH_CACHE="):
        cache.cache_root()


# ----------------------------------------------------------------------------- W&B completeness

import test_tracking  # noqa: E402
from results_factory import make_results  # noqa: E402

offline_wandb = test_tracking.offline_wandb


def test_finished_point_missing_from_wandb_is_reported_then_logged_on_resume(tmp_path, offline_wandb, capsys):
    from omegaconf import OmegaConf

    from eebench.pipeline import _log_if_missing
    from eebench.tracking.results import write_results
    from eebench.tracking.wandb_sink import WandbSink, is_logged

    sweep = tmp_path / "sweep"
    logged, killed = sweep / "a", sweep / "b"
    write_results(logged, make_results(threshold=0.8))
    sink = WandbSink(True, "eebench-test", "offline", None, logged, sweep, "sweep", "a", {})
    sink.log_results(json.loads((logged / "results.json").read_text()))
    sink.finish()
    assert is_logged(logged)
    # Point b wrote results.json, then was killed before logging (no "logged" record).
    write_results(killed, make_results(threshold=0.95))
    assert eebench_cli(["report", str(sweep / "wandb"), "--out", str(tmp_path / "report")]) == 0
    report = (tmp_path / "report" / "report.md").read_text()
    missing = [line for line in report.splitlines() if "missing from W&B" in line]
    assert len(missing) == 1 and f"`{killed.parent.name}/{killed.name}`" in missing[0]  # named by sweep/point
    # The resumed sweep finds b finished but not logged, and logs it.
    cfg = OmegaConf.structured(ExperimentConfig())
    _log_if_missing(cfg, {}, killed, sweep, json.loads((killed / "results.json").read_text()))
    assert is_logged(killed) and "not yet logged to W&B; logging it now" in capsys.readouterr().out
    assert eebench_cli(["report", str(sweep / "wandb"), "--out", str(tmp_path / "report2")]) == 0
    assert "missing from W&B" not in (tmp_path / "report2" / "report.md").read_text()
    # W&B's staging copies stay inside the sweep, not in the user's home.
    assert list((sweep / "wandb" / ".data").rglob("*")), "no W&B staging inside the sweep dir"


def test_sync_hint_names_only_folders_that_exist(tmp_path, offline_wandb, capsys):
    from eebench.tracking.wandb_sink import WandbSink

    sink = WandbSink(False, "p", "offline", None, tmp_path / "sweep" / "a", tmp_path / "sweep", "g", "a", {})
    sink._warn("log", RuntimeError("boom"))
    line = capsys.readouterr().err
    assert "wandb sync" not in line and "No W&B files were written" in line


# ----------------------------------------------------------------------------- sweep directories


def test_relaunching_another_sweep_keeps_every_point_and_failed_points_exit_nonzero(tmp_path, sweep_env):
    from conftest import point_results, run_eebench

    env, common = sweep_env
    sweep = tmp_path / "sweep"
    base = ["-m", *common, "logger=none", "timing=none", f"hydra.sweep.dir={sweep}"]
    first = run_eebench([*base, "threshold=0.8,1.5"], tmp_path, env)
    assert first.returncode == 1, first.stderr[-3000:]
    [failure] = [line for line in first.stderr.splitlines() if line.startswith("error: 1 point(s)")]
    assert "threshold=1.5" in failure and (sweep / "report.md").exists()  # the report is written first
    second = run_eebench([*base, "threshold=0.95"], tmp_path, env)
    assert second.returncode == 0, second.stderr[-3000:]  # the earlier failure is in the report, not this exit
    assert [r["threshold"] for r in point_results(sweep, "threshold")] == [0.8, 0.95]
    summary = (sweep / "summary.csv").read_text()
    assert "0.8" in summary and "0.95" in summary


def test_report_counts_one_point_per_configuration(tmp_path):
    import os

    from eebench.tracking.results import load_sweeps, write_results

    sweep = tmp_path / "sweep"
    for name, threshold in (("0", 0.8), ("threshold=0.8_abc", 0.8), ("threshold=0.9_def", 0.9)):
        write_results(sweep / name, make_results(threshold=threshold, acc=0.4 if name == "0" else 0.5))
        (sweep / name / "config.json").write_text(json.dumps({"threshold": threshold, "logger": {"kind": name}}))
    os.utime(sweep / "0" / "results.json", (1, 1))  # the index-named folder of an old launch is older
    runs, skipped = load_sweeps([sweep])
    assert sorted(Path(r.run_dir).name for r in runs) == ["threshold=0.8_abc", "threshold=0.9_def"]
    expected = ("0", "same configuration as sweep/threshold=0.8_abc")  # by sweep/point, not an absolute path
    assert [(Path(d).name, why.split(" (")[0]) for d, why in skipped] == [expected]
