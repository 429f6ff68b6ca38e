"""Smaller HTTP defects of issue 10: ``ui --host 127.0.0.2`` answered 400 to everything,
``limit=99999999999999999999`` gave 500, a UID with a trailing newline passed validation,
the STOW Warning header showed the database path and PID, and 500 answers leaked internals.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from dicomstation.config import Secret
from dicomstation.database import Database
from dicomstation.server import ServerOptions
from dicomstation.server.uids import is_uid
from tests.security.http_support import ct_file, dicomweb, station

TOKEN = "small-defects-token-0123456789-abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
STOW_TYPE = 'multipart/related; type="application/dicom"; boundary=B'


@pytest.fixture(scope="module")
def seeded(pydicom_files: Path) -> Iterator[Database]:
    """CT_small plus the 4-slice CT2 series: 5 instances."""
    ct2 = sorted((pydicom_files / "dicomdirtests" / "77654033" / "CT2").iterdir())
    with Database.temporary() as db:
        assert db.import_path([ct_file(), *ct2]).ok
        yield db


def _can_bind(host: str) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family) as sock:
            sock.bind((host, 0))
        return True
    except OSError:
        return False


@pytest.mark.parametrize("host", ["127.0.0.2", "::1"])
def test_other_loopback_addresses_are_served(tmp_path: Path, host: str) -> None:
    if not _can_bind(host):
        pytest.skip(f"{host} is not available here")
    with station(tmp_path, ServerOptions(host=host, token=Secret(TOKEN))) as st:
        for path in ("/api/jobs", "/dicom-web/studies"):
            assert httpx.get(st.url + path, headers=AUTH, timeout=10).status_code == 200
        bracketed = f"[{host}]:{st.running.port}" if ":" in host else f"{host}:{st.running.port}"
        for name in (bracketed, f"localhost:{st.running.port}"):
            headers = {**AUTH, "Host": name}
            assert httpx.get(st.url + "/api/jobs", headers=headers).status_code == 200
        rebinding = {**AUTH, "Host": f"evil.example:{st.running.port}"}
        assert httpx.get(st.url + "/api/jobs", headers=rebinding).status_code == 400


def test_huge_limit_is_clamped_and_huge_offset_refused(seeded: Database) -> None:
    with dicomweb(seeded, ServerOptions(max_results=3)) as server:
        url = f"{server.url}/dicom-web/instances"
        huge = httpx.get(url, params={"limit": "99999999999999999999"})
        assert huge.status_code == 200 and len(huge.json()) == 3
        assert "at most 3 results" in huge.headers["warning"]
        unbounded = httpx.get(url)
        assert len(unbounded.json()) == 3 and "warning" in unbounded.headers
        small = httpx.get(url, params={"limit": "2"})
        assert len(small.json()) == 2 and "warning" not in small.headers
        rest = httpx.get(url, params={"offset": "3"})
        assert len(rest.json()) == 2, "the rest is reachable with offset"
        offset = httpx.get(url, params={"offset": "99999999999999999999"})
        assert offset.status_code == 400 and "offset must be an integer" in offset.json()["detail"]


@pytest.mark.parametrize("bad", ["1.2.3\n", "1.2.3\r\n", "\n1.2.3", "1.2.3 ", "1.02.3"])
def test_uids_with_trailing_newlines_or_junk_are_refused(seeded: Database, bad: str) -> None:
    assert not is_uid(bad)
    with dicomweb(seeded, ServerOptions()) as server:
        root = f"{server.url}/dicom-web"
        quoted = quote(bad, safe="")
        path = httpx.get(f"{root}/studies/{quoted}/series")
        assert path.status_code == 400 and "invalid StudyInstanceUID" in path.text
        stow = httpx.post(
            f"{root}/studies/{quoted}", content=b"", headers={"Content-Type": STOW_TYPE}
        )
        assert stow.status_code == 400 and "invalid StudyInstanceUID" in stow.text
        query = httpx.get(f"{root}/studies", params={"StudyInstanceUID": bad.strip() + "\n9"})
        assert query.status_code == 400 and "invalid StudyInstanceUID" in query.text
    assert is_uid("1.2.840.10008.1.2")


def test_stow_warning_names_no_path_or_pid(tmp_path: Path) -> None:
    data = ct_file().read_bytes()
    truncated = data[: len(data) - 5000]  # header fine, pixel data cut: fails to index
    body = b"--B\r\nContent-Type: application/dicom\r\n\r\n" + truncated + b"\r\n--B--\r\n"
    with Database.temporary() as db, dicomweb(db, ServerOptions()) as server:
        answer = httpx.post(
            f"{server.url}/dicom-web/studies", content=body, headers={"Content-Type": STOW_TYPE}
        )
        assert answer.status_code == 409
        warning = answer.headers["warning"]
        assert warning.startswith('299 dicomstation "part 1:') and "truncated" in warning
        for leak in (str(db.root), str(tmp_path), "/incoming", "stow.", "/tmp"):
            assert leak not in warning, (leak, warning)
        assert not any(part.isdigit() and len(part) >= 3 for part in warning.split("."))


def test_internal_errors_say_nothing_of_the_internals(tmp_path: Path) -> None:
    with Database.temporary() as db, dicomweb(db, ServerOptions()) as server:
        root = str(db.root)
        db.close()  # every query now fails inside sqlite
        for path in ("/dicom-web/studies", "/dicom-web/series?Modality=CT"):
            answer = httpx.get(f"{server.url}{path}")
            assert answer.status_code == 500
            assert answer.json() == {
                "detail": "internal error of the server (details are in its log)"
            }
            for leak in ("sqlite", "Traceback", "closed database", root, "File "):
                assert leak.lower() not in answer.text.lower()
