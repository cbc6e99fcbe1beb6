"""Offline lm-eval tasks on held-out prose (documents never used for head training or calibration):

- ``prose_lastword``: LAMBADA-style; the context is a paragraph without its last word, the target that
  word; accuracy = the word is the greedy continuation (``acc``), plus its perplexity.
- ``prose_perplexity``: loglikelihood_rolling over whole held-out paragraphs (word/byte perplexity, bits per byte).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from eebench.cache import get_or_build
from eebench.data.corpus import DJANGO_SDIST, load_documents, source_identity, split_documents
from eebench.evaluation.task_docs import docs_fields, write_task_yaml

PROSE_TASKS = ("prose_lastword", "prose_perplexity")
_PREFIX = "eebench_"


def _paragraphs(source: str, split_seed: int) -> list[str]:
    heldout = split_documents(load_documents(source), split_seed)["heldout"]
    return [p.strip() for doc in heldout for p in doc.split("\n\n") if 20 <= len(p.split()) <= 120]


def _lastword_rows(paragraphs: list[str]) -> list[dict]:
    rows = []
    for text in paragraphs:
        head, _, last = text.rstrip(" .!?").rpartition(" ")
        if last.isalpha():  # a real word, not code or a number
            rows.append({"context": head, "target": " " + last})
    return rows


def _task_yaml(name: str, data: Path, output_type: str, extra: dict) -> dict:
    return {"task": _PREFIX + name, **docs_fields(data), "output_type": output_type, **extra}


_TASKS = {
    "prose_lastword": (
        "loglikelihood",
        {
            "doc_to_text": "{{context}}",
            "doc_to_target": "{{target}}",
            "metric_list": [
                {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                {"metric": "perplexity", "aggregation": "perplexity", "higher_is_better": False},
            ],
        },
    ),
    "prose_perplexity": (
        "loglikelihood_rolling",
        {
            "doc_to_text": "",
            "doc_to_target": "{{text}}",
            "metric_list": [{"metric": m} for m in ("word_perplexity", "byte_perplexity", "bits_per_byte")],
        },
    ),
}


def _write_data(tmp: Path, source: str, limit: int | None, seed: int, split_seed: int) -> None:
    paragraphs = _paragraphs(source, split_seed)
    random.Random(seed).shuffle(paragraphs)
    rows = {"prose_lastword": _lastword_rows(paragraphs)[:limit], "prose_perplexity": [{"text": p} for p in paragraphs[:limit]]}
    for name, docs in rows.items():
        (tmp / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in docs) + "\n")


def _write_yamls(tmp: Path, data_dir: Path) -> None:
    # A second artifact, written once the data directory has its final path.
    for name, (output_type, extra) in _TASKS.items():
        write_task_yaml(tmp / f"{name}.yaml", _task_yaml(name, data_dir / f"{name}.jsonl", output_type, extra))


def build_prose_tasks(
    names: list[str], source: str, limit: int | None, seed: int = 0, split_seed: int = 0
) -> tuple[str, list[str]]:
    """Held-out prose tasks as lm-eval local tasks: (include_path, lm-eval task names); ``split_seed``
    is the run's seed, which drew its held-out documents (see data.corpus.split_documents)."""
    spec = {
        "source": source if source != "bundled:django-docs" else DJANGO_SDIST[0],
        "source_content": source_identity(source),
        "limit": limit,
        "seed": seed,
        "split_seed": split_seed,
        "version": 1,
    }
    data_dir = get_or_build(
        "prose_data", spec, lambda tmp: _write_data(tmp, source, limit, seed, split_seed), code=(__name__, "eebench.data.corpus")
    )
    # The data entry by key, never by path: the suite's key is the same wherever the cache is mounted.
    code = (__name__, "eebench.evaluation.task_docs")
    suite = get_or_build("prose_suite", {"data": data_dir.name}, lambda tmp: _write_yamls(tmp, data_dir), code=code)
    return str(suite), [_PREFIX + n for n in names]
