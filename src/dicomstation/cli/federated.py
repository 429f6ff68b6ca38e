"""``query A B C`` / ``query --all`` and ``fetch STUDY_UID``: several servers at once.

The CLI side of :mod:`dicomstation.nodes.federated`: names resolved from the
settings (an unknown one is a usage error before anything is asked), failed
servers printed as one-line warnings, exit code 1 when some server failed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import typer

from dicomstation.cli.common import (
    ExitCode,
    UsageError,
    err_console,
    print_json,
    print_refs,
    printed_warnings,
)
from dicomstation.errors import ConfigError

if TYPE_CHECKING:
    from dicomstation.models import Query
    from dicomstation.nodes import DicomNode

__all__ = ["federated_query", "holder"]

_UID = re.compile(r"[0-9]+(\.[0-9]+)*")


def _opener(names: list[str]) -> Callable[[str], DicomNode]:
    """``name -> node`` over the settings' servers; an unknown name is a usage error now."""
    from dicomstation.nodes import open_node
    from dicomstation.settings import Settings

    settings = Settings.load()
    configs = {name: settings.server(name) for name in names}
    return lambda name: open_node(configs[name], local=settings.local)


def _all_names(servers: list[str], all_servers: bool) -> list[str]:
    from dicomstation.nodes.federated import preference_order
    from dicomstation.settings import Settings

    if not all_servers:
        return list(dict.fromkeys(servers))
    if servers:
        raise UsageError("--all queries every server: name none, or leave out --all")
    settings = Settings.load()
    if not settings.servers:
        raise ConfigError("no servers configured (dicomstation server add NAME ...)")
    return preference_order(list(settings.servers), settings.default_server)


def _warn_failed(failed: Mapping[str, str]) -> None:
    from rich.text import Text

    for name, reason in failed.items():
        err_console.print(Text(f"warning: server {name}: {reason}"), soft_wrap=True)


def federated_query(servers: list[str], all_servers: bool, q: Query, as_json: bool) -> None:
    """Print the merged rows of ``q`` on ``servers`` (or all); exit 1/3 when some/all failed."""
    from dicomstation.nodes.federated import federated_find

    names = _all_names(servers, all_servers)
    opener = _opener(names)
    with printed_warnings():
        result = federated_find(names, q, opener)
    _warn_failed(result.failed)
    if as_json:
        rows = [
            {"uid": r.uid, "servers": list(r.servers), "json": dict(r.ref.json)}
            for r in result.rows
        ]
        print_json(rows)
    else:
        print_refs(result.refs, False, servers=[row.servers for row in result.rows])
    if len(result.failed) == len(names):
        raise typer.Exit(int(ExitCode.NOTHING_DONE))
    if result.failed:
        raise typer.Exit(int(ExitCode.PARTLY_FAILED))


def holder(study_uid: str) -> str:
    """The configured server to fetch ``study_uid`` from; says which (and who else has it)."""
    from dicomstation.settings import Settings

    if not _UID.fullmatch(study_uid):
        raise UsageError(f"{study_uid!r} is not a study UID (fetch [SERVER] STUDY_UID)")
    settings = Settings.load()
    if not settings.servers:
        raise ConfigError("no servers configured (dicomstation server add NAME ...)")
    from dicomstation.nodes.federated import pick_holder, preference_order

    names = preference_order(list(settings.servers), settings.default_server)
    name, result = pick_holder(names, study_uid, _opener(names))
    _warn_failed(result.failed)
    others = [n for n in result.rows[0].servers if n != name]
    also = f" (also on {', '.join(others)})" if others else ""
    from rich.text import Text

    err_console.print(Text(f"fetching study {study_uid} from {name}{also}"), soft_wrap=True)
    return name
