"""Offline evaluation tasks in BIG-bench's JSON format: the real BIG-bench 1.0.0 tasks, and arithmetic tasks
eebench generates itself (``arithmetic_tasks.py``), which need no download.

BIG-bench shipped on PyPI only as a 358 MB sdist, which the index no longer lists; given the tarball
(``EEBENCH_BIGBENCH_SDIST``), we stream it once, pull out just the ``task.json`` members we need, and turn each
task into an lm-eval 0.4 *local* task: one JSONL of pre-formatted documents plus one YAML config. Everything lands
in eebench's content-addressed cache, so a second ``build_suite`` call with the same arguments only checks a few
marker files.

Layout in the cache:
  ``bigbench_task/<key>/``  one converted task: ``docs.jsonl`` + ``meta.json`` (no YAML: it names its
                            documents by their path, only known once the directory is in place)
  ``bigbench_suite/<key>/`` the YAMLs of one requested task list; this is the ``include_path``. They name
                            the documents relative to the cache root (``task_docs``), so a cache mounted
                            elsewhere is used as it is
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

from eebench.cache import entry_dir, entry_problem, get_or_build
from eebench.errors import EEBenchError, require
from eebench.evaluation.arithmetic_tasks import GENERATOR_VERSION, arithmetic_task
from eebench.evaluation.bigbench_sdist import (  # noqa: F401  SDIST_ENV_VAR re-exported: part of this module's interface
    BIGBENCH_SDIST,
    SDIST_ENV_VAR,
    SDIST_FILENAME,
    _read_task_files,
    _sdist_identity,
    ensure_sdist,
)
from eebench.evaluation.bigbench_yaml import ANSWER_MATCHES, task_yaml
from eebench.evaluation.task_docs import write_task_yaml

LM_EVAL_PREFIX = "eebench_bb_"  # lm-eval ships its own ``bigbench_*`` tasks; never collide with them
RAW_PREFIX = "bigbench:"  # ``bigbench:<benchmark_tasks dir>[:<kind>]`` names any JSON task directly
KINDS = ("multiple_choice", "generate")
# Bump when the conversion below changes, so stale cached tasks are rebuilt rather than reused.
CONVERTER_VERSION = 2
SUITE_CODE = (__name__, "eebench.evaluation.bigbench_yaml", "eebench.evaluation.task_docs")  # what writes the YAMLs
TASK_CODE = (__name__, "eebench.evaluation.arithmetic_tasks")  # what writes a task's documents

# BIG-bench's own defaults for JSON tasks (bigbench/api/json_task.py), used when a task omits them.
DEFAULT_INPUT_PREFIX = "\nQ: "
DEFAULT_OUTPUT_PREFIX = "\nA: "
DEFAULT_CHOICE_PREFIX = "\n  choice: "
# BIG-bench's default answer extraction for generative tasks without a stop_string/output_regex.
DEFAULT_OUTPUT_REGEX = r"[^\.\?\!\;\n]+"

# Short eebench name -> BIG-bench source. The multiple-choice entries are those where
# SmolLM2-135M-Instruct, run through lm-eval's stock HF model, scored more than two standard
# errors above chance (table and command: BIGBENCH_TASKS.md). Optional keys: ``answer`` (see
# ANSWER_MATCHES). A ``bigbench`` directory without examples of its own means "all its subtasks".
# These need the BIG-bench sdist (``EEBENCH_BIGBENCH_SDIST``).
CURATED_TASKS: dict[str, dict[str, Any]] = {
    "similarities_abstraction": {"bigbench": "similarities_abstraction", "kind": "multiple_choice"},
    "arithmetic_1d": {"bigbench": "arithmetic/1_digit_addition", "kind": "multiple_choice"},
    "phrase_relatedness": {"bigbench": "phrase_relatedness", "kind": "multiple_choice"},
    "strategyqa": {"bigbench": "strategyqa", "kind": "multiple_choice"},
    "metaphor_met2lit": {"bigbench": "metaphor_understanding/met2lit", "kind": "multiple_choice"},
    # An in-context copy task (the question names the unit): at the ceiling, the easy end of the suite.
    "unit_identification": {"bigbench": "unit_conversion/unit_identification", "kind": "multiple_choice"},
    # Generative: greedy first line, last number on it ("7 + 6 = 13"), exact match after stripping.
    "arithmetic_1d_gen": {"bigbench": "arithmetic/1_digit_addition", "kind": "generate", "answer": "last"},
    "arithmetic_1d_sub_gen": {"bigbench": "arithmetic/1_digit_subtraction", "kind": "generate", "answer": "last"},
    "arithmetic_1d_mul_gen": {"bigbench": "arithmetic/1_digit_multiplication", "kind": "generate", "answer": "last"},
    "arithmetic_2d_gen": {"bigbench": "arithmetic/2_digit_addition", "kind": "generate", "answer": "last"},
}
# Generated in BIG-bench's arithmetic format by eebench itself: no download (arithmetic_tasks.py). Each operation
# and operand size is a multiple-choice task and a generative one (answered like the curated arithmetic_*_gen).
GENERATED_OPERANDS = (("add", 1), ("sub", 1), ("mul", 1), ("add", 2))
GENERATED_TASKS: dict[str, dict[str, Any]] = {
    name: {"generated": {"operation": op, "digits": digits}, **kind}
    for op, digits in GENERATED_OPERANDS
    for name, kind in (
        (f"arith_{op}_{digits}d", {"kind": "multiple_choice"}),
        (f"arith_{op}_{digits}d_gen", {"kind": "generate", "answer": "last"}),
    )
}


def known_tasks() -> dict[str, dict[str, Any]]:
    """Every short task name: the BIG-bench ones and the generated ones."""
    return {**CURATED_TASKS, **GENERATED_TASKS}


# --------------------------------------------------------------------------- task names


def _resolve_task(name: str) -> dict[str, Any]:
    """Map a user task name to ``{"name", "bigbench", "kind", "lm_eval_name"}`` or raise."""
    entry = known_tasks().get(name)
    if entry is not None:
        kind = entry.get("kind", "multiple_choice")
        require(kind in KINDS, f"task {name!r} has kind={kind!r}; allowed: {', '.join(KINDS)}")
        answer = entry.get("answer", "first")
        require(answer in ANSWER_MATCHES, f"task {name!r} has answer={answer!r}; allowed: {', '.join(ANSWER_MATCHES)}")
        return {
            "name": name,
            "bigbench": entry["bigbench"].strip("/") if "bigbench" in entry else None,
            "generated": entry.get("generated"),
            "kind": kind,
            "answer": answer,
            "lm_eval_name": LM_EVAL_PREFIX + _sanitize(name),
        }
    if name.startswith(RAW_PREFIX):
        return _resolve_raw_task(name)
    allowed = ", ".join(sorted(known_tasks()))
    raise EEBenchError(
        f"unknown BIG-bench task {name!r}; allowed: {allowed}, or '{RAW_PREFIX}<benchmark_tasks dir>[:{'|'.join(KINDS)}]'"
    )


def _resolve_raw_task(name: str) -> dict[str, Any]:
    """``bigbench:<dir>`` auto-detects the kind; ``bigbench:<dir>:<kind>`` forces it."""
    path, _, kind = name[len(RAW_PREFIX) :].partition(":")
    path = path.strip("/")
    require(
        bool(re.fullmatch(r"[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*", path)),
        f"bad BIG-bench task directory {path!r} in {name!r}; expected e.g. 'bigbench:navigate' "
        f"or 'bigbench:logical_deduction/three_objects'",
    )
    require(kind in ("", *KINDS), f"bad task kind {kind!r} in {name!r}; allowed: {', '.join(KINDS)}")
    suffix = f"_{kind}" if kind else ""
    return {
        "name": name,
        "bigbench": path,
        "generated": None,
        "kind": kind or "auto",
        "answer": "first",
        "lm_eval_name": LM_EVAL_PREFIX + _sanitize(path) + suffix,
    }


def _sanitize(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "__", text)


# --------------------------------------------------------------------------- the sdist


def _example_sources(task_dir: str, files: dict[str, dict]) -> list[tuple[str, dict]]:
    """The task.json files whose examples make up the task: its own, else all subtasks merged."""
    own = files.get("")
    if own and own.get("examples"):
        return [("", own)]
    subtasks = [(sub, data) for sub, data in sorted(files.items()) if sub and data.get("examples")]
    require(
        bool(subtasks),
        f"BIG-bench task {task_dir!r} has no JSON examples (it may be a programmatic task); pick a JSON task directory",
    )
    return subtasks


def _detect_kind(task_dir: str, sources: list[tuple[str, dict]]) -> str:
    examples = [ex for _, data in sources for ex in data["examples"]]
    if all("target_scores" in ex for ex in examples):
        return "multiple_choice"
    if all("target" in ex for ex in examples):
        return "generate"
    raise EEBenchError(
        f"BIG-bench task {task_dir!r} mixes example kinds; name it as "
        f"'{RAW_PREFIX}{task_dir}:<kind>' with kind one of {', '.join(KINDS)}"
    )


def _format_prompt(task: dict, text: str, listed_choices: list[str] | None) -> str:
    """Zero-shot prompt as BIG-bench builds it: task prefix, input prefix, input, choices, output prefix.

    Trailing spaces are dropped because lm-eval inserts the target delimiter (a space) itself, and
    " answer" tokenizes the way the model saw answers in training, unlike "answer" after "A: ".
    """
    prompt = task.get("example_input_prefix", DEFAULT_INPUT_PREFIX) + text
    if listed_choices:
        choice_prefix = task.get("choice_prefix", DEFAULT_CHOICE_PREFIX)
        prompt += choice_prefix + choice_prefix.join(listed_choices)
    prompt += task.get("example_output_prefix", DEFAULT_OUTPUT_PREFIX)
    prompt = str(task.get("task_prefix", "")) + prompt
    return prompt.lstrip().rstrip(" ")


def _multiple_choice_doc(task: dict, example: dict, rng: random.Random) -> dict | None:
    scores = example.get("target_scores") or {}
    file_choices = [str(choice) for choice in scores]
    values = [float(v) for v in scores.values()]
    if len(file_choices) < 2 or max(values) <= min(values):
        return None  # nothing to discriminate: BIG-bench itself rejects such examples
    best = values.index(max(values))  # ties: the first in file order, as BIG-bench does
    # Task files often put the answer at a fixed position (always first in emoji_movie and
    # date_understanding); a seeded shuffle keeps position from leaking it, e.g. through
    # argmax tie-breaking when a weak early exit scores all choices alike. The prompt lists the
    # choices in this same order, as BIG-bench lists them in a seeded random order.
    order = rng.sample(range(len(file_choices)), len(file_choices))
    choices = [file_choices[i] for i in order]
    listed = choices if task.get("append_choices_to_input", True) else None
    return {
        "query": _format_prompt(task, str(example["input"]), listed),
        "choices": choices,
        "gold": order.index(best),
        "input": str(example["input"]),
    }


def _generate_doc(task: dict, example: dict) -> dict | None:
    target = example.get("target")
    targets = [str(t) for t in (target if isinstance(target, list) else [target]) if t is not None]
    if not targets:
        return None
    # ``targets`` is always a list so lm-eval treats every doc as multi-target (any match counts).
    return {"query": _format_prompt(task, str(example["input"]), None), "targets": targets, "input": str(example["input"])}


def _convert_examples(sources: list[tuple[str, dict]], kind: str, seed: int, tag: str) -> list[dict]:
    docs = []
    for sub, task in sources:
        for index, example in enumerate(task["examples"]):
            doc_id = f"{sub}/{index}" if sub else str(index)
            if kind == "multiple_choice":
                rng = random.Random(f"{seed}/{tag}/{doc_id}")
                doc = _multiple_choice_doc(task, example, rng)
            else:
                doc = _generate_doc(task, example)
            if doc is not None:
                docs.append({"id": doc_id, **doc})
    return docs


def _seeded_subset(docs: list[dict], limit: int | None, seed: int, tag: str) -> list[dict]:
    """A seeded permutation cut to ``limit``: subsets for growing limits are nested, and lm-eval's
    own ``limit`` (which takes the first N docs) still yields a random sample of the task."""
    order = list(range(len(docs)))
    random.Random(f"{seed}/{tag}").shuffle(order)
    if limit is not None:
        order = order[:limit]
    return [docs[i] for i in order]


def _generation_settings(sources: list[tuple[str, dict]]) -> tuple[list[str], str]:
    """Stop sequences and answer-extraction regex, following the first task.json's settings."""
    task = sources[0][1]
    until = ["\n"]
    if task.get("stop_string"):
        until.append(str(task["stop_string"]))
    regex = task.get("output_regex") or DEFAULT_OUTPUT_REGEX
    return until, regex


