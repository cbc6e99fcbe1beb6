"""lm-eval model ``eebench``: scores requests under an early-exit policy.

Loglikelihood requests are teacher-forced: the whole sequence runs through every block (full KV),
and at each position the token distribution comes from the first confident head, or the final layer.
That simulates the exit decision on accuracy; real skipping and its timing live in the engine.
Generation requests (generate_until) go through the real early-exit engine.
"""

from __future__ import annotations

from collections import Counter

import torch
from lm_eval.models.huggingface import HFLM
from tqdm.auto import tqdm

from eebench.engine.generate import generate
from eebench.evaluation.scores import ScoreStore, request_key, score_batch

EVAL_MODE = (
    "teacher-forced simulation: every block runs with a full KV cache and each position's "
    "distribution comes from the first confident head (or the final layer); the first continuation "
    "token comes from the final layer, as the engine's prompt pass gives it"
)


def _as_bool(value) -> bool:
    return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")


class EarlyExitLM(HFLM):
    def __init__(
        self,
        run_dir: str | None = None,
        threshold: float | None = None,
        exits: bool | str = True,
        ee_model=None,
        policy=None,
        score_store: ScoreStore | None = None,
        batch_size: int | str = 8,
        strategy: str = "full",
        device: str | None = "auto",
        trust_remote_code: bool | str = False,
        backbone: str | None = None,
        **kwargs,
    ):
        if ee_model is None:
            from eebench.model import EarlyExitModel

            if run_dir is None:
                raise ValueError("model_args need run_dir=<directory of a finished eebench run>")
            # Remote code and a backbone outside the cache/run dir only on the caller's explicit say-so.
            ee_model = EarlyExitModel.from_run(
                run_dir,
                device=device or "auto",  # lm_eval's CLI passes None
                trust_remote_code=_as_bool(trust_remote_code),
                backbone=backbone,
            )
        self.ee_model = ee_model
        self.exits = _as_bool(exits)
        if self.exits and policy is None:
            policy = ee_model.policy(float(threshold) if threshold is not None else 0.9)
        self.policy = policy if self.exits else None
        self.store = score_store or ScoreStore()
        self.strategy = strategy
        self.exit_counts: Counter = Counter()  # exit index -> task tokens (scored and generated) leaving there
        self.agreement_counts = [0, 0]  # teacher-forced task tokens: [exit prediction == full model's, all]
        backbone = ee_model.backbone
        super().__init__(pretrained=backbone.model, tokenizer=backbone.tokenizer, batch_size=int(batch_size), **kwargs)

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs=None):
        window = self.max_length + 1
        prepared = [(ctx + cont)[-window:] for _, ctx, cont in requests]
        self._score_missing(prepared, [cont for _, _, cont in requests], disable_tqdm)
        results = []
        for tokens, (_, _, cont) in zip(prepared, requests):
            scores = self.store.items[request_key(tokens, len(cont))]
            logprob, greedy, first = scores.answer(self.policy)
            self.exit_counts.update(first.tolist())
            self.agreement_counts[0] += scores.agreeing(first)
            self.agreement_counts[1] += len(first)
            results.append((logprob, greedy))
        self.store.save()
        return results

    def _score_missing(self, prepared, continuations, disable_tqdm) -> None:
        todo = {}
        for tokens, cont in zip(prepared, continuations):
            key = request_key(tokens, len(cont))
            if key not in self.store.items:
                todo[key] = (tokens, cont)
        ordered = sorted(todo.items(), key=lambda kv: -len(kv[1][0]))  # similar lengths share a batch
        size = int(self.batch_size) if str(self.batch_size).isdigit() else 8
        bar = tqdm(total=len(ordered), disable=disable_tqdm or not ordered, desc="scoring requests at every exit")
        heads, pad = self.ee_model.heads, self.tokenizer.pad_token_id
        for start in range(0, len(ordered), size):
            chunk = ordered[start : start + size]
            inputs = [tokens[:-1] for _, (tokens, _) in chunk]
            conts = [cont for _, (_, cont) in chunk]
            for (key, _), scores in zip(chunk, score_batch(self.model, heads, inputs, conts, pad)):
                self.store.items[key] = scores
                self.store.dirty = True
            bar.update(len(chunk))
        bar.close()

    def _model_generate(self, context, max_length, stop, **generation_kwargs):
        if self.policy is None:
            return super()._model_generate(context, max_length, stop, **generation_kwargs)
        attention = generation_kwargs.get("attention_mask")
        # lm-eval pads on the left; the engine takes each prompt's real tokens and batches them itself.
        prompts = [row[attention[i].bool()] if attention is not None else row for i, row in enumerate(context)]
        out = generate(
            self.ee_model.backbone.layered,
            prompts,
            max_length - context.shape[1],
            self.ee_model.heads,
            self.policy,
            self.strategy,
            self.tokenizer.eos_token_id,
        )
        self.exit_counts.update(out.flat_exit_indices)
        rows = [torch.cat([context[i], out.tokens[i, : out.lengths[i]].to(context.device)]) for i in range(len(prompts))]
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        return torch.stack([torch.nn.functional.pad(r, (0, width - len(r)), value=pad) for r in rows])
