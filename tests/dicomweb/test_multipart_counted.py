"""Parts located by their Content-Length (``trust_length``): same bodies, lies refused.

WADO-RS answers announce each part's length; with ``trust_length=True`` the
parser hands those bytes on without searching them for the boundary, and
requires the delimiter exactly where the length says. Any chunking gives the
same bodies as the searching parser; a length that is too short or too long,
or a message cut inside a counted part, is a ProtocolError, never a wrong part.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dicomstation.errors import ProtocolError
from dicomstation.nodes.multipart import iter_multipart, iter_parts

BOUNDARY = "b0undary-XyZ"


def encode(parts: list[bytes], lengths: list[int] | None = None) -> bytes:
    told = lengths or [len(p) for p in parts]
    return b"".join(
        iter_multipart(
            (
                ({"Content-Type": "application/dicom", "Content-Length": str(n)}, [body])
                for body, n in zip(parts, told, strict=True)
            ),
            BOUNDARY,
        )
    )


def rechunk(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    pos, i = 0, 0
    while pos < len(data):
        yield data[pos : pos + sizes[i % len(sizes)]]
        pos, i = pos + sizes[i % len(sizes)], i + 1


def decode(chunks: Iterator[bytes], *, trust: bool) -> list[bytes]:
    return [part.read() for part in iter_parts(chunks, BOUNDARY, trust_length=trust)]


@given(
    st.lists(st.binary(max_size=300), max_size=6).filter(
        lambda ps: all(BOUNDARY.encode() not in p for p in ps)
    ),
    st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=20),
)
@settings(max_examples=300, deadline=None)
def test_counted_parts_equal_searched_parts_any_chunking(
    parts: list[bytes], sizes: list[int]
) -> None:
    data = encode(parts)
    assert decode(rechunk(data, sizes), trust=True) == parts
    assert decode(rechunk(data, sizes), trust=False) == parts


def test_a_boundary_inside_a_counted_body_is_data() -> None:
    body = b"before\r\n--" + BOUNDARY.encode() + b"\r\nnot a part\r\n"
    assert decode(iter([encode([body, b"x"])]), trust=True) == [body, b"x"]


@pytest.mark.parametrize("told", [3, 9, 100])
def test_a_wrong_content_length_is_refused(told: int) -> None:
    data = encode([b"abcdef", b"ghi"], [told, 3])
    with pytest.raises(ProtocolError, match=r"Content-Length|truncated"):
        decode(rechunk(data, [7]), trust=True)


def test_a_message_cut_inside_a_counted_part_is_refused() -> None:
    data = encode([b"x" * 1000])
    with pytest.raises(ProtocolError, match="truncated"):
        decode(iter([data[:500]]), trust=True)
