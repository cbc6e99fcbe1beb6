"""lm-eval's task index is built once per process and set of task YAMLs, and rebuilt when a YAML is added; lm-eval's
own tasks are indexed only for a launch that names one."""

from __future__ import annotations

import pytest
from conftest import _write_task

from eebench.config import EvalConfig
from eebench.errors import EEBenchError
from eebench.evaluation.runner import prepare_tasks, task_manager


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


def indexes_built(monkeypatch) -> list[bool]:
    """``include_defaults`` of each TaskManager built from here on: lm-eval's own class, recording what it was asked."""
    import lm_eval.tasks

    built: list[bool] = []

    class Recorded(lm_eval.tasks.TaskManager):
        def __init__(self, *args, include_defaults: bool = True, **kwargs):
            built.append(include_defaults)
            super().__init__(*args, include_defaults=include_defaults, **kwargs)

    monkeypatch.setattr(lm_eval.tasks, "TaskManager", Recorded)
    return built


def lm_eval_suite(tmp_path, tasks: list[str]) -> EvalConfig:
    return EvalConfig(suite="lm_eval", tasks=tasks, include_path=str(_write_task(tmp_path / "tasks")))


def test_a_launch_of_only_its_own_task_yamls_never_indexes_lm_evals_tasks(tmp_path, monkeypatch):
    built = indexes_built(monkeypatch)
    _, tasks, manager = prepare_tasks(lm_eval_suite(tmp_path, ["tiny_mc"]), data_source="unused")
    assert built == [False] and tasks == ["tiny_mc"] and manager.all_tasks == ["tiny_mc"]


def test_a_task_the_yamls_do_not_define_falls_back_to_the_whole_index_with_the_same_own_tasks(tmp_path, monkeypatch):
    built = indexes_built(monkeypatch)
    cfg = lm_eval_suite(tmp_path, ["tiny_mc", "arc_easy"])  # arc_easy: one of lm-eval's own tasks
    _, _, manager = prepare_tasks(cfg, data_source="unused")
    assert built == [False, True] and "arc_easy" in manager.all_tasks
    own = task_manager([cfg.include_path], defaults=False)
    assert manager.task_index["tiny_mc"] == own.task_index["tiny_mc"]  # the YAML's task, not one of lm-eval's
    # A name neither index knows stops the launch, from the two indexes already held (a sweep builds each once).
    unknown = EvalConfig(suite="lm_eval", tasks=["no_such_task"], include_path=cfg.include_path)
    with pytest.raises(EEBenchError, match="no_such_task"):
        prepare_tasks(unknown, data_source="unused")
    assert built == [False, True]
