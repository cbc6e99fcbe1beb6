"""Fixed-block baselines (timing.baselines) in the report: one row per distinct baseline, read through its CI."""

from __future__ import annotations

from test_report_speed import timed_results

from eebench.reporting.report import write_report
from eebench.tracking.results import write_results


def baseline(name: str, speedup: float, ci: tuple[float, float], draft: int | None = 4, flags=()) -> dict:
    return {
        "name": name,
        "exit_layer": 20,
        "draft_length": draft,
        "lossless": name != "static",
        "speedup": speedup,
        "speedup_ci95": list(ci),
        "decode_speedup": speedup,
        "decode_speedup_ci95": list(ci),
        "speedup_vs_engine_full": speedup,
        "speedup_vs_engine_full_ci95": list(ci),
        "tokens_per_s": 10.0,
        "token_match_with_reference": 1.0 if name != "static" else 0.4,
        "sequence_exact_match_with_reference": 1.0 if name != "static" else 0.0,
        "flags": list(flags),
    }


def _section(text: str) -> str:
    return text.split("## Fixed-block baselines", 1)[1].split("\n## ", 1)[0]


def test_baselines_get_one_row_each_with_ci_verdict_and_spread(tmp_path):
    first = timed_results("linear", 1.30, (1.20, 1.40))
    first["timing"]["baselines"] = [baseline("layerskip", 0.80, (0.75, 0.85)), baseline("static", 1.9, (1.7, 2.1), None)]
    second = timed_results("mlp", 1.04, (0.97, 1.10))
    second["timing"]["baselines"] = [baseline("layerskip", 0.90, (0.86, 0.94))]
    write_results(tmp_path / "sweep" / "0", first)
    write_results(tmp_path / "sweep" / "1", second)
    section = _section(write_report([tmp_path / "sweep"], tmp_path / "out").read_text(encoding="utf-8"))
    rows = [line for line in section.splitlines() if line.startswith("| tiny-a")]
    assert len(rows) == 2  # layerskip measured twice is one row
    layerskip = next(r for r in rows if "layerskip" in r)
    # Two measurements: the lower-median one is shown, with the count and the range of point estimates.
    assert "0.80x [0.75–0.85]" in layerskip and "slower than the reference" in layerskip and "2 (0.80–0.90)" in layerskip
    static = next(r for r in rows if "static" in r)
    assert "1.90x [1.70–2.10]" in static and "faster than the reference" in static and "| 0.400 | no |" in static
    # The early-exit points of the same backbone are named for comparison, ranked by CI.
    assert "fastest early-exit point(s) of tiny-a by CI" in section and "1.30x [1.20–1.40]" in section


def test_flagged_baseline_is_marked_and_report_without_baselines_has_no_section(tmp_path):
    flagged = timed_results("linear", 1.30, (1.20, 1.40))
    flagged["timing"]["baselines"] = [baseline("static", 9.0, (8.5, 9.5), None, flags=["above its depth bound"])]
    write_results(tmp_path / "a" / "0", flagged)
    assert "⚠ flagged" in _section(write_report([tmp_path / "a"], tmp_path / "out_a").read_text(encoding="utf-8"))
    write_results(tmp_path / "b" / "0", timed_results("linear", 1.30, (1.20, 1.40)))
    assert "Fixed-block baselines" not in write_report([tmp_path / "b"], tmp_path / "out_b").read_text(encoding="utf-8")
