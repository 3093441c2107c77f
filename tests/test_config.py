"""Config dataclasses: defaults < YAML < flags < key=value; unknown keys are named."""

import argparse
from dataclasses import dataclass

import pytest

from reagent.config import add_config_args, cfg, config_hash, load_config


@dataclass
class DemoConfig:
    lr: float = cfg(1e-3, help="learning rate")
    steps: int = cfg(10, help="optimizer steps")
    name: str = cfg("run", help="run name")
    bf16: bool = cfg(False, help="use bf16")
    tags: list = cfg([], help="free tags")
    model: str | None = cfg(None, help="model dir")


def parse(argv):
    p = argparse.ArgumentParser()
    add_config_args(p, DemoConfig)
    return p.parse_args(argv)


def test_precedence(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("lr: 0.5\nsteps: 3\nname: yaml\n")
    c = load_config(DemoConfig, parse(["--config", str(y), "--steps", "7", "name=kv", "bf16=true"]))
    assert (c.lr, c.steps, c.name, c.bf16, c.model) == (0.5, 7, "kv", True, None)
    assert load_config(DemoConfig, parse(["tags=[a, b]"])).tags == ["a", "b"]


def test_errors_name_the_key(tmp_path):
    with pytest.raises(ValueError, match="unknown config key 'stpes'.*steps"):
        load_config(DemoConfig, parse(["stpes=3"]))
    with pytest.raises(ValueError, match="'steps': cannot read 'many' as int"):
        load_config(DemoConfig, parse(["steps=many"]))
    y = tmp_path / "bad.yaml"
    y.write_text("learning_rate: 1\n")
    with pytest.raises(ValueError, match="learning_rate"):
        load_config(DemoConfig, parse(["--config", str(y)]))


def test_hash_is_stable_and_sensitive():
    assert config_hash(DemoConfig()) == config_hash(DemoConfig())
    assert config_hash(DemoConfig()) != config_hash(DemoConfig(lr=2.0))
