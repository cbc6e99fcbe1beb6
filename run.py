"""Hydra entry point: one job = one point of a sweep.

python run.py experiment=smoke backbone.name_or_path=/path/to/model
python run.py -m experiment=demo threshold=0.8,0.9,0.95
"""

from __future__ import annotations

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_SILENT", "true")

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from eebench.config import register_configs  # noqa: E402
from eebench.pipeline import run_job  # noqa: E402
from eebench.sweep_dirs import register_resolvers  # noqa: E402

register_configs()
register_resolvers()  # hydra.sweep.subdir names each point by its configuration


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    run_job(cfg)


if __name__ == "__main__":
    main()
