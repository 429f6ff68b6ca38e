"""``dicomstation deid``: de-identify files (PS3.15 Annex E) into a folder or the database.

Without ``--to`` (or with ``--dry-run``) nothing is written: the report shows, per attribute,
what would change. The project key comes from ``--key-file`` or the settings' ``[deid] key``
(``dicomstation deid-key --generate`` makes one); it is never printed.
"""

from __future__ import annotations

import enum
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dicomstation.cli.common import (
    DbOption,
    ExitCode,
    JsonOption,
    console,
    err_console,
    handle_errors,
    open_database,
    print_json,
)
from dicomstation.errors import ConfigError

if TYPE_CHECKING:  # dicomstation.deid (pydicom, highdicom) is imported when a command runs
    from rich.table import Table

    from dicomstation.config import Secret
    from dicomstation.deid import DeidReport, Option

__all__ = ["OPTION_NAMES", "ProfileName", "register"]


class ProfileName(enum.StrEnum):
    """``--profile``: the values of :class:`dicomstation.deid.Profile` (a test checks)."""

    BASIC = "basic"


#: ``--option`` names: the values of :class:`dicomstation.deid.Option` with dashes (a test
#: checks), listed here so that ``deid --help`` does not import the de-identifier.
OPTION_NAMES = (
    "clean-descriptors",
    "clean-graphics",
    "clean-structured-content",
    "retain-device-identity",
    "retain-institution-identity",
    "retain-longitudinal-full-dates",
    "retain-longitudinal-modified-dates",
    "retain-patient-characteristics",
    "retain-safe-private",
    "retain-uids",
)