# --------------------------------------------------------------------------- building


def _task_spec(task: dict, limit: int | None, seed: int, sdist_id: dict | None) -> dict[str, Any]:
    """What a converted task is made of: a generated task names its generator and version, a BIG-bench one the
    sdist it came from."""
    source = (
        {"generated": {**task["generated"], "version": GENERATOR_VERSION}}
        if task["generated"]
        else {"bigbench": task["bigbench"], "sdist": sdist_id}
    )
    return {
        "converter": CONVERTER_VERSION,
        **source,
        "kind": task["kind"],
        "answer": task["answer"],
        "lm_eval_name": task["lm_eval_name"],
        "limit": limit,
        "seed": seed,
    }


def _task_tag(spec: dict) -> str:
    """The name that seeds a task's shuffles and names it in errors."""
    generated = spec.get("generated")
    return f"generated/{generated['operation']}/{generated['digits']}d" if generated else spec["bigbench"]


def _build_task_dir(tmp: Path, spec: dict, files: dict[str, dict]) -> None:
    tag = _task_tag(spec)
    sources = _example_sources(tag, files)
    kind = spec["kind"] if spec["kind"] != "auto" else _detect_kind(tag, sources)
    docs = _seeded_subset(_convert_examples(sources, kind, spec["seed"], tag), spec["limit"], spec["seed"], tag)
    require(
        bool(docs),
        f"BIG-bench task {tag!r} has no usable {kind} examples; allowed kinds: "
        f"{', '.join(KINDS)} (multiple_choice needs target_scores, generate needs target)",
    )
    with open(tmp / "docs.jsonl", "w", encoding="utf-8") as handle:
        for doc in docs:
            handle.write(json.dumps(doc, ensure_ascii=False) + "\n")
    until, regex = _generation_settings(sources)
    meta = {
        **spec,
        "kind": kind,
        "num_docs": len(docs),
        "until": until,
        "output_regex": regex,
        "chance": _chance(docs, kind),
        "majority": _majority(docs, kind),
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))


