"""De-identification: PS3.15 Annex E Basic Profile and options, keyed pseudonyms, burned-in text.

::

    config = DeidConfig(key=Secret("project key"), options=frozenset({Option.RETAIN_UIDS}))
    result = deidentify(pydicom.dcmread(path), config)      # one dataset, in place
    report = run(["in/"], config, to_folder=Path("out"))    # files; no destination = dry run

* The table is PS3.15 edition :data:`EDITION` (``annex_e_2026d.json``, generated from the
  standard's source by :mod:`dicomstation.deid.tablegen`, never typed by hand).
* UIDs (``2.25.``), Patient ID/Name pseudonyms and per-patient date offsets are HMAC-SHA256
  of the original under the project key: the same on every worker, machine and rerun.
* Instances that may carry burned-in text are refused unless a :class:`PixelRule` blanks it
  (your own TOML rules, or :func:`builtin_pixel_rules` converted from deid's CTP-derived list).
* Every output records PatientIdentityRemoved, DeidentificationMethod and the CID 7050 codes
  of what was applied in DeidentificationMethodCodeSequence.

The names are imported on first use (module ``__getattr__``): ``import dicomstation.deid.table``
or the ``deid`` command checking its arguments does not import the engine (pydicom) with them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dicomstation.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from dicomstation.deid.config import Change, DeidConfig, Profile, parse_keep
    from dicomstation.deid.engine import DeidResult, Mapping, deidentify
    from dicomstation.deid.files import DeidReport, deidentify_file, encode, run, write_into
    from dicomstation.deid.keys import Pseudonyms
    from dicomstation.deid.ledger import Ledger
    from dicomstation.deid.pixels import (
        PixelRule,
        builtin_pixel_rules,
        burned_in_reason,
        load_pixel_rules,
    )
    from dicomstation.deid.table import EDITION, Action, Option, profile_table

#: public name -> the module of this package that defines it
_EXPORTS: dict[str, str] = {
    "Action": "table",
    "Change": "config",
    "DeidConfig": "config",
    "DeidReport": "files",
    "DeidResult": "engine",
    "EDITION": "table",
    "Ledger": "ledger",
    "Mapping": "engine",
    "Option": "table",
    "PixelRule": "pixels",
    "Profile": "config",
    "Pseudonyms": "keys",
    "builtin_pixel_rules": "pixels",
    "burned_in_reason": "pixels",
    "deidentify": "engine",
    "deidentify_file": "files",
    "encode": "files",
    "load_pixel_rules": "pixels",
    "parse_keep": "config",
    "profile_table": "table",
    "run": "files",
    "write_into": "files",
}


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)


__all__ = [
    "EDITION",
    "Action",
    "Change",
    "DeidConfig",
    "DeidReport",
    "DeidResult",
    "Ledger",
    "Mapping",
    "Option",
    "PixelRule",
    "Profile",
    "Pseudonyms",
    "builtin_pixel_rules",
    "burned_in_reason",
    "deidentify",
    "deidentify_file",
    "encode",
    "load_pixel_rules",
    "parse_keep",
    "profile_table",
    "run",
    "write_into",
]
