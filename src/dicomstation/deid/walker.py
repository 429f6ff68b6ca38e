"""Apply the profile to every attribute of a dataset, nested sequences included.

One :class:`Walker` handles one instance. For each attribute it looks up the Table E.1-1 row
(private tags: the ``PRIVATE`` row), resolves the action under the enabled options
(:func:`~dicomstation.deid.table.resolve`) and applies it. Attributes the table does not list are
kept, with three extensions that close gaps of a literal reading:

* a UID that is not registered in PS3.6 is replaced like ``U`` (an instance UID outside the
  table would otherwise survive and break referential integrity);
* a DA/DT value is handled like a ``X/D`` date (dummy, shifted, or kept by the date options);
* a kept text value has every identifying string of the instance masked (``*``).

Sequences that are kept, cleaned or given a dummy keep their items, and the profile is applied
inside them; Content Sequence items are also matched against Table E.3.4-1 by concept name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from dicomstation.deid.config import Change, DeidConfig
from dicomstation.deid.iod import narrow
from dicomstation.deid.keys import Pseudonyms
from dicomstation.deid.table import Action, ProfileTable, resolve
from dicomstation.deid.values import (
    DATE_VRS,
    TEXT_VRS,
    dummy_value,
    identifying_pattern,
    is_registered_uid,
    scrub_text,
    shift_date,
    shift_datetime,
)

__all__ = ["INERT_VRS", "Walker", "maps_unlisted_uid", "raw_vr"]

PATIENT_NAME = 0x00100010
PATIENT_ID = 0x00100020
CONTENT_SEQUENCE = 0x0040A730
_DATE_ROW = (
    "X/D",
    {"retain_longitudinal_full_dates": "K", "retain_longitudinal_modified_dates": "C"},
)
_ITEM = re.compile(r"\[\d+\]")
_VALUE_OF_TYPE = {
    "TEXT": 0x0040A160,
    "DATETIME": 0x0040A120,
    "DATE": 0x0040A121,
    "TIME": 0x0040A122,
    "PNAME": 0x0040A123,
    "UIDREF": 0x0040A124,
}


#: Unlisted UID attributes that name a class, syntax or scheme, not an instance: never mapped.
_NOT_INSTANCE_UIDS = ("ClassUID", "SyntaxUID", "SchemeUID", "ResourceUID", "OrganizationUID")


#: VRs whose values are kept, undecoded, when the table does not list the attribute.
INERT_VRS = frozenset(
    {"DS", "IS", "FL", "FD", "SL", "SS", "UL", "US", "SV", "UV", "AT", "CS", "TM", "AS"}
    | {"OB", "OW", "OF", "OD", "OL", "OV"}
)


def raw_vr(ds: Dataset, tag: BaseTag) -> str:
    """The VR of ``tag`` in ``ds`` without decoding its value ('' when unknown)."""
    vr = ds.get_item(tag).VR
    if vr:
        return str(vr)
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return ""


def maps_unlisted_uid(keyword: str) -> bool:
    """True when an unlisted UID attribute holds an instance UID (so it is replaced like U)."""
    return not keyword.endswith(_NOT_INSTANCE_UIDS)


def _render(elem: DataElement) -> str:
    if elem.VR == "SQ":
        return f"<{len(elem.value)} item(s)>"
    if elem.VR in ("OB", "OW", "OD", "OF", "OL", "OV", "UN"):
        return f"<{len(elem.value or b'')} bytes>"
    text = str(elem.value) if elem.value is not None else ""
    return text if len(text) <= 64 else text[:61] + "..."


def _keyword(elem: DataElement) -> str:
    return elem.keyword or f"({elem.tag.group:04X},{elem.tag.element:04X})"


@dataclass
class Walker:
    """De-identify one instance in place.

    Parameters
    ----------
    config : DeidConfig
    table : ProfileTable
    pseudonyms : Pseudonyms
    identity : str
        The patient identity pseudonyms derive from.
    identifying : frozenset of str
        Identifying strings of the original instance (masked in kept text).
    types : dict, optional
        Attribute types of the instance's IOD (:func:`~dicomstation.deid.iod.attribute_types`).
    """

    config: DeidConfig
    table: ProfileTable
    pseudonyms: Pseudonyms
    identity: str
    identifying: frozenset[str]
    types: dict[tuple[str, ...], str] | None = None
    changes: list[Change] = field(default_factory=list)
    _pattern: re.Pattern[str] | None = None

    @property
    def offset(self) -> int:
        """This patient's date shift in days."""
        return self.pseudonyms.date_offset_days(self.identity)

    def dataset(self, ds: Dataset, path: str = "") -> None:
        """Apply the profile to every element of ``ds`` (recursively)."""
        for tag in list(ds.keys()):
            if tag.group % 2 and int(tag) not in self.config.keep:
                self._private(ds, tag, path)
            elif tag.group & 0xFF00 in (0x5000, 0x6000) and self._overlay_removed(ds, tag):
                self.element(ds, ds[tag], path, Action.REMOVE)
            elif raw_vr(ds, tag) not in INERT_VRS or self.table.rule_for(int(tag)) is not None:
                self.element(ds, ds[tag], path)
            # else: a number, code or binary value the table does not list: kept, not decoded

    def _private(self, ds: Dataset, tag: BaseTag, path: str) -> None:
        """Remove a private element without decoding its value (Retain Safe Private is off)."""
        raw = ds.get_item(tag)
        length = len(raw.value or b"") if isinstance(raw.value, bytes) else 0
        del ds[tag]
        keyword = f"({tag.group:04X},{tag.element:04X})"
        before = f"<{length} bytes>" if length else "<private>"
        self.changes.append(Change(f"{path}{keyword}", int(tag), keyword, "X", before, ""))

    def _record(self, elem: DataElement, path: str, action: Action, before: str) -> None:
        if elem.VR == "SQ" and action not in (Action.REMOVE, Action.ZERO):
            return  # items kept: what changed inside is recorded item by item
        after = "" if action is Action.REMOVE else _render(elem)
        if before != after or action is not Action.KEEP:
            full = f"{path}{_keyword(elem)}"
            self.changes.append(Change(full, int(elem.tag), _keyword(elem), action, before, after))

    def action_for(self, elem: DataElement, path: str) -> Action | None:
        """The action for ``elem`` at ``path``; None when the table does not list it."""
        if int(elem.tag) in self.config.keep:
            return Action.KEEP
        rule = self.table.rule_for(int(elem.tag))
        row = (rule.basic, rule.options) if rule is not None else None
        if row is None and elem.VR in DATE_VRS:
            row = _DATE_ROW
        if row is None:
            return None
        keys = (*_ITEM.sub("", path).split(".")[:-1], elem.keyword)
        return resolve(row[0], row[1], self.config.options, lambda c: narrow(c, keys, self.types))

    def _overlay_removed(self, ds: Dataset, tag: BaseTag) -> bool:
        """True when the overlay plane (or curve) of ``tag``'s group goes with its data.

        An overlay plane without its data is not valid, so its other attributes go with it.
        Clean Graphics asks for Overlay Data and Curve Data to be cleaned (``C``): they are
        bitmaps and samples that may draw text no table lists, and nothing can check them for
        it, so cleaning them is removing them (with their comments and labels). Graphic
        annotations are cleaned in place: their text has every identifying string masked.
        """
        data = (tag.group << 16) | 0x3000
        if data in self.config.keep:
            return False
        rule = self.table.rule_for(data)
        if rule is None:
            return False
        action = resolve(rule.basic, rule.options, self.config.options)
        return action in (Action.REMOVE, Action.CLEAN)

    def element(
        self, ds: Dataset, elem: DataElement, path: str, action: Action | None = None
    ) -> None:
        """Apply the action for one element of ``ds`` (``action`` overrides the table)."""
        if int(elem.tag) in self.config.keep:
            return
        action = action or self.action_for(elem, path)
        before = _render(elem)
        if action is None:
            if self._unlisted(elem, path):
                self._record(elem, path, Action.CLEAN, before)
            return
        if action is Action.REMOVE:
            del ds[elem.tag]
        else:
            self._apply(action, elem, path)
        self._record(elem, path, action, before)

    def _unlisted(self, elem: DataElement, path: str) -> bool:
        """Handle an element the table does not list; True when its value changed."""
        if elem.VR == "SQ":
            self._items(elem, path)
            return False
        if elem.VR == "UI":
            return maps_unlisted_uid(elem.keyword) and self._map_uids(elem)
        if elem.VR in TEXT_VRS and elem.value:
            return self._scrub(elem)
        return False

    def _apply(self, action: Action, elem: DataElement, path: str) -> None:
        handler: dict[Action, Callable[[DataElement, str], None]] = {
            Action.ZERO: self._zero,
            Action.DUMMY: self._dummy,
            Action.UID: self._uid,
            Action.CLEAN: self._clean,
            Action.KEEP: self._keep,
        }
        handler[action](elem, path)

    def _pseudonym(self, elem: DataElement, path: str) -> bool:
        """Patient's Name and Patient ID (top level) get their keyed pseudonyms."""
        if path:
            return False
        if int(elem.tag) == PATIENT_NAME:
            elem.value = self.pseudonyms.patient_name(self.identity)
        elif int(elem.tag) == PATIENT_ID:
            elem.value = self.pseudonyms.patient_id(self.identity)
        else:
            return False
        return True

    def _zero(self, elem: DataElement, path: str) -> None:
        if self._pseudonym(elem, path):
            return
        if elem.VR == "SQ":
            elem.value = Sequence()
        else:
            elem.value = None

    def _dummy(self, elem: DataElement, path: str) -> None:
        if self._pseudonym(elem, path):
            return
        if int(elem.tag) == CONTENT_SEQUENCE:
            self._content(elem, path)
        elif elem.VR == "SQ":
            self._items(elem, path)
        elif elem.VR == "UI":
            self._map_uids(elem)
        else:
            elem.value = dummy_value(elem.VR)

    def _uid(self, elem: DataElement, path: str) -> None:
        if elem.VR == "SQ":
            self._items(elem, path)
        elif elem.VR == "UI":
            self._map_uids(elem)
        else:
            self._dummy(elem, path)

    def _keep(self, elem: DataElement, path: str) -> None:
        if elem.VR == "SQ":
            self._items(elem, path)

    def _clean(self, elem: DataElement, path: str) -> None:
        if int(elem.tag) == CONTENT_SEQUENCE:
            self._content(elem, path)
        elif elem.VR == "SQ":
            self._items(elem, path)
        elif elem.VR == "DA" and elem.value:
            elem.value = self._each(elem, lambda v: shift_date(v, self.offset))
        elif elem.VR == "DT" and elem.value:
            elem.value = self._each(elem, lambda v: shift_datetime(v, self.offset))
        elif elem.VR in TEXT_VRS:
            self._scrub(elem)
        elif elem.VR in ("AE", "UI"):
            self._dummy(elem, path)
        # TM and other VRs stay: dates move by whole days, so times and ages are unchanged.

    @staticmethod
    def _each(elem: DataElement, func: Callable[[str], str]) -> object:
        if isinstance(elem.value, MultiValue | list):
            return [func(str(v)) for v in elem.value]
        return func(str(elem.value))

    def _map_uids(self, elem: DataElement) -> bool:
        if not elem.value:
            return False

        def mapped(value: str) -> str:
            return value if is_registered_uid(value) else self.pseudonyms.uid(value)

        new = self._each(elem, mapped)
        changed = new != (list(elem.value) if isinstance(elem.value, MultiValue) else elem.value)
        elem.value = new
        return bool(changed)

    def _scrub(self, elem: DataElement) -> bool:
        if not elem.value or not self.identifying:
            return False
        if self._pattern is None:
            self._pattern = identifying_pattern(self.identifying)
        old = [str(v) for v in elem.value] if isinstance(elem.value, MultiValue) else None
        if old is not None:
            new_values = [scrub_text(v, self._pattern) for v in old]
            elem.value = new_values
            return new_values != old
        text = str(elem.value)
        new = scrub_text(text, self._pattern)
        elem.value = new
        return new != text

    def _items(self, elem: DataElement, path: str) -> None:
        for i, item in enumerate(elem.value or []):
            self.dataset(item, f"{path}{_keyword(elem)}[{i}].")

    def _content(self, elem: DataElement, path: str) -> None:
        """Content Sequence: Table E.3.4-1 by concept name, then the profile inside."""
        kept = Sequence()
        for i, item in enumerate(elem.value or []):
            where = f"{path}{_keyword(elem)}[{i}]."
            action = self._content_action(item)
            if action is Action.REMOVE:
                self.changes.append(Change(where[:-1], int(elem.tag), "ContentItem", "X", "", ""))
                continue
            if action is Action.DUMMY:
                self._content_dummy(item)
            self.dataset(item, where)
            kept.append(item)
        elem.value = kept

    def _content_action(self, item: Dataset) -> Action | None:
        names = item.get("ConceptNameCodeSequence") or []
        if not names:
            return None
        code = names[0].get("CodeValue") or names[0].get("LongCodeValue") or ""
        scheme = names[0].get("CodingSchemeDesignator", "")
        rule = self.table.content_rule(str(code), str(scheme), str(item.get("ValueType", "")))
        if rule is None:
            return None
        return resolve(rule.basic, rule.options, self.config.options)

    def _content_dummy(self, item: Dataset) -> None:
        tag = _VALUE_OF_TYPE.get(str(item.get("ValueType", "")))
        if tag is not None and tag in item and tag != 0x0040A124:
            elem = item[tag]
            elem.value = dummy_value(elem.VR)
