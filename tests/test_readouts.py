"""The readout axis: which vocabulary rows exit heads project onto (full, shortlist), for every head type."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT
from hydra import compose, initialize_config_dir

from eebench.backbones import load_backbone
from eebench.config import BackboneConfig, register_configs, validate
from eebench.engine.flops import CostModel
from eebench.errors import EEBenchError
from eebench.heads import ExitHeads, load_heads, save_heads
from eebench.heads.readouts import OUTSIDE_LOGIT
from eebench.heads.readouts.shortlist import most_frequent
from eebench.heads.train import Teacher, distillation_loss
from eebench.heads.types import HEAD_TYPES


@pytest.fixture(scope="module")
def layered(tiny_model_dirs):
    cfg = BackboneConfig(name="tiny", name_or_path=str(tiny_model_dirs["llama"]), dtype="float32")
    return load_backbone(cfg, "cpu").layered


def test_shortlist_is_the_k_most_frequent_training_tokens():
    tokens = torch.tensor([[5, 5, 5, 2, 2, 9], [9, 9, 9, 9, 1, 7]])
    assert most_frequent(tokens, 12, {"k": 2}).tolist() == [5, 9]  # 9 x5, 5 x3; sorted by id
    assert most_frequent(tokens, 12, {"k": 3}).tolist() == [2, 5, 9]
    assert most_frequent(tokens, 12, {"k": 4}).tolist() == [1, 2, 5, 9]  # a tie (1, 7: once each) goes to the lower id
    with pytest.raises(EEBenchError, match=r"readout.options.k=13 exceeds the backbone's vocabulary of 12 tokens"):
        most_frequent(tokens, 12, {"k": 13})


@pytest.mark.parametrize("kind", sorted(HEAD_TYPES))
def test_every_head_type_projects_onto_the_shortlist_only(layered, kind, tmp_path):
    ids = torch.tensor([0, 3, 7, 11, 40, 99])
    options = {"rank": 4} if kind == "low_rank" else {}  # a rank above the shortlist's rows is refused
    heads = ExitHeads.create(
        layered, [1, 2], kind, options=options, readout="shortlist", readout_ids=ids, readout_opts={"k": len(ids)}
    )
    hidden = torch.randn(2, 5, layered.hidden_size, generator=torch.Generator().manual_seed(0))
    rows = heads.readout_logits(0, hidden)
    full = heads.logits(0, hidden)
    assert rows.shape[-1] == len(ids) and full.shape[-1] == layered.vocab_size
    torch.testing.assert_close(full[..., ids], rows)
    outside = torch.ones(layered.vocab_size, dtype=torch.bool)
    outside[ids] = False
    assert bool((full[..., outside] == OUTSIDE_LOGIT).all())
    # Its distribution is the shortlist's own: no probability outside it, entropy that of the K-way softmax.
    probs = F.softmax(full.detach().float(), dim=-1)
    assert float(probs[..., outside].sum()) == 0.0
    torch.testing.assert_close(probs[..., ids], F.softmax(rows.detach().float(), dim=-1))
    # Saved without the lm_head rows (rebuilt from the ids), loaded equal.
    save_heads(heads, tmp_path)
    loaded = load_heads(tmp_path, layered)
    assert loaded.readout == "shortlist" and torch.equal(loaded.readout_ids, ids)
    torch.testing.assert_close(loaded.logits(0, hidden), full)


@pytest.mark.parametrize("kind", ["linear", "mlp", "low_rank", "lens", "logit_lens"])
def test_cost_model_counts_the_readouts_real_weight_reads(layered, kind):
    ids = torch.arange(0, layered.vocab_size, 4)
    short = ExitHeads.create(layered, [1, 2], kind, readout="shortlist", readout_ids=ids, readout_opts={"k": len(ids)})
    full = ExitHeads.create(layered, [1, 2], kind)
    vocab, hidden = layered.vocab_size, layered.hidden_size
    # Weight reads of one head evaluation, from its parameter count: own matrices (norm excluded) + shared rows.
    own = {"linear": 0, "mlp": 2 * (hidden * hidden + hidden), "low_rank": 0, "lens": hidden * hidden + hidden}
    readout = {"linear": 1, "mlp": 1, "logit_lens": 1, "lens": 1}
    rank = short.options.get("rank", 0)
    for heads, rows in ((short, len(ids)), (full, vocab)):
        if kind == "low_rank":
            expected = rank * (hidden + rows)
        else:
            expected = own.get(kind, 0) + readout[kind] * rows * hidden
        assert heads.projection_cost(0) == expected, (kind, rows)
        assert CostModel.from_layered(layered, heads).head_cost == expected
        counted = sum(p.numel() for n, p in heads.heads[0].named_parameters() if not n.startswith("norm."))
        shared = rows * hidden if kind in ("lens", "logit_lens") else 0
        assert counted + shared == expected


def test_distillation_over_the_shortlist_is_kl_to_the_teacher_renormalised_on_it():
    generator = torch.Generator().manual_seed(1)
    teacher_logits, head_logits = torch.randn(3, 10, generator=generator), torch.randn(3, 4, generator=generator)
    ids = torch.tensor([1, 4, 6, 8])
    teacher = Teacher(teacher_logits[:, ids], full_argmax=lambda: teacher_logits.argmax(-1))
    restricted = F.softmax(F.log_softmax(teacher_logits, -1)[:, ids], dim=-1)  # the full softmax renormalised on ids
    expected = F.kl_div(F.log_softmax(head_logits, -1), restricted, reduction="batchmean")
    torch.testing.assert_close(distillation_loss(head_logits, teacher), expected)
    assert torch.equal(teacher.argmax, teacher_logits.argmax(-1))  # the full model's own next token, not the shortlist's


def test_the_training_teacher_projects_onto_the_shortlist_rows_only(layered):
    """The distribution the heads learn equals the full model's renormalised on the rows; its argmax stays the full
    model's, though the rows were the only part of lm_head projected for the loss."""
    from types import SimpleNamespace

    from eebench.heads.train import DistillationTask

    ids = torch.tensor([0, 3, 5, 9, 17, 40])
    heads = ExitHeads.create(layered, [1], readout="shortlist", readout_ids=ids)
    final = torch.randn(2, 5, layered.hidden_size, generator=torch.Generator().manual_seed(2))
    teacher = DistillationTask.teacher(SimpleNamespace(layered=layered, heads=heads), final)
    full = layered.final_logits(final).flatten(0, -2)
    torch.testing.assert_close(teacher.probs, F.softmax(F.log_softmax(full, -1)[:, ids], -1))
    assert torch.equal(teacher.argmax, full.argmax(-1))


