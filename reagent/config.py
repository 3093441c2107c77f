"""One config dataclass per command, settable from YAML, flags and ``key=value``.

Precedence, lowest first: dataclass defaults, ``--config FILE.yaml``, ``--flag value``
options, trailing ``key=value`` overrides. Every field's ``metadata["help"]`` is its
documentation and becomes the flag's help text. Unknown keys are errors that name
the key and list the valid ones, so a typo in a YAML file never passes silently.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

C = TypeVar("C")


def cfg(default: Any = dataclasses.MISSING, help: str = "", **kwargs) -> Any:  # noqa: A002
    """A dataclass field with a help string; lists and dicts get a factory."""
    if isinstance(default, (list, dict)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata={"help": help}, **kwargs)
    return dataclasses.field(default=default, metadata={"help": help}, **kwargs)


def _base_type(tp: Any) -> Any:
    """``int | None`` -> int; ``list[str]`` -> list."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _base_type(args[0]) if len(args) == 1 else str
    return origin or tp


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: _base_type(hints[f.name]) for f in dataclasses.fields(cls)}


def coerce(cls: type, key: str, value: Any) -> Any:
    """Convert a YAML or command-line value to the field's type, with an error naming the key."""
    types_ = _field_types(cls)
    if key not in types_:
        valid = ", ".join(sorted(types_))
        raise ValueError(f"unknown config key '{key}' for {cls.__name__}; valid keys: {valid}")
    tp = types_[key]
    if value is None or not isinstance(value, str):
        return value
    if value.lower() in ("none", "null"):
        return None
    try:
        if tp is bool:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if tp in (int, float):
            return tp(value)
        if tp in (list, dict):
            return yaml.safe_load(value)
    except ValueError:
        raise ValueError(f"config key '{key}': cannot read '{value}' as {tp.__name__}") from None
    return value


def add_config_args(parser: argparse.ArgumentParser, cls: type, positional: tuple[str, ...] = ()) -> None:
    """Add ``--config``, one ``--flag`` per field, and trailing ``key=value`` overrides."""
    parser.add_argument("--config", default=None, help="YAML file with config keys")
    types_ = _field_types(cls)
    for f in dataclasses.fields(cls):
        help_ = f.metadata.get("help", "")
        default = None if f.default is dataclasses.MISSING else f.default
        if f.name in positional:
            parser.add_argument(f.name, nargs="*" if types_[f.name] is list else None, help=help_)
            continue
        flag = "--" + f.name.replace("_", "-")
        if types_[f.name] is bool:
            parser.add_argument(flag, dest=f.name, default=None, action=argparse.BooleanOptionalAction,
                                help=f"{help_} (default: {default})")
        elif types_[f.name] is list:
            parser.add_argument(flag, dest=f.name, default=None, nargs="+", help=help_)
        else:
            parser.add_argument(flag, dest=f.name, default=None, help=f"{help_} (default: {default})")
    parser.add_argument("overrides", nargs="*", default=[], metavar="key=value",
                        help="config overrides, applied last")


def load_config(cls: type[C], args: argparse.Namespace | None = None, yaml_path: str | None = None,
                overrides: list[str] | None = None, **values: Any) -> C:
    """Build ``cls`` from defaults, YAML, parsed flags and ``key=value`` overrides."""
    merged: dict[str, Any] = {}
    yaml_path = yaml_path or (getattr(args, "config", None) if args else None)
    if yaml_path:
        data = yaml.safe_load(Path(yaml_path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{yaml_path}: expected a mapping of config keys")
        for k, v in data.items():
            merged[k] = coerce(cls, k, v)
    names = {f.name for f in dataclasses.fields(cls)}
    if args is not None:
        for k, v in vars(args).items():
            if k in names and v is not None and v != []:
                merged[k] = coerce(cls, k, v)
        overrides = list(overrides or []) + list(getattr(args, "overrides", []) or [])
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override '{item}' is not of the form key=value")
        k, v = item.split("=", 1)
        merged[k.strip()] = coerce(cls, k.strip(), v)
    for k, v in values.items():
        merged[k] = coerce(cls, k, v)
    return cls(**merged)


def config_dict(config: Any) -> dict:
    return dataclasses.asdict(config)


def config_hash(config: Any) -> str:
    """A short stable hash of a config, recorded in every output so results can be traced."""
    blob = json.dumps(config_dict(config), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def save_config(config: Any, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml.safe_dump(config_dict(config), sort_keys=False))
