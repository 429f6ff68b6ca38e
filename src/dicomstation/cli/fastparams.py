"""Coerce plain command-line values without Pydantic (typer >= 0.2x builds a Pydantic
``TypeAdapter`` for every parameter that gets a value: importing Pydantic and building the
adapters costs 0.2-0.5 s, more than the rest of a command's start-up).

:func:`install` (called by ``cli/lazy.py``) gives each parameter of a command (and of
its subcommands) whose type is ``str``, ``int``, ``float``, ``bool``, ``pathlib.Path`` or
an enum (or a list or fixed tuple of them), without a custom parser or clamping, a runtime
coercer that converts well-formed values itself. Anything else - a malformed or
out-of-range number, an enum value spelt otherwise, bytes, an unknown typer version - goes
to typer's own coercion, so its values and its error messages are unchanged; only the
cost of the common, valid case goes away.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin

__all__ = ["install", "install_own"]

_INT = re.compile(r"-?[0-9]+")
_FLOAT = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


class _SlowPathError(Exception):
    """The value needs typer's own coercion."""


def _as_str(value: Any) -> Any:
    if isinstance(value, str):
        return value
    raise _SlowPathError


def _as_int(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INT.fullmatch(value):
        return int(value)
    raise _SlowPathError


def _as_float(value: Any) -> Any:
    if isinstance(value, float):
        return value
    if isinstance(value, str) and _FLOAT.fullmatch(value):
        return float(value)
    raise _SlowPathError


def _as_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    raise _SlowPathError  # "yes", "0"...: typer's own rules


_LEAVES: dict[Any, Callable[[Any], Any]] = {
    str: _as_str,
    int: _as_int,
    float: _as_float,
    bool: _as_bool,
}

try:  # typer's runtime-coercion seam; absent in other typer versions (then nothing is done)
    from typer._coercion import RuntimeParam, build_runtime_param
    from typer._param_types import coerce_cli_path

    _BASE: Any = RuntimeParam
    _AVAILABLE = True
except ImportError:  # pragma: no cover - depends on the installed typer
    _BASE = object
    _AVAILABLE = False


def _plain(info: Any) -> bool:
    """No parser, clamping or path resolution that typer must apply itself."""
    return (
        getattr(info, "parser", None) is None
        and not getattr(info, "clamp", False)
        and not getattr(info, "resolve_path", False)
        and not getattr(info, "allow_dash", False)
        and getattr(info, "path_type", None) is None
    )


@dataclass(frozen=True)
class _FastParam(_BASE):  # type: ignore[misc]
    """Plain values converted here; anything else by typer's own coercion."""

    leaves: tuple[Callable[[Any, Any, Any], Any], ...]
    shape: str
    """``"one"`` value, ``"list"`` of values, or a fixed-length ``"tuple"``."""
    descriptor: Any

    def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
        try:
            if self.shape == "list":
                items = value if isinstance(value, list | tuple) else [value]
                return [self.leaves[0](item, param, ctx) for item in items]
            if self.shape == "tuple":
                if not isinstance(value, list | tuple) or len(value) != len(self.leaves):
                    raise _SlowPathError
                return tuple(f(v, param, ctx) for f, v in zip(self.leaves, value, strict=True))
            return self.leaves[0](value, param, ctx)
        except _SlowPathError:
            slow = build_runtime_param(self.descriptor)
            return slow._coerce_value(value, param, ctx)


def _leaf_for(annotation: Any, info: Any) -> Callable[[Any, Any, Any], Any] | None:
    simple = _LEAVES.get(annotation)
    low, high = getattr(info, "min", None), getattr(info, "max", None)
    if simple is not None and (low is not None or high is not None):
        if annotation not in (int, float):
            return None

        def bounded(value: Any, _param: Any, _ctx: Any) -> Any:
            number = simple(value)
            if (low is not None and number < low) or (high is not None and number > high):
                raise _SlowPathError  # out of range: typer's own message
            return number

        return bounded
    if simple is not None:
        return lambda value, _param, _ctx: simple(value)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _enum_leaf(annotation)
    if annotation is Path:

        def as_path(value: Any, param: Any, ctx: Any) -> Any:
            if not isinstance(value, str | Path):
                raise _SlowPathError
            path = Path(value)
            return coerce_cli_path(path, info, path_type=Path, param=param, ctx=ctx)

        return as_path
    return None


def _enum_leaf(kind: type[enum.Enum]) -> Callable[[Any, Any, Any], Any]:
    """A member of ``kind`` from its exact value (other spellings: typer's own rules)."""
    by_value = {str(member.value): member for member in kind}

    def as_member(value: Any, _param: Any, _ctx: Any) -> Any:
        if isinstance(value, kind):
            return value
        if isinstance(value, str) and value in by_value:
            return by_value[value]
        raise _SlowPathError

    return as_member


def _fast(descriptor: Any) -> Any:
    """A fast runtime coercer for this parameter, or None to leave it to typer."""
    annotation, info = descriptor.annotation, descriptor.parameter_info
    if getattr(descriptor, "file_annotation", None) is not None or not _plain(info):
        return None
    origin = get_origin(annotation)
    shape = {list: "list", tuple: "tuple"}.get(origin, "one") if origin else "one"
    if origin is not None and shape == "one":
        return None
    parts = get_args(annotation) if origin is not None else (annotation,)
    if (shape == "list" and len(parts) != 1) or Ellipsis in parts:
        return None
    found = [_leaf_for(part, info) for part in parts]
    leaves = tuple(leaf for leaf in found if leaf is not None)
    if not leaves or len(leaves) != len(found):
        return None
    return _FastParam(
        parameter_info=info, annotation=descriptor.annotation, leaves=leaves, shape=shape,
        descriptor=descriptor,
    )  # fmt: skip


def install_own(command: Any, ctx: Any) -> None:
    """Only ``command``'s own parameters (a group parsing its options)."""
    _install_params(command.get_params(ctx))


def _install_params(params: Any) -> None:
    if not _AVAILABLE:  # pragma: no cover - another typer version
        return
    for param in params:
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is None or getattr(param, "_runtime_param", 0) is not None:
            continue
        fast = _fast(descriptor)
        if fast is not None:
            param._runtime_param = fast


def install(command: Any, ctx: Any = None) -> None:
    """Give ``command``'s plain parameters (and its subcommands') the fast coercer.

    With ``ctx`` (the parent's context) the ``--help`` option, which typer makes on
    first use, is included.
    """
    _install_params(command.get_params(ctx) if ctx is not None else command.params)
    for sub in getattr(command, "commands", {}).values():
        install(sub, ctx)
