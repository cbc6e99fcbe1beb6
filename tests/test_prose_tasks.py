import json
from pathlib import Path

from conftest import _write_prose
from lm_eval.tasks import TaskManager

from eebench.data.corpus import local_documents, split_documents
from eebench.evaluation.prose_tasks import build_prose_tasks


def test_prose_tasks_use_only_heldout_paragraphs(tmp_path):
    source = str(_write_prose(tmp_path / "prose.txt"))
    include, names = build_prose_tasks(["prose_lastword", "prose_perplexity"], source, limit=5)
    assert names == ["eebench_prose_lastword", "eebench_prose_perplexity"]
    manager = TaskManager(include_path=[include])
    assert set(names) <= set(manager.all_tasks)
    splits = split_documents(local_documents(Path(source)))
    heldout, other = set(splits["heldout"]), set(splits["train"]) | set(splits["calibration"])
    data = Path(include).parent.parent / "prose_data"
    rows = [json.loads(line) for f in data.rglob("prose_lastword.jsonl") for line in f.read_text().splitlines()]
    assert 0 < len(rows) <= 5
    for row in rows:
        text = row["context"] + row["target"]
        assert any(text in doc for doc in heldout) and not any(text in doc for doc in other)
