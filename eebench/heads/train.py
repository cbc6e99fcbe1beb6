"""Self-distillation of exit heads (KL(final-layer distribution || head distribution)) and fitting of exit gates,
both from hidden states of the frozen backbone (``heads.states``) through the one loop in ``heads.loop``.

The teacher distribution is the backbone's own final norm + lm_head applied to the last block's output, computed
once per batch and shared by all heads.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from eebench.backbones.precision import to_compute, training_precision
from eebench.exits.calibrators.max_coverage import max_coverage
from eebench.heads.config import GateConfig, HeadTrainingConfig
from eebench.heads.loop import train_loop
from eebench.heads.modules import ExitHeads


class Teacher:
    """The final layer's next-token distribution for one batch, shared by every head's loss. Given the logits of a
    shortlist readout's rows only (``full_argmax`` then says the full model's own next token, computed when asked),
    the distribution is the full one renormalised over those rows, the only tokens the heads can give probability
    to: softmax over the rows' logits is exactly that, without projecting onto the whole vocabulary."""

    def __init__(self, logits: torch.Tensor, full_argmax=None):
        logprobs = F.log_softmax(logits.float(), dim=-1).flatten(0, -2)
        self._argmax = full_argmax if full_argmax is not None else (lambda: logprobs.argmax(-1))
        self.probs = logprobs.exp()
        self.entropy = -(self.probs * logprobs).sum(-1).mean()

    @property
    def argmax(self) -> torch.Tensor:
        """The full model's next token per position (over the whole vocabulary, whatever the readout)."""
        return self._argmax()


def distillation_loss(head_logits: torch.Tensor, teacher: Teacher) -> torch.Tensor:
    """Mean per-token KL(teacher || head) as cross-entropy with soft targets minus the teacher's entropy: the same value
    and gradient as ``kl_div(log_target=True, reduction="batchmean")``, in fewer passes over vocabulary-sized tensors."""
    return F.cross_entropy(head_logits.flatten(0, -2).float(), teacher.probs) - teacher.entropy


def validation_split(num_sequences: int, val_sequences: int) -> tuple[int, torch.Tensor]:
    """Train on the first sequences, hold out the last ``val_sequences`` (disjoint tokens, never trained on)."""
    train = num_sequences - val_sequences
    return train, torch.arange(train, num_sequences)


class _Task:
    """Training and held-out batches from a state source (``states.CachedStates`` or ``states.LiveStates``)."""

    def __init__(self, layered, heads: ExitHeads, states, val_sequences: int, batch_size: int):
        self.layered, self.heads, self.states, self.batch_size = layered, heads, states, batch_size
        self.num_train, self.val_rows = validation_split(len(states), val_sequences)

    def teacher(self, final: torch.Tensor) -> Teacher:
        """In the backbone's dtype; with a shortlist, onto its rows of lm_head only (the full argmax on demand)."""
        layered, ids = self.layered, self.heads.readout_ids
        with torch.no_grad():
            readout = layered.norm(to_compute(final, layered.lm_head))
            if ids is None:
                return Teacher(layered.logits_of_readout(readout))
            weight = layered.lm_head.weight
            bias = getattr(layered.lm_head, "bias", None)
            rows = F.linear(readout, weight[ids], None if bias is None else bias[ids])

            def full_argmax() -> torch.Tensor:
                with torch.no_grad():
                    return layered.logits_of_readout(readout).argmax(-1).flatten()

            return Teacher(layered.scaled_logits(rows), full_argmax)

    def evaluate(self, active: list[int]) -> dict[int, dict]:
        """Held-out loss of each active module, as ``{index: {"heldout": loss}}``."""
        totals = dict.fromkeys(active, 0.0)
        chunks = self.val_rows.split(self.batch_size)
        for rows in chunks:
            final, hiddens = self.states.batch(rows)
            for index, loss in self.losses(final, hiddens, active):
                totals[index] += loss.item() / len(chunks)
        return {index: {"heldout": total} for index, total in totals.items()}

    def step(self, rows: torch.Tensor, active: list[int]) -> dict[int, float]:
        final, hiddens = self.states.batch(rows)
        out = {}
        for index, loss in self.losses(final, hiddens, active):
            loss.backward()  # per module, so only one vocabulary-sized activation is alive at a time
            out[index] = loss.item()
        return out


class DistillationTask(_Task):
    """KL to the final layer; each evaluation also probes what the head is worth as an exit at ``probe_target``."""

    def __init__(self, layered, heads: ExitHeads, states, val_sequences: int, batch_size: int, probe_target: float):
        super().__init__(layered, heads, states, val_sequences, batch_size)
        self.probe_target = probe_target

    def losses(self, final, hiddens, active):
        teacher = self.teacher(final)
        # A generator: each head's logits are built only when the caller reaches it.
        return ((i, distillation_loss(self.heads.readout_logits(i, hiddens[i]), teacher)) for i in active)

    def evaluate(self, active: list[int]) -> dict[int, dict]:
        totals = dict.fromkeys(active, 0.0)
        entropies, agrees = {i: [] for i in active}, {i: [] for i in active}
        chunks = self.val_rows.split(self.batch_size)
        for rows in chunks:
            final, hiddens = self.states.batch(rows)
            teacher = self.teacher(final)
            target = teacher.argmax
            for i in active:
                totals[i] += distillation_loss(self.heads.readout_logits(i, hiddens[i]), teacher).item() / len(chunks)
                # On the readout's own rows: tokens outside a shortlist have no probability, so the entropy and the
                # argmax equal the whole vocabulary's, without spreading every row to the vocabulary's width.
                logits = self.heads.readout_logits(i, hiddens[i]).flatten(0, -2).float()
                logprobs = F.log_softmax(logits, dim=-1)
                entropies[i].append(-(logprobs.exp() * logprobs).sum(-1))
                agrees[i].append((self.heads.vocabulary_ids(logits.argmax(-1)) == target).float())
        cut = len(self.val_rows) // 2 * self.states.seq_len  # first half of the validation sequences fits, second judges
        return {
            i: {"heldout": totals[i], **exit_probe(torch.cat(entropies[i]), torch.cat(agrees[i]), cut, self.probe_target)}
            for i in active
        }


