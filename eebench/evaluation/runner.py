"""Run lm-eval tasks under the exit policy and with the full model, sharing one scoring pass."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

from eebench.analysis.paired import ACCURACY_METRICS, SampleScores, paired_changes
from eebench.cache import Artifact, cache_root, content_digest, path_digest, portable
from eebench.config import EvalConfig
from eebench.engine.strategies import STRATEGIES
from eebench.errors import EEBenchError
from eebench.evaluation.lm import EVAL_MODE, EarlyExitLM
from eebench.evaluation.scores import FIRST_TOKEN_RULE, ScoreStore
from eebench.reuse import files_state, reuse
from eebench.traces.simulate import exit_numbers


def resolve_tasks(cfg: EvalConfig, data_source: str, split_seed: int = 0) -> tuple[list[str], list[str]]:
    """(include paths, lm-eval task names). Offline suite names map to generated local tasks; prose tasks
    read the held-out documents of ``split_seed``'s draw (the run's seed), never its calibration ones."""
    if cfg.suite != "bigbench":
        return ([cfg.include_path] if cfg.include_path else []), list(cfg.tasks)
    from eebench.evaluation.bigbench import build_suite
    from eebench.evaluation.prose_tasks import PROSE_TASKS, build_prose_tasks

    prose = [t for t in cfg.tasks if t in PROSE_TASKS]
    bigbench = [t for t in cfg.tasks if t not in PROSE_TASKS]
    paths, names = [], []
    # The builders' default seed (0) picks the documents: the suite is part of the benchmark, not of a run's seed.
    for builder, chosen in (
        (lambda ts: build_suite(ts, cfg.limit), bigbench),
        (lambda ts: build_prose_tasks(ts, data_source, cfg.limit, split_seed=split_seed), prose),
    ):
        if chosen:
            path, built = builder(chosen)
            paths.append(path)
            names += built
    return paths, names


def task_manager(include_paths: list[str], defaults: bool = True):
    """lm-eval's TaskManager; ``defaults`` indexes every task lm-eval ships too (seconds: thousands of YAMLs). The
    points of a sweep that run in one process (Hydra's basic launcher, a joblib worker) share one per set of task
    YAMLs."""
    key = (tuple(include_paths), files_state(include_paths, "*.yaml", recursive=True), defaults)

    def build():
        from lm_eval.tasks import TaskManager

        return TaskManager(include_path=include_paths or None, include_defaults=defaults)

    # Two held: a launch that falls back to the whole index (``manager_for``) consults the YAMLs' own index first,
    # and with one held each point of a sweep would let the whole index go to build that one again.
    return reuse("lm_eval_tasks", key, build, keep=2)


def metric_keys(values: dict) -> dict[str, str]:
    """{metric: the key of lm-eval's task results it is read from}: "acc,none" -> acc; where a task reports a
    metric under several filters, the last one listed."""
    keys = {}
    for key, value in values.items():
        metric = key.partition(",")[0]
        if isinstance(value, (int, float)) and metric != "alias":
            keys[metric] = key
    return keys


def metrics_of(results: dict) -> dict[str, dict[str, float]]:
    """lm-eval's {"acc,none": x, "acc_stderr,none": y} -> {"acc": x, "acc_stderr": y} per task."""
    return {
        task: {metric: float(values[key]) for metric, key in metric_keys(values).items()}
        for task, values in results["results"].items()
    }


def sample_scores_of(results: dict) -> dict[str, dict[str, dict[str, float]]]:
    """{task: {metric: {doc_id: score}}} of the accuracy metrics, from lm-eval's logged samples, under the filter
    ``metrics_of`` reads each metric from (so the per-sample scores average to the task's own metric)."""
    scores: dict[str, dict[str, dict[str, float]]] = {}
    for task, samples in (results.get("samples") or {}).items():
        keys = metric_keys(results["results"].get(task, {}))
        for metric in (m for m in ACCURACY_METRICS if m in keys):
            kept = keys[metric].partition(",")[2]
            per_doc = {str(s["doc_id"]): float(s[metric]) for s in samples if s.get("filter") == kept and metric in s}
            if per_doc:
                scores.setdefault(task, {})[metric] = per_doc
    return scores


def _env_info_once() -> None:
    """simple_evaluate re-collects torch's environment report (pip and nvidia-smi subprocesses, ~0.7 s) into every
    result; it cannot change within a process, so collect it once per process and copy it from then on."""
    import lm_eval.evaluator

    collect = lm_eval.evaluator.add_env_info
    if getattr(collect, "once", False):
        return
    collected: dict = {}

    def add_env_info(storage: dict) -> None:
        if not collected:
            collect(collected)
        storage.update(collected)

    add_env_info.once = True
    lm_eval.evaluator.add_env_info = add_env_info


def _simple_evaluate(lm, tasks: list[str], manager, cfg: EvalConfig) -> tuple[dict, dict]:
    """(per-task metrics, per-task per-sample scores of the accuracy metrics): the samples pair early exit's
    answers with the full model's on the same examples."""
    import lm_eval

    _env_info_once()
    limit = cfg.limit if cfg.suite != "bigbench" else None  # bigbench tasks are already cut to the limit
    out = lm_eval.simple_evaluate(
        model=lm,
        tasks=tasks,
        task_manager=manager,
        num_fewshot=cfg.num_fewshot,
        limit=limit,
        cache_requests=False,
        log_samples=True,
        bootstrap_iters=1000,
    )
    return metrics_of(out), sample_scores_of(out)


# lm-eval's index kinds of a single task, not a group or a tag: an Entry's kind (current lm-eval), or the
# "type" of the dict entries of earlier releases.
LEAF_TASK_KINDS = ("task", "py_task", "python_task")


def index_kind(entry) -> str:
    kind = getattr(entry, "kind", None)
    return kind.name.lower() if kind is not None else str(entry.get("type"))


def self_contained(manager, tasks: list[str]) -> bool:
    """Whether every requested name is a single task of ``manager``'s index. A group or a tag may name, or collect,
    tasks that only lm-eval's own index holds, so for those the YAMLs alone are not known to be the whole task."""
    index = manager.task_index
    return all(name in index and index_kind(index[name]) in LEAF_TASK_KINDS for name in tasks)


def manager_for(include_path: list[str], tasks: list[str], suite: str):
    """The smallest task index that resolves ``tasks`` as the full one would. Given YAMLs take precedence over
    lm-eval's own tasks of the same name, so a task they define loads the same from either index; lm-eval's whole
    index is built only for a name they do not define as a single task."""
    # The offline suite's tasks are all generated YAMLs: it never needs lm-eval's own tasks.
    if suite == "bigbench":
        return task_manager(include_path, defaults=False)
    if include_path:
        own = task_manager(include_path, defaults=False)
        if self_contained(own, tasks):
            return own
    return task_manager(include_path, defaults=True)


def prepare_tasks(cfg: EvalConfig, data_source: str, split_seed: int = 0) -> tuple[list[str], list[str], object]:
    """(include paths, lm-eval task names, task manager), or a one-line error for an unknown task."""
    include_path, tasks = resolve_tasks(cfg, data_source, split_seed=split_seed)
    manager = manager_for(include_path, tasks, cfg.suite)
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        raise EEBenchError(
            f"eval.tasks contains unknown task(s) {unknown}; allowed: tasks lm-eval knows or YAMLs under eval.include_path"
        )
    return include_path, tasks, manager


BASELINE_FILE = "baseline_tasks.json"
BASELINE_SAMPLES_FILE = "baseline_samples.json"  # {task: {metric: {doc_id: score}}}


def head_type_modules() -> tuple[str, ...]:
    """Every head type's module: the scores run a head's forward (conservative: any head type's change re-scores)."""
    from eebench.heads.types import HEAD_TYPES

    return tuple(HEAD_TYPES.get(kind).module for kind in HEAD_TYPES)


APPROXIMATE_KV = ("copy", "skip")  # strategies whose KV differs from full-depth decoding
# What identifies a task set in the keys of scores and baselines (``task_identity``).
TASK_INPUTS = {
    "tasks": "the lm-eval task names",
    "include": "the task folders (one in the cache by its key, wherever the cache lies)",
    "include_content": "the contents of the task folders",
    "limit": "`eval.limit`",
    "fewshot": "`eval.num_fewshot`",
    "lm_eval": "lm-eval's version",
}
# One score file per heads set and task set (not a folder): the scores of every lm-eval request at every exit.
SCORES = Artifact(
    kind="scores",
    builder="eebench.evaluation.scores",
    inputs={"heads": "checksums of the heads' weight files", "backbone": "the backbone's identity", **TASK_INPUTS},
    code=("eebench.evaluation.lm", "eebench.exits.confidence", "eebench.heads.modules"),
    variant_code="every head type's module",
)
BASELINES = Artifact(
    kind="baselines",
    builder=__name__,
    inputs={
        "backbone": "the backbone's identity",
        **TASK_INPUTS,
        "sample_metrics": "the metrics kept per sample (for the paired accuracy change)",
    },
    code=("eebench.evaluation.lm", "eebench.evaluation.scores"),
)


def task_identity(cfg: EvalConfig, prepared: tuple) -> dict:
    """The tasks and the contents of their YAML/data folders (an edited task file is a new task)."""
    import lm_eval

    include_path, tasks, _ = prepared
    return {
        "tasks": tasks,
        "include": [portable(p) for p in include_path],  # a suite in the cache: by its key, not where the cache is
        "include_content": [path_digest(p) for p in include_path],
        "limit": cfg.limit,
        "fewshot": cfg.num_fewshot,
        "lm_eval": getattr(lm_eval, "__version__", "unknown"),
    }


def baseline_spec(cfg: EvalConfig, prepared: tuple, backbone_identity: dict) -> dict:
    """What the full model's task scores depend on: the backbone and the tasks, never the heads (and which metrics
    it keeps per sample: those are defined outside this module, whose source is in the key)."""
    return {"backbone": backbone_identity, **task_identity(cfg, prepared), "sample_metrics": list(ACCURACY_METRICS)}


def score_store_path(cfg: EvalConfig, prepared: tuple, backbone_identity: dict, heads_dir: Path) -> Path:
    """Scores depend on the backbone, the heads' file contents, the tasks and the scoring code."""
    spec = {"heads": content_digest(heads_dir), "backbone": backbone_identity, **task_identity(cfg, prepared)}
    return cache_root() / SCORES.kind / f"{SCORES.key(spec, head_type_modules())}.safetensors"


def full_model_baseline(cfg: EvalConfig, prepared: tuple, ee_model, store: ScoreStore) -> tuple[dict, SampleScores, str]:
    """(per-task metrics of the full model, its per-sample scores, cache key): computed once per backbone and task
    set and reused by every threshold, metric and head type, so a sweep never re-generates baseline answers."""
    include_path, tasks, manager = prepared

    def build(tmp: Path) -> None:
        full = EarlyExitLM(ee_model=ee_model, exits=False, score_store=store, batch_size=cfg.batch_size)
        metrics, samples = _simple_evaluate(full, tasks, manager, cfg)
        (tmp / BASELINE_FILE).write_text(json.dumps(metrics, indent=2))
        (tmp / BASELINE_SAMPLES_FILE).write_text(json.dumps(samples))

    directory = BASELINES.get_or_build(baseline_spec(cfg, prepared, ee_model.backbone.identity), build)
    metrics, samples = (json.loads((directory / name).read_text()) for name in (BASELINE_FILE, BASELINE_SAMPLES_FILE))
    return metrics, samples, directory.name


def task_exit_stats(early: EarlyExitLM, exit_layers: list[int], costs) -> dict | None:
    """``exit``'s numbers over the task tokens the early-exit evaluation scored or generated; None if none."""
    counts = early.exit_counts
    if not sum(counts.values()):
        return None
    first = torch.repeat_interleave(torch.tensor(list(counts)), torch.tensor(list(counts.values())))
    agreeing, scored = early.agreement_counts
    return {
        **exit_numbers(first, exit_layers, costs),
        "agreement": agreeing / scored if scored else None,
        "agreement_tokens": scored,
    }


def eval_decoders(strategy: str) -> dict[str, str]:
    """Which decoder produced each kind of task number. Scored requests are teacher-forced with every block
    running (exact KV): the accuracy of ``lazy``/``full``; ``copy``/``skip`` change the KV, so for them it
    is exact-KV accuracy, not their own. A verified strategy (DSSD) emits only tokens the full model chose, so its
    accuracy is the full model's: ``verified_full_model``."""
    scored = "teacher_forced_exact_kv"
    return {
        "loglikelihood": scored,
        "generate_until": f"engine:{strategy}",
        "strategy": strategy,
        "accuracy": accuracy_decoder(strategy),
        "first_token": FIRST_TOKEN_RULE,
    }


def accuracy_decoder(strategy: str) -> str:
    if STRATEGIES.get(strategy).lossless:
        return "verified_full_model"
    return "exact_kv" if strategy in APPROXIMATE_KV else "own_decoding"


def evaluate_tasks(cfg: EvalConfig, prepared: tuple, ee_model, policy, heads_dir: Path, costs, strategy: str = "lazy") -> dict:
    include_path, tasks, manager = prepared
    path = score_store_path(cfg, prepared, ee_model.backbone.identity, heads_dir)
    # Shared by the points of a sweep in one process while the file is unchanged (scores it adds are saved to it);
    # one file per heads set, a few MB each, so several are held for sweeps that alternate head types.
    store = reuse("scores", (str(path), files_state([path])), lambda: ScoreStore(path), keep=4)
    # generate_until requests decode with the point's own engine strategy.
    early = EarlyExitLM(ee_model=ee_model, policy=policy, score_store=store, batch_size=cfg.batch_size, strategy=strategy)
    early_tasks, early_samples = _simple_evaluate(early, tasks, manager, cfg)
    baseline_tasks, baseline_samples, baseline_key = full_model_baseline(cfg, prepared, ee_model, store)
    counts = early.exit_counts
    total = max(1, sum(counts.values()))
    # Lossless by construction: a verified strategy's outputs, hence its task scores, are the full model's own (the
    # policy's simulated scores would describe a lossy decoder this strategy is not).
    lossless = STRATEGIES.get(strategy).lossless
    return {
        "tasks": copy.deepcopy(baseline_tasks) if lossless else early_tasks,
        "baseline_tasks": baseline_tasks,
        "paired_tasks": paired_changes(baseline_samples if lossless else early_samples, baseline_samples),
        "baseline_cache_key": baseline_key,
        "eval_mode": EVAL_MODE,
        "eval_decoders": eval_decoders(strategy),
        "eval_exit_fraction": {
            ("final" if i == len(policy.exit_layers) else str(policy.exit_layers[i])): n / total
            for i, n in sorted(counts.items())
        },
        "exit_tasks": task_exit_stats(early, policy.exit_layers, costs),
    }