def _key(key_file: Path | None) -> Secret:
    from dicomstation.config import Secret
    from dicomstation.settings import Settings, settings_path

    if key_file is not None:
        try:
            return Secret(key_file.read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise ConfigError(f"cannot read key file {key_file}: {exc.strerror}") from None
    key = Settings.load().deid_key
    if not key:
        raise ConfigError(
            f"no de-identification key: run 'dicomstation deid-key --generate' (stores it in "
            f"{settings_path()}) or pass --key-file"
        )
    return key


def _check_inputs(inputs: list[Path]) -> None:
    """Refuse inputs that do not exist, naming them, before anything is read or written."""
    missing = [str(path) for path in inputs if not path.exists()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ConfigError(f"no such file or folder: {missing[0]}{more}")


def _options(names: list[str]) -> frozenset[Option]:
    from dicomstation.deid.outgoing import parse_options

    return parse_options(names, "--option")


def _report_table(report: DeidReport, show_values: bool) -> Table:
    from rich.table import Table

    table = Table(title="De-identification, per attribute")
    for title in ("Attribute", "Action", "Occurrences", "Example"):
        table.add_column(title, overflow="fold")
    for (path, action), count in sorted(report.actions.items()):
        before, after = report.examples[(path, action)]
        shown = after or ("(empty)" if action == "Z" else "(removed)")
        example = f"{before} -> {shown}" if show_values else shown
        table.add_row(path, action, str(count), example)
    return table


def _as_json(report: DeidReport, show_values: bool) -> dict[str, Any]:
    rows = []
    for (path, action), count in sorted(report.actions.items()):
        before, after = report.examples[(path, action)]
        row: dict[str, Any] = {"attribute": path, "action": action, "occurrences": count}
        row["after"] = after
        if show_values:
            row["before"] = before
        rows.append(row)
    return {
        "written": [{"input": i, "output": o} for i, o in report.written],
        "refused": report.refused,
        "attributes": rows,
    }


def _print(report: DeidReport, as_json: bool, show_values: bool, wrote: str) -> None:
    if as_json:
        print_json(_as_json(report, show_values))
    else:
        console.print(_report_table(report, show_values))
        console.print(f"{len(report.written)} instance(s) {wrote}; {len(report.refused)} refused")
    from rich.text import Text

    for path, reason in sorted(report.refused.items()):
        err_console.print(Text(f"refused: {reason}" if path in reason else f"{path}: {reason}"))


def register(app: typer.Typer) -> None:
    """Add ``deid`` and ``deid-key`` to the app."""

    @app.command("deid")
    @handle_errors
    def deid_cmd(
        inputs: Annotated[list[Path], typer.Argument(help="Files and folders to de-identify.")],
        to: Annotated[
            str | None, typer.Option("--to", help="'db' (the local database) or a folder.")
        ] = None,
        profile: Annotated[ProfileName, typer.Option("--profile")] = ProfileName.BASIC,
        option: Annotated[
            list[str] | None,
            typer.Option("--option", help=f"Annex E option: {', '.join(OPTION_NAMES)}."),
        ] = None,
        keep: Annotated[
            list[str] | None, typer.Option("--keep", help="Keep an attribute (keyword or tag).")
        ] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Report only.")] = False,
        key_file: Annotated[Path | None, typer.Option("--key-file")] = None,
        pixel_rules: Annotated[
            Path | None,
            typer.Option(
                "--pixel-rules", help="TOML rules blanking burned-in text ('deid': built-in set)."
            ),
        ] = None,
        allow_burned_in: Annotated[bool, typer.Option("--allow-burned-in")] = False,
        ledger: Annotated[
            Path | None, typer.Option("--ledger", help="Record original -> pseudonym (SQLite).")
        ] = None,
        show_values: Annotated[
            bool, typer.Option("--show-values", help="Show original values in the report.")
        ] = False,
        db: DbOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """De-identify with the PS3.15 Annex E Basic Profile (and options); report per attribute."""
        _check_inputs(inputs)  # the cheap checks first: no pydicom for a mistyped path or key
        key = _key(key_file)
        import dicomstation.deid.step  # noqa: F401  (registers the "deid" pipeline step kind)
        from dicomstation.deid import DeidConfig, Ledger, Profile, load_pixel_rules, parse_keep, run

        config = DeidConfig(
            key=key,
            options=_options(option or []),
            keep=parse_keep(keep or []),
            pixel_rules=load_pixel_rules(pixel_rules) if pixel_rules else (),
            allow_burned_in=allow_burned_in,
            profile=Profile(profile.value),
        )
        target = None if dry_run else to
        book = Ledger(ledger) if ledger and target else None
        try:
            if target is not None and target.lower() == "db":
                database = open_database(db)
                try:
                    report = run(inputs, config, to_database=database, ledger=book)
                finally:
                    database.close()
                wrote = f"written to the database {database.root}"
            elif target is not None:
                report = run(inputs, config, to_folder=Path(target), ledger=book)
                wrote = f"written under {target}"
            else:
                report = run(inputs, config)
                wrote = "would be written (dry run)"
        finally:
            if book is not None:
                book.close()
        _print(report, as_json, show_values, wrote)
        if report.refused:
            code = ExitCode.PARTLY_FAILED if report.written else ExitCode.NOTHING_DONE
            raise typer.Exit(int(code))

    @app.command("deid-key")
    @handle_errors
    def deid_key_cmd(
        generate: Annotated[
            bool, typer.Option("--generate", help="Make a new random key and store it.")
        ] = False,
        force: Annotated[bool, typer.Option("--force", help="Replace an existing key.")] = False,
    ) -> None:
        """Show whether a de-identification key is set; ``--generate`` stores a new one."""
        from dicomstation.config import Secret
        from dicomstation.settings import Settings, settings_path

        settings = Settings.load()
        if not generate:
            state = "set" if settings.deid_key else "not set"
            typer.echo(f"de-identification key: {state} ({settings_path()})")  # no rich: a line
            return
        if settings.deid_key and not force:
            raise ConfigError(
                "a de-identification key is already set; replacing it changes every pseudonym "
                "(use --force)"
            )
        from dataclasses import replace

        path = replace(settings, deid_key=Secret(secrets.token_urlsafe(32))).save()
        console.print(f"new de-identification key stored in {path} (not shown)")
