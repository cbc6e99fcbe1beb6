"""BIG-bench -> lm-eval conversion, against a tiny fake sdist (nothing is downloaded)."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from eebench.errors import EEBenchError
from eebench.evaluation import bigbench
from eebench.evaluation.bigbench import CURATED_TASKS, GENERATED_TASKS, build_suite, ensure_sdist
from eebench.evaluation.prose_tasks import PROSE_TASKS
from eebench.evaluation.task_docs import docs_path, read_task_yaml

MC_EXAMPLES = [{"input": f"Is {i} even?", "target_scores": {"yes": int(i % 2 == 0), "no": int(i % 2 == 1)}} for i in range(10)]
MC_TASK = {
    "name": "toy_mc",
    "task_prefix": "Answer the question.\n",
    "example_input_prefix": "\nQuestion: ",
    "example_output_prefix": "\nAnswer: ",
    "append_choices_to_input": True,
    "examples": MC_EXAMPLES,
}
GEN_TASK = {
    "name": "toy_gen",
    "examples": [{"input": "What is 1 plus 1?", "target": ["2", "two"]}, {"input": "What is 2 plus 2?", "target": "4"}],
}
FIRST_IS_RIGHT_TASK = {
    "name": "toy_first",
    "examples": [{"input": f"q{i}", "target_scores": {"right": 1, "wrong1": 0, "wrong2": 0, "wrong3": 0}} for i in range(20)],
}
SUBTASK_A = {
    "name": "a",
    "append_choices_to_input": False,
    "examples": [{"input": "red or blue?", "target_scores": {"red": 0, "blue": 1, "green": 0}}],
}
SUBTASK_B = {"name": "b", "examples": [{"input": "up or down?", "target_scores": {"up": 1, "down": 0}}]}


def _add_json(archive: tarfile.TarFile, name: str, data: dict) -> None:
    blob = json.dumps(data).encode()
    info = tarfile.TarInfo(name)
    info.size = len(blob)
    archive.addfile(info, io.BytesIO(blob))


@pytest.fixture
def fake_sdist(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("EEBENCH_CACHE", str(tmp_path / "cache"))
    return write_fake_sdist(tmp_path / "bigbench-1.0.0.tar.gz")


def write_fake_sdist(path: Path) -> Path:
    """A tiny stand-in for the BIG-bench sdist, with the toy tasks above."""
    path.parent.mkdir(parents=True, exist_ok=True)
    root = "bigbench-1.0.0/bigbench/benchmark_tasks"
    with tarfile.open(path, "w:gz") as archive:
        _add_json(archive, f"{root}/toy_mc/task.json", MC_TASK)
        _add_json(archive, f"{root}/toy_gen/task.json", GEN_TASK)
        _add_json(archive, f"{root}/toy_first/task.json", FIRST_IS_RIGHT_TASK)
        _add_json(archive, f"{root}/toy_sub/task.json", {"name": "toy_sub"})  # examples only in subtasks
        _add_json(archive, f"{root}/toy_sub/a/task.json", SUBTASK_A)
        _add_json(archive, f"{root}/toy_sub/b/task.json", SUBTASK_B)
        _add_json(archive, "bigbench-1.0.0/setup.json", {"not": "a task"})
    return path


def _configs(include_path: str) -> dict[str, dict]:
    return {c["task"]: c for c in (read_task_yaml(p) for p in Path(include_path).glob("*.yaml"))}


def _rows(config: dict) -> list[dict]:
    return [json.loads(line) for line in docs_path(config).read_text().splitlines()]


def test_yaml_files_name_their_documents_relative_to_the_cache(fake_sdist):
    include, names = build_suite(["bigbench:toy_mc", "bigbench:toy_gen"], sdist=fake_sdist)
    assert names == ["eebench_bb_toy_mc", "eebench_bb_toy_gen"]
    configs = _configs(include)
    assert set(configs) == set(names)
    for config in configs.values():
        assert not Path(config["dataset_kwargs"]["cache_file"]).is_absolute() and docs_path(config).is_file()
    assert configs["eebench_bb_toy_mc"]["output_type"] == "multiple_choice"
    assert [m["metric"] for m in configs["eebench_bb_toy_mc"]["metric_list"]] == ["acc", "acc_norm"]
    assert configs["eebench_bb_toy_gen"]["output_type"] == "generate_until"


def test_multiple_choice_rows_point_at_highest_scoring_choice(fake_sdist):
    include, _ = build_suite(["bigbench:toy_mc"], sdist=fake_sdist)
    rows = _rows(_configs(include)["eebench_bb_toy_mc"])
    assert sorted(int(r["id"]) for r in rows) == list(range(10))
    for row in rows:
        example = MC_EXAMPLES[int(row["id"])]
        assert sorted(row["choices"]) == sorted(example["target_scores"])
        assert row["choices"][row["gold"]] == max(example["target_scores"], key=example["target_scores"].get)
        listing = "".join(f"\n  choice: {choice}" for choice in row["choices"])  # same order as scored
        assert row["query"] == f"Answer the question.\n\nQuestion: {example['input']}{listing}\nAnswer:"


def test_gold_position_does_not_follow_file_order(fake_sdist):
    include, names = build_suite(["bigbench:toy_first"], sdist=fake_sdist)
    rows = _rows(_configs(include)[names[0]])
    assert all(row["choices"][row["gold"]] == "right" for row in rows)
    assert len({row["gold"] for row in rows}) > 1  # in the file the answer is always first


def test_generate_rows_keep_every_target(fake_sdist):
    include, _ = build_suite(["bigbench:toy_gen"], sdist=fake_sdist)
    rows = sorted(_rows(_configs(include)["eebench_bb_toy_gen"]), key=lambda r: r["id"])
    assert [r["targets"] for r in rows] == [["2", "two"], ["4"]]
    assert rows[0]["query"] == "Q: What is 1 plus 1?\nA:"


def test_subtasks_are_merged_with_their_own_formatting(fake_sdist):
    include, names = build_suite(["bigbench:toy_sub"], sdist=fake_sdist)
    rows = sorted(_rows(_configs(include)[names[0]]), key=lambda r: r["id"])
    assert [r["id"] for r in rows] == ["a/0", "b/0"]
    assert [r["choices"][r["gold"]] for r in rows] == ["blue", "up"]
    assert "choice:" not in rows[0]["query"] and "choice:" in rows[1]["query"]


def test_a_subtask_and_its_parent_can_be_requested_together(fake_sdist):
    include, names = build_suite(["bigbench:toy_sub", "bigbench:toy_sub/a"], sdist=fake_sdist)
    assert names == ["eebench_bb_toy_sub", "eebench_bb_toy_sub__a"]
    assert [len(_rows(_configs(include)[name])) for name in names] == [2, 1]


def test_lm_eval_task_manager_loads_the_docs(fake_sdist):
    from lm_eval.tasks import TaskManager

    include, names = build_suite(["bigbench:toy_mc", "bigbench:toy_gen"], sdist=fake_sdist)
    tasks = TaskManager(include_path=include, include_defaults=False).load(names)["tasks"]
    mc, gen = tasks["eebench_bb_toy_mc"], tasks["eebench_bb_toy_gen"]
    docs = list(mc.eval_docs)
    assert len(docs) == 10
    for doc in docs:
        example = MC_EXAMPLES[int(doc["id"])]
        assert sorted(mc.doc_to_choice(doc)) == sorted(example["target_scores"])
        assert mc.doc_to_choice(doc)[mc.doc_to_target(doc)] == max(example["target_scores"], key=example["target_scores"].get)
        assert example["input"] in mc.doc_to_text(doc)
    assert sorted(gen.doc_to_target(d)[0] for d in gen.eval_docs) == ["2", "4"]


def _oracle_lm(rows_by_query: dict[str, dict]):
    """An lm-eval model answering from the JSONL itself: a full run must score 1.0 if the YAML is right."""
    from lm_eval.api.model import LM

    class OracleLM(LM):
        def loglikelihood(self, requests):
            scores = []
            for request in requests:
                context, continuation = request.args
                row = rows_by_query[context]
                right = continuation.strip() == row["choices"][row["gold"]]
                scores.append((0.0 if right else -5.0, right))
            return scores

        def loglikelihood_rolling(self, requests):
            raise NotImplementedError

        def generate_until(self, requests):
            # Leading space and a trailing sentence: answer extraction and stripping must cope.
            return [f" {rows_by_query[r.args[0]]['targets'][-1]}. Done" for r in requests]

    return OracleLM()


def test_full_lm_eval_run_scores_an_oracle_perfectly(fake_sdist):
    import lm_eval
    from lm_eval.tasks import TaskManager

    include, names = build_suite(["bigbench:toy_mc", "bigbench:toy_gen"], sdist=fake_sdist)
    rows = [row for config in _configs(include).values() for row in _rows(config)]
    results = lm_eval.simple_evaluate(
        model=_oracle_lm({r["query"]: r for r in rows}),
        tasks=names,
        task_manager=TaskManager(include_path=include, include_defaults=False),
    )["results"]
    assert results["eebench_bb_toy_mc"]["acc,none"] == 1.0
    assert results["eebench_bb_toy_gen"]["exact_match,bigbench_answer"] == 1.0


def test_limit_is_respected_deterministic_and_nested(fake_sdist, tmp_path, monkeypatch):
    def ids(limit, seed, cache):
        monkeypatch.setenv("EEBENCH_CACHE", str(tmp_path / cache))
        include, names = build_suite(["bigbench:toy_mc"], limit=limit, seed=seed, sdist=fake_sdist)
        return [r["id"] for r in _rows(_configs(include)[names[0]])]

    first = ids(4, 0, "c1")
    assert len(first) == 4
    assert ids(4, 0, "c2") == first  # rebuilt from scratch in another cache: same subset
    assert ids(6, 0, "c2")[:4] == first  # a larger limit extends the same seeded order
    assert ids(4, 1, "c2") != first
    assert len(ids(100, 0, "c2")) == 10  # a limit above the task size keeps everything


def test_second_call_is_served_from_cache(fake_sdist, monkeypatch):
    first = build_suite(["bigbench:toy_mc"], limit=3, sdist=fake_sdist)

    def no_tar_reads(*args, **kwargs):
        raise AssertionError("the tarball was read again")

    monkeypatch.setattr(bigbench, "_read_task_files", no_tar_reads)
    assert build_suite(["bigbench:toy_mc"], limit=3, sdist=fake_sdist) == first


def test_unknown_task_name_is_a_one_line_error(fake_sdist):
    with pytest.raises(EEBenchError, match="no_such_task") as error:
        build_suite(["no_such_task"], sdist=fake_sdist)
    assert "allowed" in str(error.value) and "strategyqa" in str(error.value)
    with pytest.raises(EEBenchError, match="missing_dir"):
        build_suite(["bigbench:missing_dir"], sdist=fake_sdist)
    with pytest.raises(EEBenchError, match="limit=0"):
        build_suite(["bigbench:toy_mc"], limit=0, sdist=fake_sdist)
    with pytest.raises(EEBenchError, match="bogus"):
        build_suite(["bigbench:toy_mc:bogus"], sdist=fake_sdist)


def test_curated_registry_is_extendable_and_forced_kind(fake_sdist, monkeypatch):
    monkeypatch.setitem(CURATED_TASKS, "toy", {"bigbench": "toy_mc", "kind": "multiple_choice"})
    include, names = build_suite(["toy", "bigbench:toy_gen:generate"], sdist=fake_sdist)
    assert names == ["eebench_bb_toy", "eebench_bb_toy_gen_generate"]
    assert _configs(include)["eebench_bb_toy"]["metadata"]["bigbench"] == "toy_mc"


def test_curated_generative_task_can_take_the_last_number(fake_sdist, monkeypatch):
    monkeypatch.setitem(CURATED_TASKS, "toy_sum", {"bigbench": "toy_gen", "kind": "generate", "answer": "last"})
    include, names = build_suite(["toy_sum", "bigbench:toy_gen"], sdist=fake_sdist)
    configs = _configs(include)
    regex_step = [c["filter_list"][0]["filter"][0] for c in (configs[n] for n in names)]
    assert [step["group_select"] for step in regex_step] == [-1, 0]
    monkeypatch.setitem(CURATED_TASKS, "toy_bad", {"bigbench": "toy_gen", "kind": "generate", "answer": "middle"})
    with pytest.raises(EEBenchError, match="middle"):
        build_suite(["toy_bad"], sdist=fake_sdist)


def _eval_tasks(name: str) -> list[str]:
    return yaml.safe_load((Path(__file__).resolve().parents[1] / "conf" / "eval" / f"{name}.yaml").read_text())["tasks"]


def test_default_suites_need_no_download():
    """smoke, the demo and eval=offline use generated tasks only (plus prose from the training text's sdist); the
    BIG-bench tasks, whose sdist the index no longer lists, are all in eval=bigbench and nowhere else by default."""
    smoke = yaml.safe_load((Path(__file__).resolve().parents[1] / "conf" / "experiment" / "smoke.yaml").read_text())
    defaults = smoke["eval"]["tasks"] + _eval_tasks("demo") + _eval_tasks("offline")
    assert defaults and all(name in GENERATED_TASKS or name in PROSE_TASKS for name in defaults)
    # eval=offline is "every generated task plus the prose tasks"; eval=bigbench every curated BIG-bench task.
    assert set(GENERATED_TASKS) | set(PROSE_TASKS) == set(_eval_tasks("offline"))
    assert set(CURATED_TASKS) == set(_eval_tasks("bigbench"))
    assert {entry["kind"] for entry in GENERATED_TASKS.values()} == {"multiple_choice", "generate"}


def test_ensure_sdist_reuses_a_present_file_and_reports_download_failure(tmp_path, monkeypatch):
    from eebench import downloads

    monkeypatch.delenv(bigbench.SDIST_ENV_VAR, raising=False)
    monkeypatch.setattr(
        downloads.subprocess,
        "run",
        lambda *a, **k: subprocess.CompletedProcess(
            a, 1, stdout="", stderr="ERROR: No matching distribution found for bigbench==1.0.0"
        ),
    )

    def offline_index(*args):
        raise OSError("index unreachable")

    monkeypatch.setattr(downloads, "_download_from_simple_index", offline_index)
    present = tmp_path / "have"
    present.mkdir()
    (present / bigbench.SDIST_FILENAME).write_bytes(b"x")
    assert ensure_sdist(present) == (present / bigbench.SDIST_FILENAME).resolve()
    with pytest.raises(EEBenchError, match="bigbench==1.0.0") as error:
        ensure_sdist()
    assert "No matching distribution" in str(error.value) and "index unreachable" in str(error.value)
    assert not list(downloads.downloads_dir().iterdir())  # no half-download left behind


def test_generated_tasks_build_without_the_sdist_and_score_the_right_answer(tmp_path, monkeypatch):
    monkeypatch.setenv("EEBENCH_CACHE", str(tmp_path / "cache"))

    def no_download(*args, **kwargs):
        raise AssertionError("a generated task must not ask for the BIG-bench sdist")

    monkeypatch.setattr(bigbench, "ensure_sdist", no_download)
    include, names = build_suite(["arith_mul_1d", "arith_sub_1d_gen", "arith_add_2d"], limit=None)
    configs = _configs(include)
    products = _rows(configs["eebench_bb_arith_mul_1d"])
    assert len(products) == 100 and len({row["input"] for row in products}) == 100  # every 1-digit pair once
    for row in products:
        a, b = (int(word) for word in row["input"].rstrip("?").split()[2::2])
        assert row["choices"][row["gold"]] == str(a * b)
        assert len(set(row["choices"])) == 6 and "choice:" not in row["query"]
    differences = _rows(configs["eebench_bb_arith_sub_1d_gen"])
    assert {row["input"]: row["targets"] for row in differences}["What is 3 minus 8?"] == ["-5"]
    sums = _rows(configs["eebench_bb_arith_add_2d"])
    assert len(sums) == 1000 and all(10 <= int(row["input"].split()[2]) <= 99 for row in sums)
    assert configs["eebench_bb_arith_mul_1d"]["metadata"]["generated"] == {"operation": "mul", "digits": 1, "version": 1}


def test_generated_task_arguments_are_checked():
    from eebench.evaluation.arithmetic_tasks import arithmetic_task

    with pytest.raises(EEBenchError, match="'div'.*allowed: add, sub, mul"):
        arithmetic_task("div", 1, "generate")
    with pytest.raises(EEBenchError, match="digits=4"):
        arithmetic_task("add", 4, "generate")
