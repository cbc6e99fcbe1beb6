"""Artifacts declare their inputs: cache keys are computed from the declarations (which refuse a spec field they do
not name), and docs/caching.md's cache-key table is generated from them."""

from __future__ import annotations

import json

import pytest

from eebench.cache import Artifact, full_spec
from eebench.cache_doc import ARTIFACTS, DOC, GENERATE_COMMAND, cache_key_table, source_path, with_table
from eebench.exits.metrics import METRICS
from eebench.traces.artifact import TRACES


def _write(path, text):
    path.write_text(text)
    return path


def test_cache_key_table_is_generated_from_the_declarations():
    text = DOC.read_text(encoding="utf-8")
    assert with_table(text, cache_key_table()) == text, f"docs/caching.md's cache-key table is stale; run {GENERATE_COMMAND}"


def test_the_table_has_one_row_per_kind_naming_its_builder_and_every_field():
    table = cache_key_table()
    assert [a.kind for a in ARTIFACTS] == ["heads", "hidden_states", "traces", "scores", "baselines"]
    for artifact in ARTIFACTS:
        (line,) = [line for line in table.splitlines() if line.startswith(f"| `{artifact.kind}` |")]
        assert f"| `{source_path(artifact.builder)}` |" in line
        assert all(f"`{name}`: " in line for name in artifact.inputs)
        assert all(f"`{source_path(module)}`" in line for module in artifact.code)
    assert source_path("eebench.heads.artifact") == "heads/artifact.py"
    assert source_path("eebench.heads.readouts") == "heads/readouts/__init__.py"


def test_a_spec_with_a_field_the_declaration_does_not_name_is_refused():
    demo = Artifact(kind="demo", builder="eebench.cache", inputs={"x": "a number"})
    with pytest.raises(ValueError, match=r"demo spec: fields \['y'\] undeclared, \[\] missing"):
        demo.get_or_build({"x": 1, "y": 2}, lambda tmp: None)
    with pytest.raises(ValueError, match=r"demo spec: fields \[\] undeclared, \['x'\] missing"):
        demo.key({})
    with pytest.raises(ValueError, match="variant modules .* say which in variant_code"):
        demo.key({"x": 1}, ("eebench.errors",))


def test_the_declared_key_names_the_entry_and_covers_the_builders_source(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    builder = _write(tmp_path / "fake_builder.py", "STEP = 1\n")
    demo = Artifact(kind="demo", builder="fake_builder", inputs={"x": "a number"}, variant_code="a variant's module")
    built = []
    entry = demo.get_or_build({"x": 1}, built.append)
    assert entry == demo.entry_dir({"x": 1}) and entry.name == demo.key({"x": 1}) and len(built) == 1
    assert json.loads((entry / "spec.json").read_text()) == full_spec({"x": 1}, ("fake_builder",))
    assert demo.get_or_build({"x": 1}, built.append) == entry and len(built) == 1  # reused
    _write(builder, "STEP = 22\n")  # the builder's code changes: a new entry
    assert demo.get_or_build({"x": 1}, built.append) != entry and len(built) == 2
    variant = _write(tmp_path / "fake_variant.py", "A = 1\n")
    with_variant = demo.key({"x": 1}, ("fake_variant",))
    _write(variant, "A = 22\n")
    assert demo.key({"x": 1}, ("fake_variant",)) != with_variant != demo.key({"x": 1})


def test_every_declared_module_has_a_source_and_the_builder_is_in_the_key():
    for artifact in ARTIFACTS:
        assert artifact.modules[0] == artifact.builder
        assert len(set(artifact.modules)) == len(artifact.modules), f"{artifact.kind} names a module twice"
        assert all(source_path(module).endswith(".py") for module in artifact.modules)


def test_the_trace_key_covers_every_confidence_metric_the_trace_holds():
    metric_modules = {metric.value.__module__ for _, metric in METRICS.items()}
    assert metric_modules <= set(TRACES.modules) and "eebench.exits.metrics" in TRACES.modules
