"""The W&B sweep definition turns every grid point into Hydra overrides that compose (no network)."""

from __future__ import annotations

import itertools
from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

from eebench.config import register_configs

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ROOT / "sweeps" / "wandb_threshold_sweep.yaml"


def _grid(parameters: dict) -> list[dict]:
    """Every point of a grid sweep as the agent's {name: {"value": v}} argument dict."""
    names = list(parameters)
    choices = [spec["values"] if "values" in spec else [spec["value"]] for spec in parameters.values()]
    return [{name: {"value": value} for name, value in zip(names, point)} for point in itertools.product(*choices)]


def test_wandb_sweep_points_are_hydra_overrides():
    sweep = yaml.safe_load(SWEEP.read_text(encoding="utf-8"))
    assert sweep["program"] == "run.py" and sweep["method"] == "grid"
    assert sweep["command"] == ["${env}", "${interpreter}", "${program}", "${args_no_hyphens}"]
    points = _grid(sweep["parameters"])
    assert len(points) == 6
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        for point in points:
            overrides = create_sweep_command_args({"args": point})["args_no_hyphens"]
            assert all("=" in o and not o.startswith("-") for o in overrides)
            config = compose("config", overrides=overrides, return_hydra_config=True)
            assert config.threshold == point["threshold"]["value"]
            assert config.confidence.metric == point["confidence"]["value"]
            assert config.logger.mode == "online"
            # ${now:...} is resolved by Hydra at launch; here only the template matters.
            run_dir = OmegaConf.to_container(config.hydra.run, resolve=False)["dir"]
            assert run_dir.startswith("outputs/wandb_sweeps/")
