"""Build the frozen dataclasses of a pipeline file from its TOML tables, types checked.

TOML has types; Python's dataclasses do not check them. Without this, ``per_series =
"no"`` was true (a non-empty string), ``limit = "5"`` reached the query, and a wrong
key or type surfaced as Python's own words. :func:`build` refuses unknown keys,
missing required ones and values of the wrong type, each in one line naming the key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from dicomstation.errors import ConfigError

__all__ = ["build", "check_value"]

T = TypeVar("T")


def build(cls: type[T], table: Mapping[str, Any], where: str, **given: Any) -> T:
    """``cls(**table, **given)`` once every key of ``table`` is a field of the right type."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(table) - set(fields))
    if unknown:
        known = sorted(set(fields) - set(given))
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {known}")
    for name, spec in fields.items():
        required = (
            spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING
        )
        if required and name not in table and name not in given:
            raise ConfigError(f"{where}: {name} is required")
    for key, value in table.items():
        check_value(value, hints[key], f"{where}.{key}")
    return cls(**table, **given)


def check_value(value: Any, expected: Any, where: str) -> None:
    """ConfigError naming ``where`` unless ``value`` (from TOML) fits annotation ``expected``."""
    if not _fits(value, expected):
        raise ConfigError(f"{where} must be {_describe(expected)}, not {value!r}")


def _fits(value: Any, expected: Any) -> bool:
    origin = typing.get_origin(expected)
    if expected is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arm) for arm in typing.get_args(expected))
    if expected is type(None):
        return value is None
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected in (str, Path):
        return isinstance(value, str)
    if origin is not None and isinstance(origin, type) and issubclass(origin, Mapping):
        _, item = typing.get_args(expected) or (Any, Any)
        return isinstance(value, Mapping) and all(_fits(v, item) for v in value.values())
    if origin is not None and isinstance(origin, type) and issubclass(origin, Sequence):
        item = (typing.get_args(expected) or (Any,))[0]
        return isinstance(value, list | tuple) and all(_fits(v, item) for v in value)
    return True  # anything richer: the class checks it


def _describe(expected: Any) -> str:
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        arms = [a for a in typing.get_args(expected) if a is not type(None)]
        return " or ".join(_describe(a) for a in arms)
    if origin is not None and isinstance(origin, type) and issubclass(origin, Mapping):
        return f"a table of {_describe((typing.get_args(expected) or (Any, Any))[1])}"
    if origin is not None and isinstance(origin, type) and issubclass(origin, Sequence):
        return f"a list of {_describe((typing.get_args(expected) or (Any,))[0])}"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(expected, "a string" if expected is Path else "a value")
