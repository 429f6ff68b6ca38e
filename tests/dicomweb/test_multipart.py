"""The streaming multipart parser and writer: round trips, chunking, bad input, linear time."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dicomstation.errors import ProtocolError
from dicomstation.nodes.multipart import (
    boundary_of,
    file_parts,
    iter_multipart,
    iter_parts,
    multipart_content_type,
    new_boundary,
    parse_content_type,
)

BOUNDARY = "b0undary-XyZ"
bodies = st.lists(st.binary(max_size=300), max_size=6)
cuts = st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=20)


def encode(parts: list[bytes], boundary: str = BOUNDARY) -> bytes:
    return b"".join(
        iter_multipart(
            (({"Content-Type": "application/dicom"}, [body]) for body in parts), boundary
        )
    )


def rechunk(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    """Split ``data`` into chunks of the given sizes, cycling."""
    pos, i = 0, 0
    while pos < len(data):
        step = sizes[i % len(sizes)]
        yield data[pos : pos + step]
        pos, i = pos + step, i + 1


def decode(chunks: Iterator[bytes] | list[bytes], boundary: str = BOUNDARY) -> list[bytes]:
    return [part.read() for part in iter_parts(chunks, boundary)]


@given(bodies.filter(lambda ps: all(BOUNDARY.encode() not in p for p in ps)), cuts)
@settings(max_examples=300, deadline=None)
def test_round_trip_any_chunking(parts: list[bytes], sizes: list[int]) -> None:
    assert decode(rechunk(encode(parts), sizes)) == parts


@given(
    bodies.filter(lambda ps: all(BOUNDARY.encode() not in p for p in ps)),
    st.integers(min_value=3, max_value=200),
)
@settings(max_examples=200, deadline=None)
def test_truncation_is_always_an_error(parts: list[bytes], keep: int) -> None:
    data = encode(parts)
    cut = len(data) - min(keep, len(data))  # the final CRLF (2 bytes) is optional
    with pytest.raises(ProtocolError):
        decode([data[:cut]])


@given(st.binary(max_size=2000), cuts)
@settings(max_examples=300, deadline=None)
def test_garbage_never_crashes(data: bytes, sizes: list[int]) -> None:
    """Random bytes give parts or a ProtocolError, never another exception."""
    with contextlib.suppress(ProtocolError):
        decode(rechunk(data, sizes))


@given(st.binary(max_size=200), st.binary(max_size=200), cuts)
@settings(max_examples=200, deadline=None)
def test_preamble_epilogue_and_padding(pre: bytes, post: bytes, sizes: list[int]) -> None:
    if BOUNDARY.encode() in pre or b"\r\n--" in pre:
        return
    body = b"\r\n".join(
        [
            b"--" + BOUNDARY.encode() + b"  \t",
            b"X-A: 1",
            b"",
            b"hello",
            b"--" + BOUNDARY.encode() + b"--",
        ]
    )
    data = pre + b"\r\n" + body + b"\r\n" + post
    parts = list(iter_parts(rechunk(data, sizes), BOUNDARY))
    assert len(parts) == 1


def test_headers_and_empty_parts() -> None:
    data = (
        b"--B\r\nContent-Type: application/dicom; transfer-syntax=1.2\r\nContent-Length: 0"
        b"\r\n\r\n\r\n--B\r\n\r\nabc\r\n--B--"
    )
    parts = list(iter_parts([data], "B"))
    assert parts[0].content_type == "application/dicom"
    assert parts[0].headers["content-length"] == "0"
    assert parts[1].headers == {}


def test_unread_parts_are_skipped() -> None:
    data = encode([b"a" * 1000, b"second"])
    parts = iter_parts(rechunk(data, [7]), BOUNDARY)
    next(parts)
    assert next(parts).read() == b"second"


@pytest.mark.parametrize(
    "data, message",
    [
        (b"no boundary here", "no multipart boundary"),
        (b"--b0undary-XyZ\r\nbroken header\r\n\r\nx\r\n--b0undary-XyZ--", "malformed part header"),
        (b"--b0undary-XyZ\r\nA: b\r\n", "truncated part headers"),
        (b"--b0undary-XyZ\r\n\r\nbody without end", "truncated inside a part"),
        (b"--b0undary-XyZjunk\r\n\r\n", "garbage after"),
    ],
)
def test_malformed_messages(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message) as info:
        list(iter_parts([data], BOUNDARY, server="pacs", operation="WADO-RS", uid="1.2.3"))
    assert info.value.server == "pacs" and info.value.uid == "1.2.3"


def test_linear_time_and_bounded_chunks() -> None:
    """Many tiny parts in few big chunks, and one huge part in many small chunks."""
    tiny = encode([b"x" * 10] * 20000)
    started = time.perf_counter()
    assert len(decode([tiny])) == 20000
    small_parts = time.perf_counter() - started
    big = encode([b"y" * (32 << 20)])
    started = time.perf_counter()
    longest = 0
    for part in iter_parts(rechunk(big, [65536]), BOUNDARY):
        for chunk in part.chunks():
            longest = max(longest, len(chunk))
    big_part = time.perf_counter() - started
    assert longest <= 65536 + 64  # memory bounded by the chunk size
    assert small_parts < 2.0 and big_part < 2.0


@given(
    st.dictionaries(
        st.sampled_from(["type", "boundary", "start", "charset"]),
        st.text(alphabet="abcdefXYZ0123456789/;=.- ", min_size=1, max_size=30),
        min_size=1,
    )
)
def test_parse_content_type_quoted_params(params: dict[str, str]) -> None:
    text = "multipart/related; " + "; ".join(f'{k}="{v}"' for k, v in params.items())
    media, parsed = parse_content_type(text)
    assert media == "multipart/related"
    assert parsed == params


def test_boundary_of() -> None:
    ctype = 'multipart/related; type="application/octet-stream; transfer-syntax=1.2"; boundary=ab'
    assert boundary_of(ctype) == "ab"
    assert boundary_of(multipart_content_type("xyz-1")) == "xyz-1"
    with pytest.raises(ValueError):
        boundary_of("application/dicom+json")
    with pytest.raises(ValueError):
        boundary_of("multipart/related; type=application/dicom")


def test_file_parts_stream_from_disk(tmp_path: Path) -> None:
    files = []
    for i in range(3):
        path = tmp_path / f"{i}.bin"
        path.write_bytes(bytes([i]) * (3000 + i))
        files.append(path)
    boundary = new_boundary()
    chunks = list(iter_multipart(file_parts(files, chunk_size=1024), boundary))
    assert max(len(c) for c in chunks) <= 1024 + 200
    assert decode(chunks, boundary) == [p.read_bytes() for p in files]


def test_sop_uid_from_head_matches_pydicom(pydicom_files: Path) -> None:
    from pydicom.filereader import read_file_meta_info

    from dicomstation.nodes.wado import sop_uid_from_head

    checked = 0
    for path in sorted(pydicom_files.glob("*.dcm"))[:80]:
        try:
            expected = str(read_file_meta_info(path).get("MediaStorageSOPInstanceUID", ""))
        except Exception:  # files without meta: nothing to compare
            continue
        found = sop_uid_from_head(path.read_bytes()[:4096])
        assert found == expected or not found  # '' only when the meta is not there
        checked += bool(found)
    assert checked > 20
    assert sop_uid_from_head(b"\0" * 200) == ""
