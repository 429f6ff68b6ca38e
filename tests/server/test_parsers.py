"""Property tests of the small parsers that take untrusted input: UIDs, Accept, frame lists."""

from __future__ import annotations

import pytest
from fastapi import HTTPException
from hypothesis import given
from hypothesis import strategies as st

from dicomstation.server.accept import parse_accept
from dicomstation.server.frames import parse_frame_list
from dicomstation.server.render import parse_window
from dicomstation.server.uids import check_uid, is_uid
from dicomstation.server.wado import choose_syntax

components = st.one_of(st.just("0"), st.integers(1, 10**12).map(str))


@given(st.lists(components, min_size=1, max_size=8))
def test_generated_uids_are_valid_when_short_enough(parts: list[str]) -> None:
    uid = ".".join(parts)
    assert is_uid(uid) == (len(uid) <= 64)


@given(st.text(max_size=80))
def test_uid_check_never_crashes_and_rejects_non_digits(text: str) -> None:
    valid = is_uid(text)
    if any(c not in "0123456789." for c in text) or not text:
        assert not valid
    if not valid:
        with pytest.raises(HTTPException) as info:
            check_uid(text)
        assert info.value.status_code == 400


@pytest.mark.parametrize("bad", ["1..2", ".1", "1.", "1.02", "01", "1.2.a", "", "1" * 65])
def test_bad_uids(bad: str) -> None:
    assert not is_uid(bad)


@given(st.text(max_size=200))
def test_accept_parser_never_crashes(header: str) -> None:
    for item in parse_accept(header, "application/dicom"):
        assert isinstance(item.media_type, str)


def test_accept_orders_by_quality_and_reads_transfer_syntax() -> None:
    found = parse_accept(
        'multipart/related; type="application/dicom"; '
        "transfer-syntax=1.2.840.10008.1.2.1; q=0.5, "
        'multipart/related; type="application/dicom"; transfer-syntax=*',
        "application/dicom",
    )
    assert [a.transfer_syntax for a in found] == ["*", "1.2.840.10008.1.2.1"]
    assert choose_syntax(found, {"1.2.840.10008.1.2.4.90"}) is None
    explicit = parse_accept(
        'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1',
        "application/dicom",
    )
    assert choose_syntax(explicit, {"1.2.840.10008.1.2.4.90"}) == "1.2.840.10008.1.2.1"
    with pytest.raises(HTTPException) as info:
        choose_syntax(parse_accept("application/json", "application/dicom"), set())
    assert info.value.status_code == 406


@given(st.text(max_size=30), st.integers(1, 50))
def test_frame_lists(text: str, count: int) -> None:
    try:
        numbers = parse_frame_list(text, count)
    except HTTPException as exc:
        assert exc.status_code in (400, 404)
    else:
        assert all(1 <= n <= count for n in numbers)


@pytest.mark.parametrize("bad", ["1,nan", "nan,5", "1,inf", "1,0", "x", "²,5"])
def test_bad_windows(bad: str) -> None:
    with pytest.raises(HTTPException):
        parse_window(bad)
    with pytest.raises(HTTPException):
        parse_frame_list("²", 3)


@given(st.text(max_size=30))
def test_window_parser(text: str) -> None:
    try:
        window = parse_window(text)
    except HTTPException as exc:
        assert exc.status_code == 400
    else:
        assert window is None or window[1] > 0
