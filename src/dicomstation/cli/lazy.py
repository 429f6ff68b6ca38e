"""A Typer group that imports a command's module only when that command runs.

``dicomstation --help`` lists the commands from a table (name -> module and one-line
help) without importing any command module, so start-up does not pay for
pydicom, highdicom, httpx, pynetdicom, FastAPI or Dask; ``dicomstation load ...``
imports ``cli/load_cmds`` (and what it needs) only. Every command's help is plain click
help (typer's rich boxes import rich), and plain option values are coerced without
Pydantic (``cli/fastparams.py``). The table is checked against
what each module really registers by a test (tests/volumes/test_startup.py).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, ClassVar

import typer
from typer.core import TyperGroup

from dicomstation.cli import fastparams

__all__ = ["Entry", "LazyGroup", "lazy_group"]

Entry = tuple[str, str]
"""(module under ``dicomstation.cli``, one-line help) of a command."""


class LazyGroup(TyperGroup):
    """Commands named in :attr:`table`, each loaded from its module on first use."""

    table: ClassVar[Mapping[str, Entry]] = {}

    def list_commands(self, ctx: Any) -> list[str]:
        """Every command, in table order (no module is imported)."""
        return [*self.table, *(name for name in self.commands if name not in self.table)]

    def parse_args(self, ctx: Any, args: list[str]) -> Any:
        """Parse the group's own options, coercing plain values without Pydantic."""
        fastparams.install_own(self, ctx)
        return super().parse_args(ctx, args)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """The command, importing and registering its module the first time."""
        if cmd_name not in self.commands and cmd_name in self.table:
            self._load(self.table[cmd_name][0])
        command = self.commands.get(cmd_name)
        if command is not None:
            fastparams.install(command, ctx)
        return command

    def _load(self, module_name: str) -> None:
        module: Any = importlib.import_module(f"dicomstation.cli.{module_name}")
        sub = typer.Typer()
        module.register(sub)
        for name, command in typer.main.get_group(sub).commands.items():
            _plain_help(command)
            self.commands.setdefault(name, command)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        """Plain click help (rich formatting would import every command to describe it)."""
        super(TyperGroup, self).format_help(ctx, formatter)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """The command list, from the table's one-line help."""
        rows = [(name, help_text) for name, (_, help_text) in self.table.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _plain_help(command: Any) -> None:
    """Plain click help for ``command`` and its subcommands, like ``dicomstation --help``.

    typer's rich help boxes import rich (and its markdown and syntax modules): they more
    than doubled the time of ``dicomstation CMD --help`` (0.46 s against 0.21 s of CPU).
    """
    if hasattr(command, "rich_markup_mode"):
        command.rich_markup_mode = None
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub)


def lazy_group(table: Mapping[str, Entry]) -> type[LazyGroup]:
    """A :class:`LazyGroup` class serving ``table``."""
    return type("DicomstationGroup", (LazyGroup,), {"table": dict(table)})
