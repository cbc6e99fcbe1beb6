"""The results contract: strict reading, one-line errors, and its docs kept in step: docs/results.md generated from the
contract's field comments, and the prose of docs/measurement.md naming only keys that exist."""

from __future__ import annotations

import json
import re

import pytest
from conftest import ROOT
from results_factory import make_results

from eebench.analysis.pareto import BASE_COLUMNS, run_to_row
from eebench.errors import EEBenchError
from eebench.field_docs import field_comments
from eebench.tracking.contract import (
    SCHEMA_VERSION,
    CalibrationResult,
    ExitStats,
    HeldoutCheck,
    Provenance,
    RunResult,
    TaskExitStats,
    read_result,
)
from eebench.tracking.contract_timing import BaselineTiming, TimingResult, WorkloadTiming
from eebench.tracking.results import load_sweeps, write_results
from eebench.tracking.results_doc import GENERATE_COMMAND, contract_sections, results_markdown, stored_fields
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
            "not a valid results file: sweep/1/results.json: "  # named within its sweep, not by the machine's layout
            f"has no schema_version (written by an eebench older than the results schema {SCHEMA_VERSION}, "
            "or not an eebench results file); re-run the point",
        )
    ]


def test_every_summary_key_is_a_row_column_read_from_the_contract():
    row = run_to_row(make_results())
    assert set(SUMMARY_KEYS) <= set(BASE_COLUMNS) <= set(row)
    timed = [key for key in BASE_COLUMNS if "tokens_per_s" in key or "speedup" in key or "prefill" in key]
    assert all(row[key] == row[key] for key in timed)  # no NaN: every timing column reads a real field


RESULTS_DOC = ROOT / "docs" / "results.md"
READOUT_HEADING = "## Reading the numbers in results.json"


def _measurement_readout_section() -> str:
    """docs/measurement.md's prose on where each figure lands in results.json (it names keys in code format)."""
    text = (ROOT / "docs" / "measurement.md").read_text(encoding="utf-8")
    return text.split(READOUT_HEADING, 1)[1].split("\n## ", 1)[0]


NOT_KEYS = {"lazy", "null", "complete", "heldout", "auto"}  # code-formatted words in that section that are values, not keys


def _documented(section: str) -> set[str]:
    """Code-formatted keys: ``exit.fraction``, ``timing.batch_size``, bare timing keys; not file names."""
    words = set(re.findall(r"`([a-z_0-9.*]+)`", section)) - NOT_KEYS
    return {w for w in words if "." not in w or w.startswith(("exit.", "exit_tasks.", "timing.", "calibration.", "provenance."))}


def _matches(pattern: str, key: str) -> bool:
    return re.fullmatch(re.escape(pattern).replace(r"\*", ".*"), key) is not None


def _contract_keys() -> set[str]:
    """Every key a results.json holds at the top level and in ``exit`` and ``timing``, written as the docs write them."""
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
    # The prose writes `exit.fraction` and `timing.batch_size` in full, timing's own keys bare (`speedup`, `full_*`).
    # A baseline's own keys (`exit_layer`, `lossless`, ...) are written bare in the `timing.baselines` sentence.
    bare = {d for d in documented if "." not in d}
    return documented | {f"timing.{d}" for d in bare} | {f"timing.baselines.{d}" for d in bare}


def _reference_entry(place: str, key: str) -> str:
    """The dotted key a row of docs/results.md stands for: ``timing`` + ``speedup`` -> ``timing.speedup``,
    ``timing.full_*`` + ``tokens_per_s`` -> ``timing.full_tokens_per_s``, list places without their ``[]``."""
    place = "" if place == "(top level)" else place.replace("[]", "")
    if place.endswith("_*"):  # a Ratio's value is stored under the field's own name (speedup, not speedup_value)
        return place[:-2] if key == "value" else f"{place[:-1]}{key}"
    return f"{place}.{key}" if place else key


def _reference_keys() -> dict[str, str]:
    """Dotted key -> its meaning, for every row of every table in docs/results.md."""
    entries = {}
    for section in RESULTS_DOC.read_text(encoding="utf-8").split("\n## ")[1:]:
        places = re.findall(r"`([^`]+)`|\(top level\)", re.search(r"^Where: (.*)\.$", section, re.M).group(1))
        rows = re.findall(r"^\| `([^`]+)` \| .*? \| (?:always|optional) \| (.*) \|$", section, re.M)
        for place in places:
            entries.update({_reference_entry(place or "(top level)", key): meaning for key, meaning in rows})
    return entries


def test_results_reference_is_generated_from_the_contract():
    assert RESULTS_DOC.read_text(encoding="utf-8") == results_markdown(), f"docs/results.md is stale; run {GENERATE_COMMAND}"


def test_every_contract_field_has_a_meaning():
    undocumented = [
        f"{section.cls.__name__}.{f.name}"
        for section in contract_sections()
        for f in stored_fields(section.cls)
        if not field_comments(section.cls).get(f.name)
    ]
    assert undocumented == [], f"give these fields a comment saying what they mean: {undocumented}"


def test_results_reference_names_every_key_of_the_contract_with_a_meaning():
    reference = _reference_keys()
    undocumented = [key for key in sorted(_contract_keys()) if not any(_matches(p, key) for p in reference)]
    assert undocumented == [], f"docs/results.md lacks: {undocumented}"
    assert all(meaning.strip() for meaning in reference.values())
    nested = {"timing.full_tokens_per_s", "calibration.heldout.heads.target_met", "heads_training.heads.modules.stop_reason"}
    assert nested <= set(reference)


def test_every_key_the_measurement_prose_names_exists_in_the_contract():
    keys = _contract_keys() | {f"timing.{k}" for k in declared_keys(WorkloadTiming)}
    documented = _documented(_measurement_readout_section())
    assert len(documented) > 50  # the section names the keys it explains
    for name in documented:
        candidates = [name, f"timing.{name}", f"timing.baselines.{name}"]
        assert any(_matches(c, key) for c in candidates for key in keys), f"docs/measurement.md names `{name}`: no such key"
