"""Every shipped YAML config loads into its dataclass and states the command that runs it."""

from pathlib import Path

import pytest
import yaml

from reagent.config import load_config
from reagent.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
TRAIN_CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
ACCELERATE_CONFIGS = sorted((ROOT / "configs" / "accelerate").glob("*.yaml"))


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: p.name)
def test_train_config_validates(path):
    assert path.read_text().startswith("# "), "a shipped config starts with the command that runs it"
    config = load_config(TrainConfig, yaml_path=str(path))
    assert config.variant in path.name.replace("_", "-")


@pytest.mark.parametrize("path", ACCELERATE_CONFIGS, ids=lambda p: p.name)
def test_accelerate_config_is_deepspeed(path):
    assert path.read_text().startswith("# accelerate launch")
    data = yaml.safe_load(path.read_text())
    assert data["distributed_type"] == "DEEPSPEED"
    assert data["deepspeed_config"]["zero_stage"] in (2, 3)


def test_there_are_configs_for_every_variant_and_a_real_run():
    names = {p.name for p in TRAIN_CONFIGS}
    assert {"toy_grpo.yaml", "toy_reagent_r.yaml", "toy_reagent_u.yaml", "qwen7b_reagent_u.yaml"} <= names
