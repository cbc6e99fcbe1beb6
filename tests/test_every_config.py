"""Every option of every config group and every experiment preset composes and validates (as lightning-hydra-
template's ``experiment=glob(*)`` test does), including each preset's own sweep grid, so no YAML rots unseen;
the options of the pluggable axes are their registries' variants, put in Hydra's ConfigStore, and conf/ restates
no default."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from eebench.backbones.families import family_for
from eebench.config import AXES, ExperimentConfig, register_configs, schema, validate
from eebench.errors import EEBenchError
from eebench.heads.config import HeadTrainingConfig

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
GROUPS = sorted({p.name for p in CONF.iterdir() if p.is_dir() and p.name != "hydra"} | {axis.group for axis in AXES})


def hydra_group_options(group: str) -> list[str]:
    """What Hydra offers for ``group=<option>``: the YAML files of conf/<group>/ and the ConfigStore's nodes."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return GlobalHydra.instance().config_loader().get_group_options(group)


def group_options() -> list[tuple[str, str]]:
    return [(group, option) for group in GROUPS for option in hydra_group_options(group)]


def _compose(overrides: list[str], hydra: bool = False):
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=hydra)


def test_every_group_has_options():
    assert {"backbone", "placement", "head", "readout", "confidence", "calibration", "data", "eval", "timing"} <= set(GROUPS)


@pytest.mark.parametrize(("group", "option"), group_options())
def test_every_option_composes_and_validates(group, option):
    # The gate needs gates; an explicit placement names its blocks.
    extras = {("confidence", "gate"): ["head.gate.width=64"], ("placement", "explicit"): ["placement.layers=[1,3]"]}
    extra = extras.get((group, option), [])
    typed = validate(_compose([f"{group}={option}", *extra]))
    assert isinstance(typed, ExperimentConfig)


def preset_sweep_points(preset: str) -> list[list[str]]:
    """The overrides of every point of the preset's own sweep grid (hydra.sweeper.params), or [[]] without one."""
    config = _compose([f"experiment={preset}"], hydra=True)
    params = OmegaConf.to_container(config.hydra.sweeper, resolve=False).get("params") or {}
    parser = OverridesParser.create()
    axes = []
    for key, values in params.items():
        override = parser.parse_override(f"{key}={values}")
        choices = list(override.sweep_iterator()) if override.is_sweep_override() else [override.value()]
        axes.append([f"{key}={choice}" for choice in choices])
    return [list(point) for point in itertools.product(*axes)]


@pytest.mark.parametrize("preset", sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")))
def test_every_preset_and_every_point_of_its_sweep_validates(preset):
    points = preset_sweep_points(preset)
    assert points
    for point in points:
        typed = validate(_compose([f"experiment={preset}", *point]))
        assert typed.name == preset


def test_the_sweep_grid_reader_sees_the_demo_grid():
    points = preset_sweep_points("demo")
    assert len(points) == 6 and ["confidence=gate", "threshold=0.95"] in points


@pytest.mark.parametrize("axis", AXES, ids=lambda axis: axis.group)
def test_the_options_of_each_axis_are_its_registry(axis):
    assert sorted(hydra_group_options(axis.group)) == sorted(axis.registry.names())
    assert not (CONF / axis.group).exists(), f"conf/{axis.group}/ would shadow the registry's options"
    assert all(variant.description for _, variant in axis.registry.items()), "every variant says what it is"


def test_the_command_lines_users_type_keep_working():
    explicit = validate(_compose(["placement=explicit", "placement.layers=[1,3]"]))
    assert (explicit.placement.kind, explicit.placement.layers) == ("explicit", [1, 3])
    controlled = validate(_compose(["calibration=risk_controlled", "calibration.delta=0.05"]))
    assert (controlled.calibration.method, controlled.calibration.delta, controlled.calibration.grid) == (
        "risk_controlled",
        0.05,
        200,
    )
    low_rank = validate(_compose(["head=low_rank", "head.options.rank=8", "readout=shortlist", "readout.options.k=64"]))
    assert (low_rank.head.options, low_rank.readout.options) == ({"rank": 8}, {"k": 64})
    # A variant's field belongs to that variant alone: the default placement has no layers to set.
    with pytest.raises(Exception, match="placement.layers"):
        _compose(["placement.layers=[1,3]"])


def test_the_defaults_compose_to_the_dataclasses_defaults():
    composed = dataclasses.asdict(validate(_compose([])))
    typed = dataclasses.asdict(ExperimentConfig())
    # The default options of config.yaml's groups add only what they declare (the offline tasks, the timing protocol).
    assert {k: composed[k] for k in ("placement", "head", "readout", "confidence", "calibration", "data")} == {
        k: typed[k] for k in ("placement", "head", "readout", "confidence", "calibration", "data")
    }
    assert composed["head"]["training"] == dataclasses.asdict(HeadTrainingConfig())


def flat_leaves(tree: dict, prefix: str = "") -> dict:
    leaves = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            leaves.update(flat_leaves(value, f"{prefix}{key}."))
        else:
            leaves[f"{prefix}{key}"] = value
    return leaves


@pytest.mark.parametrize(
    "path", sorted(p for group in ("backbone", "data", "eval", "logger") for p in (CONF / group).glob("*.yaml"))
)
def test_no_group_option_restates_a_default(path):
    defaults = flat_leaves(OmegaConf.to_container(OmegaConf.structured(schema()))[path.parent.name])
    restated = {k: v for k, v in flat_leaves(yaml.safe_load(path.read_text()) or {}).items() if defaults.get(k, object()) == v}
    assert restated == {}, f"{path.relative_to(ROOT)} restates these defaults; drop them"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"calibration": {"method": "risk_controled"}}, "calibration.method='risk_controled' is not supported; allowed: "),
        ({"confidence": {"metric": "entropi"}}, "confidence.metric='entropi' is not supported; allowed: "),
        ({"placement": {"kind": "equals"}}, "placement.kind='equals' is not supported; allowed: "),
        ({"head": {"kind": "low-rank"}}, "head.kind='low-rank' is not supported; allowed: "),
    ],
)
def test_an_unknown_name_fails_in_one_line_with_the_closest_name(config, message):
    with pytest.raises(EEBenchError) as caught:
        validate(config)
    text = str(caught.value)
    closest = {"risk_controled": "risk_controlled", "entropi": "entropy", "equals": "equal", "low-rank": "low_rank"}
    assert text.startswith(message) and "\n" not in text
    assert text.endswith(f"did you mean {closest[text.split(chr(39))[1]]!r}?")


def test_an_unknown_backbone_family_suggests_the_closest():
    class Config:
        model_type = "lama"

    with pytest.raises(EEBenchError, match=r"backbone family 'lama' is not supported; supported: .*; did you mean 'llama'\?$"):
        family_for(Config())