def test_the_training_probe_reads_a_shortlist_on_its_rows_as_on_the_whole_vocabulary(layered):
    """Head training's exit probe takes entropy and argmax on the readout's rows: equal to those of the logits
    spread to the vocabulary (outside rows get no probability), at a fraction of the width."""
    ids = torch.tensor([0, 3, 5, 9, 17, 40])
    heads = ExitHeads.create(layered, [1, 2], readout="shortlist", readout_ids=ids)
    hidden = torch.randn(7, layered.hidden_size, generator=torch.Generator().manual_seed(3))
    for index in range(2):
        rows, spread = heads.readout_logits(index, hidden), heads.logits(index, hidden)
        assert rows.shape[-1] == len(ids) and spread.shape[-1] == layered.vocab_size
        entropy = [-(F.log_softmax(x, -1).exp() * F.log_softmax(x, -1)).sum(-1) for x in (rows, spread)]
        torch.testing.assert_close(entropy[0], entropy[1])
        assert torch.equal(heads.vocabulary_ids(rows.argmax(-1)), spread.argmax(-1))
    full = ExitHeads.create(layered, [1])
    assert torch.equal(full.vocabulary_ids(torch.tensor([4, 2])), torch.tensor([4, 2]))


def _compose(overrides: list[str]):
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return validate(compose("config", overrides=overrides))


def test_readout_is_a_config_group_with_one_line_errors():
    assert _compose([]).readout.kind == "full"
    cfg = _compose(["readout=shortlist", "readout.options.k=512"])
    assert (cfg.readout.kind, cfg.readout.options) == ("shortlist", {"k": 512})
    for bad, message in (
        ("readout.options.k=0", r"readout.options.k=0 is invalid; allowed: an integer >= 1"),
        ("readout.kind=topk", r"readout.kind='topk' is not supported; allowed: full, shortlist"),
    ):
        with pytest.raises(EEBenchError, match=message):
            _compose(["readout=shortlist", bad])


def test_a_readout_sweep_names_the_readout_and_dssd_stays_exact(tmp_path, sweep_env):
    """Under DSSD every token is verified by the full model: a shortlist readout changes speed, never output."""
    from conftest import point_results, run_eebench

    env, common = sweep_env
    sweep = tmp_path / "sweep"
    args = ["-m", *common, "logger=none", "timing.strategy=dssd", f"hydra.sweep.dir={sweep}"]
    for readout in (["readout=full"], ["readout=shortlist", "readout.options.k=64"]):  # k is the shortlist's own key
        proc = run_eebench([*args, *readout], tmp_path, env)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    runs = {run["readout"]: run for run in point_results(sweep, "readout")}
    assert set(runs) == {"full", "shortlist"} and runs["shortlist"]["readout_options"] == {"k": 64}
    full, short = runs["full"]["cost_model"], runs["shortlist"]["cost_model"]
    assert short["head_cost"] < full["head_cost"] and short["lm_head_cost"] == full["lm_head_cost"]
    for run in runs.values():
        assert run["timing"]["token_match_with_reference"] == 1.0  # float32: DSSD == greedy
        # Lossless strategies report lossless accuracy: the full model's, an accuracy change of exactly 0.
        assert run["tasks"] == run["baseline_tasks"] and run["eval_decoders"]["accuracy"] == "verified_full_model"
        (change,) = run["paired_tasks"]  # paired with itself: no example changes answer
        assert (change["delta"], change["stderr"], change["improved"], change["worsened"]) == (0.0, 0.0, 0, 0)
        speculation = run["timing"]["speculation"]  # the field's speculative-decoding measures, per timed point
        assert speculation["full_passes"] > 0 and 0.0 <= speculation["acceptance_rate"] <= 1.0
        assert len(speculation["acceptance_by_position"]) <= 5 and all(0 <= a <= 1 for a in speculation["acceptance_by_position"])
    assert runs["shortlist"]["heads_training"]["heads"]["loss"] == "kl_over_readout_rows"
    report = (sweep / "report.md").read_text()
    assert "linear+shortlist:k=64" in report and "accuracy change is 0 by construction" in report
