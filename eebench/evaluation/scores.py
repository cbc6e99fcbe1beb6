"""Per-request exit scores for teacher-forced lm-eval requests.

For each (context, continuation) request we score every exit (each head and the final layer) once:
the continuation tokens' log-probabilities, whether each is the exit's argmax, and each head's
uncertainty per position. Any exit policy's loglikelihood then follows without running the model
again, which is how every threshold point of a sweep reuses one backbone pass per task.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from eebench.cache import file_problem, quarantine, write_checksum
from eebench.exits.confidence import head_metric_values, to_uncertainty
from eebench.exits.policy import ExitPolicy
from eebench.files import atomic_target


@dataclass
class RequestScores:
    logprob: torch.Tensor  # [num_heads + 1, cont_len]; last row is the full model
    greedy: torch.Tensor  # [num_heads + 1, cont_len] bool
    metrics: dict[str, torch.Tensor]  # metric -> [num_heads, cont_len]
    argmax: torch.Tensor  # [num_heads + 1, cont_len] each exit's predicted token, for agreement with the full model

    def exit_index(self, policy: ExitPolicy | None) -> torch.Tensor:
        """Per continuation token, the exit it leaves at. The first one is predicted from the context's last
        position, which in generation is the prompt pass: that runs every block (it fills the cache), so the
        first token comes from the final layer here as in the engine (FIRST_TOKEN_RULE)."""
        num_heads = self.logprob.shape[0] - 1
        if policy is None:
            return torch.full((self.logprob.shape[1],), num_heads)
        first = policy.first_exit(to_uncertainty(policy.metric, self.metrics[policy.metric]))
        first[:1] = num_heads
        return first

    def answer(self, policy: ExitPolicy | None) -> tuple[float, bool, torch.Tensor]:
        first = self.exit_index(policy)
        cols = torch.arange(len(first))
        return float(self.logprob[first, cols].sum()), bool(self.greedy[first, cols].all()), first

    def agreeing(self, first: torch.Tensor) -> int:
        """How many positions' exit prediction equals the full model's (the final layer's)."""
        return int((self.argmax[first, torch.arange(len(first))] == self.argmax[-1]).sum())


FIRST_TOKEN_RULE = "final_layer"  # the first new token never exits, in the engine and in teacher-forced scores


def request_key(tokens: list[int], continuation_length: int) -> str:
    return hashlib.sha1(f"{continuation_length}:{tokens}".encode()).hexdigest()


class ScoreStore:
    """In-memory map of request key -> RequestScores, persisted to one safetensors file (no pickle)."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path else None
        self.items: dict[str, RequestScores] = {}
        self.dirty = False
        if self.path and self.path.exists():
            self._load()

    def _load(self) -> None:
        """Read the file; a corrupt one (checksum, format or layout) is moved aside and rescored."""
        problem = file_problem(self.path)
        if problem is None:
            try:
                self.items = _parse(load_file(str(self.path)))
                return
            except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for a bad file
                problem = f"unreadable: {type(exc).__name__}"
        quarantine(self.path, problem)
        Path(str(self.path) + ".sha256").unlink(missing_ok=True)
        self.items = {}

    def save(self) -> None:
        if not (self.path and self.dirty):
            return
        tensors = {}
        for key, scores in self.items.items():
            tensors[f"{key}/logprob"] = scores.logprob.contiguous()
            tensors[f"{key}/greedy"] = scores.greedy.to(torch.uint8).contiguous()
            tensors[f"{key}/argmax"] = scores.argmax.contiguous()
            for metric, values in scores.metrics.items():
                tensors[f"{key}/metric.{metric}"] = values.contiguous()
        with atomic_target(self.path) as tmp:  # an interrupted save leaves neither a partial file nor its temp
            save_file(tensors, str(tmp))
        write_checksum(self.path)
        self.dirty = False


def _parse(tensors: dict[str, torch.Tensor]) -> dict[str, RequestScores]:
    grouped: dict[str, dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        key, field = name.split("/", 1)
        grouped.setdefault(key, {})[field] = tensor
    items = {}
    for key, fields in grouped.items():
        metrics = {f.split(".", 1)[1]: t for f, t in fields.items() if f.startswith("metric.")}
        items[key] = RequestScores(fields["logprob"], fields["greedy"].bool(), metrics, fields["argmax"])
    return items


@torch.no_grad()
def score_batch(model, heads, inputs: list[list[int]], continuations: list[list[int]], pad_id: int) -> list[RequestScores]:
    """Score a batch of teacher-forced requests at every exit. inputs[i] ends just before its last continuation token."""
    device = next(model.parameters()).device
    width = max(len(x) for x in inputs)
    ids = torch.full((len(inputs), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(inputs):  # right padding keeps real positions unaffected under a causal mask
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    out = model(ids.to(device), attention_mask=mask.to(device), output_hidden_states=True, use_cache=False)
    picks = [torch.arange(len(row) - len(cont), len(row), device=device) for row, cont in zip(inputs, continuations)]
    targets = [torch.tensor(cont) for cont in continuations]
    # Heads only run at the continuation positions: they are a few tokens out of each request.
    hidden_at = [[out.hidden_states[layer + 1][i, pos] for i, pos in enumerate(picks)] for layer in heads.exit_layers]
    per_exit = [[heads.logits(h, rows) for rows in hidden_at[h]] for h in range(len(heads.exit_layers))]
    per_exit.append([out.logits[i, pos] for i, pos in enumerate(picks)])
    results = []
    for i, target in enumerate(targets):
        logp = torch.log_softmax(torch.stack([rows[i] for rows in per_exit]).float().cpu(), dim=-1)
        chosen = logp.gather(2, target[None, :, None].expand(len(per_exit), -1, 1)).squeeze(2)
        per_head = [head_metric_values(heads, h, hidden_at[h][i], logp[h]) for h in range(len(hidden_at))]
        head_metrics = {name: torch.stack([values[name].cpu() for values in per_head]).float() for name in per_head[0]}
        argmax = logp.argmax(-1)
        results.append(RequestScores(chosen, argmax == target[None], head_metrics, argmax))
    return results
