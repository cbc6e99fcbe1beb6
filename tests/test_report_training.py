"""The report's "Head training" section: one budget table and one figure row per set of trained heads."""

from __future__ import annotations

from results_factory import make_results

from eebench.reporting.report import write_report
from eebench.reporting.training import shown_points
from eebench.tracking.results import write_results


def _phase(tokens: int) -> dict:
    module = {
        "exit_layer": 5,
        "tokens_seen": tokens,
        "stop_reason": "budget",
        "final_train_loss": 2.0,
        "first_heldout_loss": 9.0,
        "final_heldout_loss": 3.0,
        "best_heldout_loss": 3.0,
        "evaluations": 3,
    }
    return {
        "max_tokens": tokens,
        "batch_tokens": 1024,
        "steps": tokens // 1024,
        "tokens": tokens,
        "mean_tokens_per_module": tokens,
        "seconds": 100.0,
        "tokens_per_s": 110.0,
        "precision": "float32",
        "loss": "kl",
        "modules": [module],
    }


def trained(head: str, heads_dir: str, coverage: list[float]) -> dict:
    results = make_results()
    results["head"] = head
    results["artifacts"]["heads_dir"] = heads_dir
    results["heads_training"] = {
        "heads": _phase(32768),
        "probe_target": 0.9,
        "curves": [
            {
                "module": "head",
                "exit_layer": 5,
                "tokens": [0, 16384, 32768],
                "train": [None, 4.0, 3.5],
                "heldout": [9.0, 4.0, 3.0],
                "coverage": coverage,
                "agreement": [None, 0.91, 0.93],
                "top1_agreement": [0.2, 0.5, 0.6],
            },
            # Gates' curves are not part of the head-training study.
            {"module": "gate", "exit_layer": 5, "tokens": [0, 8192], "train": [None, 0.5], "heldout": [0.7, 0.5]},
        ],
    }
    return results


def _section(text: str) -> str:
    return text.split("## Head training", 1)[1].split("\n## ", 1)[0]


def test_each_set_of_trained_heads_gets_its_budget_table_once(tmp_path):
    # Two points share the linear heads (one table), a third has mlp heads (a second table).
    write_results(tmp_path / "sweep" / "0", trained("linear", "/cache/heads/a", [0.0, 0.2, 0.3]))
    write_results(tmp_path / "sweep" / "1", trained("linear", "/cache/heads/a", [0.0, 0.2, 0.3]))
    write_results(tmp_path / "sweep" / "2", trained("mlp", "/cache/heads/b", [0.0, 0.4, 0.5]))
    section = _section(write_report([tmp_path / "sweep"], tmp_path / "out").read_text(encoding="utf-8"))
    assert section.count("tiny-a/linear") >= 2 and "tiny-a/mlp" in section  # sentence + table title each
    rows = [line for line in section.splitlines() if line.startswith("| block 5")]
    assert rows == [
        "| block 5 | KL 9.00 · 0% (–) | KL 4.00 · 20% (0.91) | KL 3.00 · 30% (0.93) |",
        "| block 5 | KL 9.00 · 0% (–) | KL 4.00 · 40% (0.91) | KL 3.00 · 50% (0.93) |",
    ]
    assert "| head | 0 tokens | 16,384 tokens | 32,768 tokens |" in section
    assert "32,768 tokens per head of a 32,768-token budget (32 steps of 1,024 tokens, float32, 110 tokens/s)" in section
    assert (tmp_path / "out" / "figures" / "head_training.png").stat().st_size > 0


def test_no_training_curves_means_no_section_and_long_curves_are_thinned():
    from eebench.reporting.training import training_section

    assert training_section([], "unused") == ([], [])
    assert shown_points(list(range(5))) == [0, 1, 2, 3, 4]
    picks = shown_points(list(range(20)))
    assert len(picks) == 7 and picks[0] == 0 and picks[-1] == 19