def _chance(docs: list[dict], kind: str) -> float | None:
    if kind != "multiple_choice":
        return None
    return sum(1.0 / len(doc["choices"]) for doc in docs) / len(docs)


def _majority(docs: list[dict], kind: str) -> float | None:
    """Accuracy of always answering the most common correct choice text (e.g. "No"): with skewed
    labels this, not ``_chance``, is the bar a model has to clear."""
    if kind != "multiple_choice":
        return None
    counts: dict[str, int] = {}
    for doc in docs:
        answer = doc["choices"][doc["gold"]]
        counts[answer] = counts.get(answer, 0) + 1
    return max(counts.values()) / len(docs)


def _task_files(spec: dict, sdist_files: dict[str, dict[str, dict]]) -> dict[str, dict]:
    generated = spec.get("generated")
    if generated:
        return {"": arithmetic_task(generated["operation"], generated["digits"], spec["kind"], seed=spec["seed"])}
    return sdist_files[spec["bigbench"]]


def _ensure_task_dirs(tasks: list[dict], limit: int | None, seed: int, sdist: Path | None) -> list[Path]:
    sdist_id = _sdist_identity(sdist) if sdist is not None else None
    specs = [_task_spec(task, limit, seed, sdist_id) for task in tasks]
    missing = [s for s in specs if entry_problem(entry_dir("bigbench_task", s, code=TASK_CODE)) is not None]
    # Only cache misses pay for the ~10 s stream through the tarball, and all of them share one pass.
    wanted = {s["bigbench"] for s in missing if not s.get("generated")}
    files = _read_task_files(sdist, wanted) if wanted else {}
    return [
        get_or_build(
            "bigbench_task", spec, lambda tmp, spec=spec: _build_task_dir(tmp, spec, _task_files(spec, files)), code=TASK_CODE
        )
        for spec in specs
    ]


