"""The small tables that let the CLI start without importing a library, checked against it,
and the Pydantic-free value coercion (cli/fastparams.py) against typer's own."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import pytest
import typer

from dicomstation.cli import fastparams
from dicomstation.cli.deid_cmds import OPTION_NAMES, ProfileName
from dicomstation.dicomjson import KNOWN_TAGS, tag_hex


def test_known_tags_are_pydicoms() -> None:
    from pydicom.datadict import tag_for_keyword

    for keyword, tag in KNOWN_TAGS.items():
        assert tag == f"{tag_for_keyword(keyword):08X}", keyword
    assert tag_hex("PixelSpacing") == "00280030"  # not in the table: from pydicom's dictionary
    with pytest.raises(KeyError):
        tag_hex("NoSuchKeyword")


def test_deid_names_are_the_deidentifiers() -> None:
    from dicomstation.deid import Option, Profile

    assert {p.value for p in ProfileName} == {p.value for p in Profile}
    assert sorted(OPTION_NAMES) == sorted(o.value.replace("_", "-") for o in Option)


class _Colour(enum.StrEnum):
    RED = "red"
    GREEN = "green"


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def cmd(
        name: str,
        paths: Annotated[list[Path] | None, typer.Option("--path")] = None,
        count: Annotated[int, typer.Option("--count", min=1, max=5)] = 2,
        ratio: Annotated[float | None, typer.Option("--ratio")] = None,
        pair: Annotated[tuple[float, float] | None, typer.Option("--pair")] = None,
        flag: Annotated[bool, typer.Option("--flag")] = False,
        existing: Annotated[Path | None, typer.Option("--existing", exists=True)] = None,
        colour: Annotated[_Colour, typer.Option("--colour", case_sensitive=False)] = _Colour.RED,
        shades: Annotated[list[_Colour] | None, typer.Option("--shade")] = None,
    ) -> None:
        typer.echo(repr((name, paths, count, ratio, pair, flag, existing, colour, shades)))

    return app


_CASES = [
    ["a"],
    ["a", "--path", "x", "--path", "y/z", "--count", "5", "--ratio", "-1.5e3", "--flag"],
    ["a", "--pair", "1", "2.5"],
    ["a", "--count", "0"],  # below min: typer's own message
    ["a", "--count", "x"],  # not a number
    ["a", "--ratio", "abc"],
    ["a", "--existing", "/no/such/path"],  # typer's path check
    ["a", "--existing", "/"],
    [],  # missing argument
    ["a", "--colour", "green", "--shade", "red", "--shade", "green"],
    ["a", "--colour", "GREEN"],  # another spelling: typer's own (case-insensitive) rules
    ["a", "--colour", "blue"],  # not a member: typer's message
]


def _run(
    command: typer.core.TyperCommand, args: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[object, str, str]:
    try:
        command.main(args=args, prog_name="cmd")
    except SystemExit as exc:
        code: object = exc.code
    else:  # pragma: no cover - main always exits in standalone mode
        code = None
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("args", _CASES, ids=[" ".join(c) or "none" for c in _CASES])
def test_fast_coercion_gives_typers_values_and_messages(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    slow = _run(typer.main.get_command(_app()), args, capsys)
    command = typer.main.get_command(_app())
    fastparams.install(command)
    assert all(p._runtime_param is not None for p in command.params if p.name != "flag")
    assert _run(command, args, capsys) == slow
