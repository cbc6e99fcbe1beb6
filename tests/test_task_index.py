"""lm-eval's task index is built once per process and set of task YAMLs, and rebuilt when a YAML is added."""

from __future__ import annotations

from conftest import _write_task

from eebench.evaluation.runner import task_manager


def test_task_manager_is_shared_until_the_task_yamls_change(tmp_path):
    root = _write_task(tmp_path / "tasks")
    first = task_manager([str(root)], defaults=False)
    assert task_manager([str(root)], defaults=False) is first and "tiny_mc" in first.all_tasks
    (root / "tiny_mc2.yaml").write_text((root / "tiny_mc.yaml").read_text().replace("task: tiny_mc", "task: tiny_mc2"))
    second = task_manager([str(root)], defaults=False)
    assert second is not first and "tiny_mc2" in second.all_tasks


def test_without_defaults_only_the_given_tasks_are_indexed(tmp_path):
    root = _write_task(tmp_path / "tasks")
    assert sorted(task_manager([str(root)], defaults=False).all_tasks) == ["tiny_mc"]
