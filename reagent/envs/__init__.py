"""Environments: task families with tools and outcome rewards."""

from __future__ import annotations

from reagent.envs.base import Environment, last_boxed

ENV_NAMES = ("toy", "math", "qa")


def make_env(name: str, **kwargs) -> Environment:
    """Build an environment by name; the error lists the valid names."""
    if name == "toy":
        from reagent.envs.toy import ToyEnv

        return ToyEnv(**kwargs)
    if name == "math":
        from reagent.envs.math_env import MathEnv

        return MathEnv(**kwargs)
    if name == "qa":
        from reagent.envs.qa import QAEnv

        return QAEnv(**kwargs)
    raise ValueError(f"unknown environment '{name}'; valid: {', '.join(ENV_NAMES)}")


__all__ = ["ENV_NAMES", "Environment", "last_boxed", "make_env"]