def exit_probe(entropy: torch.Tensor, agree: torch.Tensor, cut: int, target: float) -> dict:
    """What a head is worth as an entropy exit (the paper's metric and rule) at ``target``: the threshold is calibrated
    for maximum coverage on tokens ``[:cut]`` and judged on ``[cut:]`` (disjoint validation sequences). Returns the judged
    tokens' coverage (share that exits), the agreement of the exiting ones with the final layer (None when none exits)
    and the head's top-1 agreement over all of them."""
    exits = entropy[cut:] <= max_coverage(entropy[:cut], agree[:cut], target)
    judged = agree[cut:]
    return {
        "coverage": float(exits.float().mean()),
        "agreement": float(judged[exits].mean()) if bool(exits.any()) else None,
        "top1_agreement": float(judged.mean()),
    }


class GateTask(_Task):
    """Each gate learns whether its (trained, frozen) head's argmax equals the full model's next token."""

    def losses(self, final, hiddens, active):
        with torch.no_grad():
            target = self.layered.final_logits(to_compute(final, self.layered.lm_head)).argmax(-1)
            agree = {i: (self.heads.logits(i, hiddens[i]).argmax(-1) == target).float() for i in active}
        gates = self.heads.gates
        return ((i, F.binary_cross_entropy_with_logits(gates[i].logit(hiddens[i]).float(), agree[i])) for i in active)


def train_heads(layered, heads: ExitHeads, states, cfg: HeadTrainingConfig, seed: int) -> dict:
    """Distil every head to the final layer; returns the training log (per head: tokens, KL curve, stop reason)."""
    device = layered.lm_head.weight.device
    settings = loop_settings(cfg, layered.lm_head.weight.dtype)
    task = DistillationTask(layered, heads, states, cfg.val_sequences, cfg.batch_size, cfg.probe_target)
    log = train_loop(list(heads.heads), task, task.num_train, states.seq_len, settings, seed, device, "training exit heads")
    return {
        **label_members(log, "head", heads.exit_layers),
        "loss": "kl" if heads.readout_ids is None else "kl_over_readout_rows",
        "validation_sequences": cfg.val_sequences,
    }


def loop_settings(cfg: HeadTrainingConfig, backbone_dtype: torch.dtype) -> HeadTrainingConfig:
    """``head.training`` as the training loop reads it: precision ``auto`` resolved for the backbone's dtype."""
    return replace(cfg, precision=training_precision(cfg.precision, str(backbone_dtype).removeprefix("torch.")))


def train_gates(layered, heads: ExitHeads, states, gate: GateConfig, cfg: HeadTrainingConfig, seed: int) -> dict:
    """Fit each gate with the heads' loop; evaluation cadence and patience come from ``head.training``."""
    device = layered.lm_head.weight.device
    # Gates reuse the heads' evaluation cadence and patience, with their own budget, batch and rate, no warmup/decay.
    settings = replace(
        loop_settings(cfg, layered.lm_head.weight.dtype),
        max_tokens=gate.max_tokens,
        batch_size=gate.batch_size,
        lr=gate.lr,
        warmup_steps=0,
        weight_decay=0.0,
    )
    task = GateTask(layered, heads, states, cfg.val_sequences, gate.batch_size)
    log = train_loop(list(heads.gates), task, task.num_train, states.seq_len, settings, seed, device, "training exit gates")
    return {**label_members(log, "gate", heads.exit_layers), "loss": "bce"}


def label_members(log: dict, kind: str, exit_layers: list[int]) -> dict:
    """Name each module by its exit layer and move its loss-vs-tokens curve into one flat list (for W&B and reports)."""
    members = log.pop("members")
    curves = [
        {"module": kind, "exit_layer": layer, **{key: [p.get(key) for p in m["curve"]] for key in curve_keys(m["curve"])}}
        for layer, m in zip(exit_layers, members)
    ]
    per_module = [{"exit_layer": layer, **{k: v for k, v in m.items() if k != "curve"}} for layer, m in zip(exit_layers, members)]
    return {**log, "modules": per_module, "curves": curves}


def curve_keys(curve: list[dict]) -> list[str]:
    """tokens, train and heldout always; the exit probe's keys where the task measured them (heads, not gates)."""
    probe = [key for key in ("coverage", "agreement", "top1_agreement") if curve and key in curve[-1]]
    return ["tokens", "train", "heldout", *probe]
