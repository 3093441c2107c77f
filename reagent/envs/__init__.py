"""Environments: task families with tools and outcome rewards.

Which tools an environment offers is configuration (:func:`with_tools`, the ``tools``
field of the train, rollout and eval configs): ``tools: []`` makes a single-turn,
tool-free task (TRL-style GSM8K: no tool schema in the prompt, one answer turn).
"""

from __future__ import annotations

from dataclasses import replace

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


def offerable_tools(env_name: str) -> tuple[str, ...]:
    """The tool names environment ``env_name`` can offer."""
    if env_name == "toy":
        return ("lookup", "calc")
    if env_name == "math":
        return ("python",)
    from reagent.tools.factory import TOOL_BUILDERS

    return tuple(TOOL_BUILDERS)


def with_tools(env: Environment, names: list[str] | tuple[str, ...] | None) -> Environment:
    """A copy of ``env`` offering only ``names`` (None: ``env`` unchanged; ``[]``: no tools).

    The system prompt follows (math without python gets the tool-free prompt; qa lists
    the tools it offers), and with no tools no schema goes into the prompt. An unknown
    name is an error listing the valid ones.
    """
    if names is None:
        return env
    names = tuple(names)
    valid = offerable_tools(env.name)
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ValueError(f"tools={list(names)}: {', '.join(unknown)} not offered by env={env.name}; "
                         f"valid: {', '.join(valid)} (or [] for none)")
    if env.name == "math":
        return replace(env, use_python="python" in names)
    return replace(env, tool_names=names)


__all__ = ["ENV_NAMES", "Environment", "last_boxed", "make_env", "offerable_tools", "with_tools"]
