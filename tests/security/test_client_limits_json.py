"""The streaming QIDO-RS JSON reader agrees with ``json.loads`` however the bytes arrive.

Hypothesis draws arrays of DICOM-JSON-like objects, formats them with any
indentation, and cuts the bytes anywhere (also inside a UTF-8 character).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dicomstation.errors import ProtocolError
from dicomstation.nodes.http_limits import JsonArrayStream

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
objects = st.lists(st.dictionaries(st.text(max_size=6), values, max_size=4), max_size=8)


def _cut(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    start = 0
    for point in [*points, len(data)]:
        yield data[start:point]
        start = point


def _stream(chunks: Iterator[bytes], limit: int = 1 << 20) -> JsonArrayStream:
    response = httpx.Response(200, content=chunks)
    return JsonArrayStream(response, limit, server="s", operation="QIDO-RS")


@settings(max_examples=100, deadline=None)
@given(objects, st.sampled_from([None, 0, 2]), st.lists(st.integers(min_value=0), max_size=12))
def test_any_chunking_gives_what_json_loads_gives(
    data: list[dict[str, Any]], indent: int | None, cuts: list[int]
) -> None:
    raw = json.dumps(data, indent=indent, ensure_ascii=False).encode()
    assert list(_stream(_cut(raw, cuts))) == json.loads(raw)


@settings(max_examples=100, deadline=None)
@given(objects.filter(bool), st.integers(min_value=1))
def test_a_cut_answer_is_a_protocol_error(data: list[dict[str, Any]], where: int) -> None:
    raw = json.dumps(data).encode()
    cut = raw[: where % (len(raw) - 1) + 1]  # anything short of the closing bracket
    with pytest.raises(ProtocolError, match="QIDO-RS on s"):
        list(_stream(iter([cut])))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[1, 2]", "not a list of DICOM JSON objects"),
        (b'{"a": 1}', "not an array"),
        (b"[{}] []", "data after the array"),
        (b"[{} {}]", "expected , or ]"),
        (b"[{]", "malformed JSON"),
        (b"[\xff]", "not UTF-8"),
    ],
)
def test_malformed_answers_are_named(raw: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        list(_stream(iter([raw])))


def test_empty_answers_are_no_results() -> None:
    assert list(_stream(iter([b""]))) == []
    assert list(_stream(iter([b"  \n"]))) == []


def test_reading_stops_early_and_the_answer_is_closed() -> None:
    produced = []

    def endless() -> Iterator[bytes]:
        yield b"["
        for n in range(10**9):
            produced.append(n)
            yield (b"," if n else b"") + json.dumps({"n": n}).encode()

    stream = _stream(endless())
    taken = [obj for _, obj in zip(range(5), stream, strict=False)]
    stream.close()
    assert taken == [{"n": n} for n in range(5)]
    assert len(produced) < 10 and stream.response.is_closed


def test_the_byte_cap_holds_for_one_endless_string() -> None:
    def endless() -> Iterator[bytes]:
        yield b'[{"a": "'
        while True:
            yield b"x" * 65536

    with pytest.raises(ProtocolError, match="max_qido_bytes"):
        list(_stream(endless(), limit=4 << 20))
