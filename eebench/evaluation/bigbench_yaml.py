"""The lm-eval 0.4 task YAML of a converted BIG-bench task: multiple choice scored by log-likelihood (acc, acc_norm),
generative tasks by greedy generation, the answer extracted with the task's own output regex (exact match)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eebench.evaluation.bigbench_sdist import BIGBENCH_SDIST
from eebench.evaluation.task_docs import docs_fields

MAX_GEN_TOKENS = 32
# Which regex match on the (single-line) generation is the answer: BIG-bench takes the first;
# "last" suits models that restate the question before answering ("1 + 6 = 7").
ANSWER_MATCHES = {"first": 0, "last": -1}


def task_yaml(meta: dict, data_file: Path, version: int) -> dict[str, Any]:
    """lm-eval's task config for one converted task (``meta``: its ``meta.json``) whose documents are ``data_file``."""
    config: dict[str, Any] = {
        "task": meta["lm_eval_name"],
        **docs_fields(data_file),  # named relative to the cache: the same YAML wherever the cache is mounted
        "doc_to_text": "query",
        "target_delimiter": " ",
        "metadata": {
            "version": version,
            "bigbench": meta.get("bigbench"),
            "generated": meta.get("generated"),
            "source": "eebench.evaluation.arithmetic_tasks" if meta.get("generated") else BIGBENCH_SDIST,
            "limit": meta["limit"],
            "seed": meta["seed"],
        },
    }
    if meta["kind"] == "multiple_choice":
        config.update(
            {
                "output_type": "multiple_choice",
                "doc_to_choice": "choices",
                "doc_to_target": "gold",
                "metric_list": [_metric("acc"), _metric("acc_norm")],
            }
        )
    else:
        config.update(
            {
                "output_type": "generate_until",
                "doc_to_target": "targets",
                "generation_kwargs": {"until": meta["until"], "do_sample": False, "max_gen_toks": MAX_GEN_TOKENS},
                "filter_list": [
                    {
                        "name": "bigbench_answer",
                        "filter": [
                            {
                                "function": "regex",
                                "regex_pattern": meta["output_regex"],
                                "fallback": "",
                                "group_select": ANSWER_MATCHES[meta["answer"]],
                            },
                            {"function": "take_first"},
                        ],
                    }
                ],
                "metric_list": [_metric("exact_match", regexes_to_ignore=[r"^\s+", r"\s+$"])],
            }
        )
    return config


def _metric(name: str, **kwargs: Any) -> dict[str, Any]:
    return {"metric": name, "aggregation": "mean", "higher_is_better": True, **kwargs}
