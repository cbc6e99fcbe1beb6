"""The results contract: strict reading, one-line errors, and README's "Reading the results" kept in step."""

from __future__ import annotations

import json
import re

import pytest
from conftest import ROOT
from test_reporting import make_results

from eebench.analysis.pareto import BASE_COLUMNS, run_to_row
from eebench.errors import EEBenchError
from eebench.tracking.contract import (
    SCHEMA_VERSION,
    BaselineTiming,
    CalibrationResult,
    ExitStats,
    HeldoutCheck,
    Provenance,
    RunResult,
    TaskExitStats,
    TimingResult,
    WorkloadTiming,
    read_result,
)
from eebench.tracking.results import load_sweeps, write_results
from eebench.tracking.schema import declared_keys
from eebench.tracking.wandb_sink import SUMMARY_KEYS


def test_round_trip_keeps_every_key_and_value():
    data = make_results(diagnostics=True)
    assert RunResult.from_dict(data).to_dict() == data
    assert RunResult.from_dict(data).timing.early_exit.tokens_per_s == data["timing"]["early_exit_tokens_per_s"]


def test_renamed_missing_and_mistyped_fields_are_errors_naming_the_file(tmp_path):
    write_results(tmp_path / "run", make_results())
    path = tmp_path / "run" / "results.json"
    text = path.read_text()
    path.write_text(text.replace('"full_decode_ms_per_token"', '"full_decode_ms"'))
    with pytest.raises(EEBenchError, match=re.escape(f"{path}: timing.full_* has no field(s) ['decode_ms_per_token']")):
        read_result(tmp_path / "run")
    path.write_text(text.replace('"num_layers": 30', '"num_layers": "thirty"', 1))
    with pytest.raises(EEBenchError, match="num_layers is str 'thirty', expected int"):
        read_result(tmp_path / "run")


def test_older_schema_is_one_line(tmp_path):
    older = {**make_results(), "schema_version": SCHEMA_VERSION - 1}
    with pytest.raises(EEBenchError, match=f"older eebench \\(results schema {SCHEMA_VERSION - 1}") as info:
        RunResult.from_dict(older, "x/results.json")
    assert "\n" not in str(info.value)


def test_sweep_loader_skips_files_off_contract_with_the_reason(tmp_path):
    write_results(tmp_path / "sweep" / "0", make_results())
    (tmp_path / "sweep" / "1").mkdir(parents=True)
    (tmp_path / "sweep" / "1" / "results.json").write_text(json.dumps({"status": "complete"}))
    runs, skipped = load_sweeps([tmp_path / "sweep"])
    assert [run.run_dir for run in runs] == [str(tmp_path / "sweep" / "0")]
    assert skipped == [
        (
            str(tmp_path / "sweep" / "1"),
            f"not a valid results file: {tmp_path / 'sweep' / '1' / 'results.json'}: "
            f"has no schema_version (written by an eebench older than the results schema {SCHEMA_VERSION}, "
            "or not an eebench results file); re-run the point",
        )
    ]


def test_every_summary_key_is_a_row_column_read_from_the_contract():
    row = run_to_row(make_results())
    assert set(SUMMARY_KEYS) <= set(BASE_COLUMNS) <= set(row)
    timed = [key for key in BASE_COLUMNS if "tokens_per_s" in key or "speedup" in key or "prefill" in key]
    assert all(row[key] == row[key] for key in timed)  # no NaN: every timing column reads a real field


def _readme_results_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text.split("## Reading the results", 1)[1].split("\n## ", 1)[0]


NOT_KEYS = {"lazy", "null", "complete", "heldout", "auto"}  # code-formatted words in that section that are values, not keys


def _documented(section: str) -> set[str]:
    """Code-formatted keys: ``exit.fraction``, ``timing.batch_size``, bare timing keys; not file names."""
    words = set(re.findall(r"`([a-z_0-9.*]+)`", section)) - NOT_KEYS
    return {w for w in words if "." not in w or w.startswith(("exit.", "exit_tasks.", "timing.", "calibration.", "provenance."))}


def _matches(pattern: str, key: str) -> bool:
    return re.fullmatch(re.escape(pattern).replace(r"\*", ".*"), key) is not None


def _contract_keys() -> set[str]:
    """Every key a results.json holds at the top level and in ``exit`` and ``timing``, as README names them."""
    keys = set(declared_keys(RunResult))
    keys |= {f"exit.{k}" for k in declared_keys(ExitStats)}
    keys |= {f"timing.{k}" for k in declared_keys(TimingResult)}
    keys |= {f"calibration.{k}" for k in declared_keys(CalibrationResult)}
    keys |= {f"calibration.heldout.{k}" for k in declared_keys(HeldoutCheck)}
    keys |= {f"exit_tasks.{k}" for k in declared_keys(TaskExitStats)}
    keys |= {f"provenance.{k}" for k in declared_keys(Provenance)}
    keys |= {f"timing.baselines.{k}" for k in declared_keys(BaselineTiming)}
    return keys


def _leaves(documented: set[str]) -> set[str]:
    # README writes `exit.fraction` and `timing.batch_size` in full, timing's own keys bare (`speedup`, `full_*`).
    # A baseline's own keys (`exit_layer`, `lossless`, ...) are written bare in the `timing.baselines` sentence.
    bare = {d for d in documented if "." not in d}
    return documented | {f"timing.{d}" for d in bare} | {f"timing.baselines.{d}" for d in bare}


def test_readme_names_every_key_of_the_contract():
    patterns = _leaves(_documented(_readme_results_section()))
    undocumented = [key for key in sorted(_contract_keys()) if not any(_matches(p, key) for p in patterns)]
    assert undocumented == [], f"add these to README 'Reading the results': {undocumented}"


def test_every_key_readme_documents_exists_in_the_contract():
    keys = _contract_keys() | {f"timing.{k}" for k in declared_keys(WorkloadTiming)}
    for documented in _documented(_readme_results_section()):
        candidates = [documented, f"timing.{documented}", f"timing.baselines.{documented}"]
        assert any(_matches(c, key) for c in candidates for key in keys), f"README documents `{documented}`: no such key"
