"""``docs/configuration.md``, generated from the typed config (``eebench/config.py``) and ``conf/``.

    python -m eebench.config_doc > docs/configuration.md

For every config group: its options (the variants of its registry, described by their module's docstring, for
the pluggable axes of ``eebench.config.AXES``; else one YAML each, described by the file's leading comment), with
the keys each sets, and every key with its type, its default (what ``python run.py`` composes with no overrides,
or the variant's own default for a key only one variant has) and its meaning: the comment beside the dataclass
field (``eebench.field_docs``), else the comment beside the key in the group's YAML files, else ``EXTRA_MEANINGS``.
Then the ``experiment`` presets, the Hydra launchers and the generation
strategies. ``tests/test_config_doc.py`` keeps the file equal to this output and every key documented.
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from eebench.conf_files import CONF_DIR, file_values, flat_settings, group_files, group_yaml_comments, leading_comment
from eebench.config import AXES, Axis, ExperimentConfig, register_configs
from eebench.engine.strategies import STRATEGIES
from eebench.field_docs import field_comments, type_text

GENERATE_COMMAND = "python -m eebench.config_doc > docs/configuration.md"
PRESET_GROUP = "experiment"
LAUNCHER_GROUP = "hydra/launcher"

# What each group is for (the groups' own files say what each option is).
GROUP_INTROS = {
    "backbone": "The frozen pretrained model: the bundled SmolLM2-135M, a hub id or a local model directory "
    "(a GGUF file in it with `backbone.gguf_file`).",
    "placement": "Which blocks get an exit head.",
    "head": "The exit heads' architecture, their self-distillation training and the cheap exit gates.",
    "confidence": "The metric a head's prediction is judged by; a token exits at the first head whose metric passes "
    "that head's calibrated threshold.",
    "calibration": "How each head's threshold is chosen so that the tokens it lets exit agree with the full model "
    "at the target rate (`threshold`).",
    "data": "The text the heads are trained and calibrated on, split by document into train / calibration / held-out.",
    "eval": "The lm-eval tasks scored under the exit policy and with the full model.",
    "timing": "Greedy generation timed against transformers' `generate(do_sample=False)` of the same backbone "
    "(see [measurement.md](measurement.md)).",
    "logger": "Where results are logged besides the run directory (W&B, offline by default).",
}

# Meanings of keys whose dataclass field and YAML files carry no comment.
EXTRA_MEANINGS = {
    "seed": "seeds head training and the draw of calibration and held-out documents",
    "device": "auto: CUDA when available, else CPU",
    "name": "the sweep's name: multiruns land in outputs/sweeps/<name>_<time>/",
    "backbone.gguf_file": "a GGUF file inside backbone.name_or_path, loaded with transformers' gguf_file=",
    "backbone.revision": "the hub revision (branch, tag or commit) of a hub id",
    "backbone.trust_remote_code": "allow a checkpoint's own modelling code (then checked against its own forward on load)",
    "head.init_from_lm_head": "initialise the head's projection from the backbone's lm_head",
    "head.training.lr": "peak learning rate (AdamW, cosine schedule with warmup)",
    "head.training.warmup_steps": "linear warmup steps of the cosine schedule",
    "head.training.weight_decay": "AdamW weight decay",
    "head.training.min_delta": "the smallest held-out KL improvement that counts",
    "head.gate.batch_size": "sequences per gate training step",
    "head.gate.lr": "the gates' learning rate",
    "data.seq_len": "tokens per training / calibration / held-out sequence",
    "data.train_sequences": "training sequences (the last head.training.val_sequences of them validate, never train)",
    "data.calibration_sequences": "sequences the thresholds are calibrated on",
    "data.heldout_sequences": "sequences the exit statistics and the calibration check are computed on",
    "eval.tasks": "task names of the suite; empty: no evaluation",
    "eval.include_path": "a folder of lm-eval task YAMLs (suite=lm_eval), added to the tasks lm-eval knows",
    "eval.batch_size": "requests per lm-eval batch",
    "eval.num_fewshot": "few-shot examples per request",
    "timing.enabled": "time generation (timing=none turns it off)",
    "timing.num_prompts": "prompts timed per workload and repeat",
    "timing.max_new_tokens": "tokens generated per prompt, none stopping at EOS (>= 2)",
    "timing.warmup": "untimed runs of every workload before the repeats",
    "logger.kind": "wandb or none",
    "logger.project": "the W&B project",
    "logger.entity": "the W&B entity (user or team); null: your default",
}


@dataclasses.dataclass
class Key:
    """One config key: its dotted name, the dataclass that declares it and the field (and the one variant of its
    group that has it, for a variant's own field such as ``placement.num_heads`` of ``placement=equal``)."""

    name: str
    owner: type
    field: dataclasses.Field
    variant: str | None = None


def group_fields() -> dict[str, type]:
    """Config groups (``backbone``, ``head``, ...) -> their dataclass, in ``ExperimentConfig``'s order."""
    hints = typing.get_type_hints(ExperimentConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(ExperimentConfig) if dataclasses.is_dataclass(hints[f.name])}


def config_keys(cls: type, prefix: str = "") -> list[Key]:
    """Every leaf key of ``cls``, nested dataclasses (``head.training``) expanded."""
    keys, hints = [], typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        name = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            keys += config_keys(hints[f.name], f"{name}.")
        else:
            keys.append(Key(name, cls, f))
    return keys


AXIS_BY_GROUP: dict[str, Axis] = {axis.group: axis for axis in AXES}


def variant_keys(group: str) -> list[Key]:
    """The keys each variant of ``group`` has beyond the group's own config type, e.g. ``calibration.delta``."""
    axis = AXIS_BY_GROUP.get(group)
    if axis is None:
        return []
    shared = {f.name for f in dataclasses.fields(axis.base)}
    keys = []
    for name in axis.registry.names():
        cls = type(axis.option(name))
        keys += [dataclasses.replace(k, variant=name) for k in config_keys(cls, f"{group}.") if k.field.name not in shared]
    return keys


def top_level_keys() -> list[Key]:
    return [key for key in config_keys(ExperimentConfig) if "." not in key.name]


def composed_defaults() -> dict:
    """What ``python run.py`` composes with no overrides (the default option of every group)."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return OmegaConf.to_container(compose("config"), resolve=False)


def lookup(tree: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def value_text(value: Any) -> str:
    """A YAML-like rendering of a config value: null, true, [a, b], ??? (required)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(value_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {value_text(v)}" for k, v in value.items()) + "}"
    return "??? (required)" if value == "???" else str(value)


def settings_text(tree: dict, skip: tuple[str, ...] = ("defaults",)) -> str:
    pairs = [f"`{key}={value_text(value)}`" for key, value in flat_settings(tree) if key.split(".")[0] not in skip]
    return ", ".join(pairs)


# ----------------------------------------------------------------------------- meanings


def key_meaning(key: Key, yaml_comments: dict[str, str]) -> str:
    """The dataclass comment, else the group YAML's comment, else EXTRA_MEANINGS; '' if none."""
    own = field_comments(key.owner).get(key.field.name, "")
    return own or yaml_comments.get(key.name, "") or EXTRA_MEANINGS.get(key.name, "")


def group_keys(group: str, cls: type) -> list[Key]:
    return config_keys(cls, f"{group}.") + variant_keys(group)


def all_keys() -> list[Key]:
    return top_level_keys() + [key for group, cls in group_fields().items() for key in group_keys(group, cls)]


def all_yaml_comments() -> dict[str, str]:
    comments: dict[str, str] = {}
    for group in group_fields():
        comments.update(group_yaml_comments(group))
    return comments


def undocumented_keys() -> list[str]:
    """Config keys with no meaning from any source (tests keep this empty)."""
    comments = all_yaml_comments()
    return [key.name for key in all_keys() if not key_meaning(key, comments)]


# ----------------------------------------------------------------------------- rendering


def table_cell(text: str) -> str:
    return text.replace("|", "\\|")


def key_table(keys: list[Key], defaults: dict, yaml_comments: dict[str, str]) -> list[str]:
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key in keys:
        hint = typing.get_type_hints(key.owner)[key.field.name]
        default = value_text(key_default(key, defaults))
        meaning = key_meaning(key, yaml_comments)
        if key.variant is not None:
            meaning = f"{key.name.split('.')[0]}={key.variant} only: {meaning}"
        rows.append(f"| `{key.name}` | {table_cell(type_text(hint))} | `{default}` | {table_cell(meaning)} |")
    return rows


def key_default(key: Key, defaults: dict) -> Any:
    """What ``python run.py`` composes, or for a variant's own key, that variant's default."""
    if key.variant is None:
        return lookup(defaults, key.name)
    option = AXIS_BY_GROUP[key.name.split(".")[0]].option(key.variant)
    return lookup(OmegaConf.to_container(OmegaConf.structured(option), resolve=False), key.name.split(".", 1)[1])


def variant_description(text: str) -> str:
    """A variant's docstring as one line of Markdown (its first paragraph, RST literals as code spans)."""
    return " ".join(text.strip().split("\n\n")[0].split()).replace("``", "`")


def variant_settings(axis: Axis, name: str) -> str:
    """The keys a variant's option sets beyond its group's own fields: ``num_heads=4``, ``options.rank=64``."""
    tree = OmegaConf.to_container(OmegaConf.structured(axis.option(name)), resolve=False)
    shared = {key.name for key in config_keys(axis.base)}
    return ", ".join(f"`{key}={value_text(value)}`" for key, value in flat_settings(tree) if key not in shared)


def default_option(group: str) -> str | None:
    """The option config.yaml's defaults list picks for ``group``."""
    for entry in file_values(CONF_DIR / "config.yaml")["defaults"]:
        if isinstance(entry, dict) and group in entry:
            return entry[group]
    return None


def options_table(group: str) -> list[str]:
    rows = ["| option | what it is | sets |", "|---|---|---|"]
    chosen = default_option(group)
    if group in AXIS_BY_GROUP:
        axis = AXIS_BY_GROUP[group]
        for name, variant in axis.registry.items():
            label = f"`{name}`" + (" (default)" if name == chosen else "")
            description = table_cell(variant_description(variant.description))
            rows.append(f"| {label} | {description} | {table_cell(variant_settings(axis, name))} |")
        return rows
    for path in group_files(group):
        name = f"`{path.stem}`" + (" (default)" if path.stem == chosen else "")
        rows.append(f"| {name} | {table_cell(leading_comment(path))} | {table_cell(settings_text(file_values(path)))} |")
    return rows


def group_section(group: str, cls: type, defaults: dict) -> list[str]:
    lines = [f"## `{group}`", "", GROUP_INTROS.get(group, ""), ""]
    lines += [f"Options (`{group}=<option>`):", ""] + options_table(group) + [""]
    lines += key_table(group_keys(group, cls), defaults, group_yaml_comments(group)) + [""]
    return lines


def preset_builds_on(tree: dict) -> str:
    parts = []
    for entry in tree.get("defaults", []):
        if isinstance(entry, str):
            parts.append(f"`experiment={entry}`")
        else:
            parts += [f"`{k.split('/')[-1]}={v}`" for k, v in entry.items()]
    return ", ".join(parts)


def preset_row(path: Path) -> str:
    tree = file_values(path)
    sweep = tree.get("hydra", {}).get("sweeper", {}).get("params", {})
    sweeps = " ".join(f"`{key}={value}`" for key, value in sweep.items())
    sets = settings_text(tree, skip=("defaults", "hydra"))
    return f"| `{path.stem}` | {table_cell(leading_comment(path))} | {preset_builds_on(tree)} | {sets} | {sweeps} |"


def presets_section() -> list[str]:
    lines = [
        f"## `{PRESET_GROUP}` presets",
        "",
        "A preset overrides other groups and keys at once (`python run.py -m experiment=demo`); with `-m` its "
        "sweep runs as a multirun. Keys given on the command line override the preset's.",
        "",
        "| preset | what it is | builds on | sets | sweeps (with `-m`) |",
        "|---|---|---|---|---|",
    ]
    return lines + [preset_row(path) for path in group_files(PRESET_GROUP)] + [""]


def launchers_section() -> list[str]:
    lines = [
        "## `hydra/launcher`",
        "",
        "How the points of a multirun are launched (`python run.py -m hydra/launcher=<option> ...`); "
        "the default is Hydra's basic launcher, one point after another in one process.",
        "",
        "| option | what it is | sets |",
        "|---|---|---|",
    ]
    for path in group_files(LAUNCHER_GROUP):
        tree = file_values(path)
        lines.append(f"| `{path.stem}` | {table_cell(leading_comment(path))} | {table_cell(settings_text(tree))} |")
    return lines + [""]


def strategies_section() -> list[str]:
    lines = [
        "## Generation strategies",
        "",
        "`timing.strategy` takes a strategy that follows the exit policy; `timing.baselines` lists fixed-block "
        "baselines, timed in the same schedule at `timing.baseline_exit_layer`.",
        "",
        "| strategy | use with | lossless | what it does |",
        "|---|---|---|---|",
    ]
    for name in STRATEGIES:
        strategy = STRATEGIES.get(name)
        use = "`timing.baselines`" if strategy.baseline else "`timing.strategy`"
        lossless = "yes" if strategy.lossless else "no"
        lines.append(f"| `{name}` | {use} | {lossless} | {table_cell(strategy.description)} |")
    return lines + [""]


INTRO = """\
Every key can be set on the command line (`python run.py head.training.max_tokens=65536`), a group's option
chosen by name (`python run.py head=mlp`), and `-m` sweeps comma-separated values (`python run.py -m
threshold=0.8,0.9`). Every value is type-checked when Hydra composes the config; a bad value stops with one line,
e.g. `error: threshold=1.5 is outside (0, 1]; it is the target agreement with the full model`. An unwritable output
folder, `data.seq_len` beyond the backbone's positions, a tokenizer with neither pad nor EOS token, a file given as
`backbone.name_or_path`, or more `placement.num_heads` than the depth allows stop with one line naming the key when the
point starts. *default* is what `python run.py` composes with no overrides (the default option of every group).
"""


def configuration_markdown() -> str:
    """The whole of docs/configuration.md."""
    defaults = composed_defaults()
    lines = [
        "# Configuration reference",
        "",
        f"<!-- Generated from eebench/config.py and conf/ by `{GENERATE_COMMAND}`; do not edit by hand. -->",
        "",
        INTRO,
        "## Top level",
        "",
    ]
    lines += key_table(top_level_keys(), defaults, {}) + [""]
    for group, cls in group_fields().items():
        lines += group_section(group, cls, defaults)
    lines += presets_section() + launchers_section() + strategies_section()
    return "\n".join(lines).rstrip("\n") + "\n"


def main() -> int:
    sys.stdout.write(configuration_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
