"""The ``deid`` pipeline step: de-identify the item's series into the task's database.

Pipeline file::

    [[steps]]
    kind = "deid"
    key_file = "/secure/project.key"      # the project key (never in the pipeline file)
    # or: settings_file = "/home/me/.config/dicomstation/settings.toml"  ([deid] key there)
    options = ["retain-uids"]             # Annex E options (optional)
    keep = ["PatientAge"]                 # attributes kept as they are (optional)
    pixel_rules = "/site/us-rules.toml"   # opt-in burned-in text rules (optional)

    [[steps]]
    kind = "send"
    server = "cloud"
    what = "deid"                         # send the de-identified series

The step reads the series a ``fetch`` step brought (else the item's series, else its whole
study), writes the de-identified instances into the task's database and returns the new
series UIDs. Pseudonyms are HMACs of the originals, so reruns and other workers produce the
same UIDs (the database skips what it already has). An instance that cannot be de-identified
safely fails the step, naming the file: nothing of that item is sent.

Importing this module registers the step kind (``register_step("deid", ...)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from dicomstation.config import Secret
from dicomstation.deid.config import DeidConfig, parse_keep
from dicomstation.deid.files import run
from dicomstation.deid.outgoing import NO_KEY
from dicomstation.deid.pixels import load_pixel_rules
from dicomstation.deid.table import Option
from dicomstation.errors import ConfigError, DeidentificationError
from dicomstation.pipeline.step import StepContext, register_step
from dicomstation.pipeline.table_check import check_value
from dicomstation.settings import Settings

__all__ = ["DeidStep"]

#: The step's fields and their TOML types.
_TYPES: dict[str, Any] = {
    "key_file": str,
    "settings_file": str,
    "options": list[str],
    "keep": list[str],
    "pixel_rules": str,
    "allow_burned_in": bool,
}
_FIELDS = frozenset(_TYPES)


@dataclass(frozen=True)
class DeidStep:
    """De-identify the item (PS3.15 Annex E Basic Profile and options)."""

    kind: ClassVar[str] = "deid"
    memory_only: ClassVar[bool] = False
    name: str
    key_file: str = ""
    options: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()
    pixel_rules: str = ""
    allow_burned_in: bool = False
    settings_file: str = ""
    _options: frozenset[Option] = field(default=frozenset(), repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            chosen = frozenset(Option(o.replace("-", "_")) for o in self.options)
        except ValueError as exc:
            raise ConfigError(f"step {self.name!r}: {exc}") from None
        object.__setattr__(self, "_options", chosen)
        parse_keep(list(self.keep))

    def _key(self, ctx: StepContext) -> Secret:
        if self.key_file:
            try:
                return Secret(Path(self.key_file).read_text(encoding="utf-8").strip())
            except OSError as exc:
                raise ConfigError(f"step {self.name!r}: key file {self.key_file}: {exc}") from None
        if self.settings_file:  # the settings' [deid] key, read now (web UI send jobs)
            stored = Settings.load(Path(self.settings_file)).deid_key
            if not stored:
                raise ConfigError(f"step {self.name!r}: {NO_KEY} ({self.settings_file})")
            return stored
        key = getattr(ctx, "deid_key", None)  # when the driver passes the settings' key
        if isinstance(key, Secret) and key:
            return key
        raise ConfigError(f"step {self.name!r}: no de-identification key (set key_file)")

    def config(self, ctx: StepContext) -> DeidConfig:
        """The run's configuration (key read now, never stored in the step)."""
        return DeidConfig(
            key=self._key(ctx),
            options=self._options,
            keep=parse_keep(list(self.keep)),
            pixel_rules=load_pixel_rules(Path(self.pixel_rules)) if self.pixel_rules else (),
            allow_burned_in=self.allow_burned_in,
        )

    def _inputs(self, ctx: StepContext) -> list[Path]:
        series = ctx.outputs_of("fetch") or ctx.item.series_uids
        if series:
            return [f for uid in series for f in ctx.db.series_files(uid)]
        return ctx.db.study_files(ctx.item.study_uid)

    def run(self, ctx: StepContext) -> tuple[str, ...]:
        """De-identify into ``ctx.db``; the outputs are the new series UIDs."""
        config = self.config(ctx)
        report = run(self._inputs(ctx), config, to_database=ctx.db)
        if report.refused:
            path, reason = sorted(report.refused.items())[0]
            more = f" (and {len(report.refused) - 1} more)" if len(report.refused) > 1 else ""
            # a refusal's text already names its file (the CLI prints it as it is)
            raise DeidentificationError(path, f"{reason.removeprefix(f'{path}: ')}{more}")
        series: list[str] = []
        for _, out in report.written:
            uid = Path(out).parent.name
            if uid not in series:
                series.append(uid)
        return tuple(series)

    def restore(self, ctx: StepContext, outputs: tuple[str, ...]) -> None:
        """Nothing to restore: the de-identified series are in the database."""

    def to_dict(self) -> dict[str, Any]:
        """Pipeline-file table (the key file's path, never the key)."""
        table: dict[str, Any] = {"kind": self.kind, "name": self.name}
        for key in sorted(_FIELDS):
            value = getattr(self, key)
            if value:
                table[key] = list(value) if isinstance(value, tuple) else value
        return table


def _factory(name: str, table: Mapping[str, Any]) -> DeidStep:
    unknown = set(table) - _FIELDS
    if unknown:
        raise ConfigError(f"step {name!r}: unknown field(s) {sorted(unknown)}")
    for key, kind in _TYPES.items():
        if key in table:
            check_value(table[key], kind, f"step {name!r}.{key}")
    return DeidStep(
        name,
        key_file=str(table.get("key_file", "")),
        options=tuple(str(o) for o in table.get("options", ())),
        keep=tuple(str(k) for k in table.get("keep", ())),
        pixel_rules=str(table.get("pixel_rules", "")),
        allow_burned_in=bool(table.get("allow_burned_in", False)),
        settings_file=str(table.get("settings_file", "")),
    )


register_step("deid", _factory)
