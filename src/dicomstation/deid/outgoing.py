"""De-identify files on their way out (``send --deid``, the web UI's send toggle).

::

    config = outgoing_config(Settings.load().deid_key, ["retain-uids"])
    with deidentified(files, config, staging) as (out, refused):
        node.store(out)              # the originals never leave

The de-identified copies live in a private staging folder (the database's ``incoming/``)
for the length of the ``with`` block and are removed afterwards. UIDs are HMACs under the
project key, so a resend stores the same instances again (the peer skips or replaces them).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from dicomstation.config import Secret
from dicomstation.deid.config import DeidConfig
from dicomstation.deid.files import run
from dicomstation.deid.table import Option
from dicomstation.errors import ConfigError

__all__ = ["OPTION_NAMES", "deidentified", "outgoing_config", "parse_options"]

#: ``--deid-option`` names (``retain-uids``...) -> :class:`Option`.
OPTION_NAMES = {o.value.replace("_", "-"): o for o in Option}

NO_KEY = "no de-identification key is set: run 'dicomstation deid-key --generate'"


def parse_options(names: Iterable[str], flag: str = "--deid-option") -> frozenset[Option]:
    """Annex E options from their names (``retain-uids``, ``clean_descriptors``...).

    Raises
    ------
    ConfigError
        For an unknown name (the known ones are listed).
    """
    chosen: set[Option] = set()
    for name in names:
        option = OPTION_NAMES.get(name.strip().lower().replace("_", "-"))
        if option is None:
            known = ", ".join(sorted(OPTION_NAMES))
            raise ConfigError(f"{flag} {name!r}: unknown (known: {known})")
        chosen.add(option)
    return frozenset(chosen)


def outgoing_config(key: Secret, option_names: Iterable[str] = ()) -> DeidConfig:
    """The configuration for de-identifying before a send (the settings' project key).

    Raises
    ------
    ConfigError
        If no key is set, an option is unknown or cannot be honoured.
    """
    if not key:
        raise ConfigError(NO_KEY)
    return DeidConfig(key=key, options=parse_options(option_names))


@contextmanager
def deidentified(
    files: Sequence[Path], config: DeidConfig, staging: Path
) -> Iterator[tuple[list[Path], dict[str, str]]]:
    """De-identified copies of ``files`` under ``staging`` while the block runs.

    Yields
    ------
    (list of Path, dict)
        The de-identified files to send, and input file -> reason for each refused one
        (burned-in text, not DICOM...). ``staging`` is removed afterwards.
    """
    try:
        report = run(files, config, to_folder=staging)
        yield [Path(out) for _, out in report.written], dict(report.refused)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