def _write_suite_dir(tmp: Path, task_dirs: list[Path]) -> None:
    for task_dir in task_dirs:
        meta = json.loads((task_dir / "meta.json").read_text())
        write_task_yaml(tmp / f"{meta['lm_eval_name']}.yaml", task_yaml(meta, task_dir / "docs.jsonl", CONVERTER_VERSION))


def _check_arguments(task_names: list[str], limit: int | None, seed: int) -> None:
    require(
        isinstance(task_names, (list, tuple)) and len(task_names) > 0 and all(isinstance(n, str) for n in task_names),
        f"task_names={task_names!r} must be a non-empty list of names; allowed: {', '.join(sorted(known_tasks()))}",
    )
    require(
        limit is None or (isinstance(limit, int) and not isinstance(limit, bool) and limit > 0),
        f"limit={limit!r} must be a positive integer or None (all examples)",
    )
    require(isinstance(seed, int) and not isinstance(seed, bool), f"seed={seed!r} must be an integer")


def build_suite(
    task_names: list[str], limit: int | None = None, sdist: Path | None = None, seed: int = 0
) -> tuple[str, list[str]]:
    """Convert BIG-bench tasks to lm-eval local tasks.

    Returns ``(include_path, lm_eval_task_names)`` for
    ``lm_eval.simple_evaluate(tasks=names, task_manager=TaskManager(include_path=include_path))``.
    """
    _check_arguments(task_names, limit, seed)
    tasks = [_resolve_task(name) for name in dict.fromkeys(task_names)]  # drop duplicates, keep order
    clashing = _duplicates([t["lm_eval_name"] for t in tasks])
    if clashing:
        raise EEBenchError(f"task names {task_names!r} map to the same lm-eval task {clashing[0]!r}; pass each once")
    task_dirs = _ensure_task_dirs(tasks, limit, seed, _sdist_for(tasks, sdist))
    # The task entries by key, never by path: the suite's key is the same wherever the cache is mounted.
    suite_spec = {"converter": CONVERTER_VERSION, "tasks": [p.name for p in task_dirs]}
    suite = get_or_build("bigbench_suite", suite_spec, lambda tmp: _write_suite_dir(tmp, task_dirs), code=SUITE_CODE)
    return str(suite), [t["lm_eval_name"] for t in tasks]


def _sdist_for(tasks: list[dict], sdist: Path | None) -> Path | None:
    """The BIG-bench tarball, where a task needs it; generated tasks alone never download it."""
    if all(task["generated"] for task in tasks):
        return None
    sdist_path = Path(sdist).expanduser().resolve() if sdist is not None else ensure_sdist()
    require(sdist_path.is_file(), f"sdist={str(sdist)!r} is not a file; pass the {SDIST_FILENAME} tarball")
    return sdist_path


def _duplicates(names: list[str]) -> list[str]:
    seen: set[str] = set()
    return [n for n in names if n in seen or seen.add(n)]
