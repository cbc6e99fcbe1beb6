"""Timing prompts: the start of held-out prose documents, or the evaluation tasks' own request contexts.

Task prompts are the contexts lm-eval builds for the tasks' requests (``Task.build_all_requests``, the
same path ``simple_evaluate`` takes, with the same task manager and few-shot setting), one per
document, tokenised like lm-eval's HF model does (no special tokens added) and cut to their last
``prompt_tokens`` tokens, where the question sits. Their lengths differ: batches of them are ragged,
which the engine and transformers' left-padded ``generate`` both handle.
"""

from __future__ import annotations

import torch

from eebench.config import EvalConfig
from eebench.errors import require
from eebench.timing.config import TimingConfig


def heldout_prompts(heldout: torch.Tensor, cfg: TimingConfig) -> list[torch.Tensor]:
    rows = heldout[: cfg.num_prompts, : cfg.prompt_tokens]
    return [row[None] for row in rows]


def task_contexts(prepared: tuple, eval_cfg: EvalConfig, count: int) -> list[str]:
    """The first ``count`` distinct request contexts, taken from the tasks in turn so every task is timed."""
    _, tasks, manager = prepared
    loaded = manager.load(tasks)["tasks"]
    per_task = []
    for task in loaded.values():
        task.set_config(key="num_fewshot", value=eval_cfg.num_fewshot)
        task.build_all_requests(limit=count)
        per_task.append(list(dict.fromkeys(instance.arguments[0] for instance in task.instances)))
    contexts = []
    for rank in range(max(map(len, per_task), default=0)):
        contexts += [texts[rank] for texts in per_task if rank < len(texts)]
    return contexts[:count]


def task_prompts(prepared: tuple, eval_cfg: EvalConfig, tokenizer, cfg: TimingConfig) -> list[torch.Tensor]:
    contexts = task_contexts(prepared, eval_cfg, cfg.num_prompts)
    require(
        bool(contexts),
        f"timing.prompts=tasks found no request contexts in eval.tasks={list(prepared[1])}; "
        "allowed: tasks with documents, or timing.prompts=heldout",
    )
    return [torch.tensor(tokenizer(text, add_special_tokens=False).input_ids[-cfg.prompt_tokens :])[None] for text in contexts]


def timing_prompts(
    cfg: TimingConfig, heldout: torch.Tensor, tokenizer=None, eval_cfg: EvalConfig | None = None, prepared: tuple | None = None
) -> list[torch.Tensor]:
    if cfg.prompts == "tasks":
        require(prepared is not None, "timing.prompts=tasks needs evaluation tasks (eval.tasks is empty); allowed here: heldout")
        return task_prompts(prepared, eval_cfg, tokenizer, cfg)
    return heldout_prompts(heldout, cfg)
