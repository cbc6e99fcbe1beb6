"""Every option of every config group and every experiment preset composes and validates (as lightning-hydra-
template's ``experiment=glob(*)`` test does), including each preset's own sweep grid, so no YAML rots unseen."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from eebench.config import ExperimentConfig, register_configs, validate

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name != "hydra")


def group_options() -> list[tuple[str, str]]:
    return [(group, path.stem) for group in GROUPS for path in sorted((CONF / group).glob("*.yaml"))]


def _compose(overrides: list[str], hydra: bool = False):
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=hydra)


def test_every_group_has_options():
    assert {"backbone", "placement", "head", "readout", "confidence", "calibration", "data", "eval", "timing"} <= set(GROUPS)


@pytest.mark.parametrize(("group", "option"), group_options())
def test_every_option_composes_and_validates(group, option):
    extra = ["head.gate.width=64"] if (group, option) == ("confidence", "gate") else []  # the gate needs gates
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
