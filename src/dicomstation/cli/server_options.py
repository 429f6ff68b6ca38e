"""What ``server add`` and ``server edit`` may set, and ``server test``'s three checks.

One set of options for both commands: ``add`` starts from the defaults of a new
server, ``edit`` from the stored one, and an option not given keeps its value.
Secrets stay bound to their origin (:meth:`Settings.with_server`): a URL moved to
another origin keeps no stored secret, only those given in the same command.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

from dicomstation.config import Credentials, DicomWebServer, DimseServer, Secret, ServerConfig
from dicomstation.errors import DicomStationError, NotFoundError, UsageError
from dicomstation.models import InstanceRef, Level, Query, SeriesRef, StudyRef
from dicomstation.settings import check_url

if TYPE_CHECKING:  # nodes are imported by the commands that open one, not by --help
    from dicomstation.nodes import DicomNode

__all__ = ["CheckResult", "ServerEdits", "apply_edits", "test_node"]


@dataclass(frozen=True)
class ServerEdits:
    """Options given on the command line; ``None`` means "not given"."""

    url: str | None = None
    ae_title: str | None = None
    host: str | None = None
    port: int | None = None
    calling_ae: str | None = None
    move_destination: str | None = None
    timeout: float | None = None
    username: str | None = None
    password: Secret | None = None
    token: Secret | None = None
    verify_tls: bool | None = None
    ca_bundle: str | None = None
    proxy: str | None = None
    use_global_auth: bool | None = None
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: Secret | None = None
    oidc_scope: str | None = None

    def dimse_given(self) -> list[str]:
        """The DIMSE-only options given (for a clear refusal on a DICOMweb server)."""
        named = {
            "--ae": self.ae_title,
            "--host": self.host,
            "--port": self.port,
            "--calling-ae": self.calling_ae,
            "--move-destination": self.move_destination,
        }
        return [option for option, value in named.items() if value is not None]

    def web_given(self) -> list[str]:
        """The DICOMweb-only options given."""
        named = {
            "--url": self.url,
            "--user": self.username,
            "--password": self.password,
            "--token": self.token,
            "--verify/--no-verify": self.verify_tls,
            "--ca-bundle": self.ca_bundle,
            "--proxy": self.proxy,
            "--use-global-auth": self.use_global_auth,
            **{option: getattr(self, name) for option, (name, _) in OIDC_OPTIONS.items()},
        }
        return [option for option, value in named.items() if value is not None]


T = TypeVar("T")

#: OpenID Connect options: option -> (ServerEdits field, Credentials field). ''
#: given clears the value (``--oidc-issuer ''`` turns OIDC off).
OIDC_OPTIONS = {
    "--oidc-issuer": ("oidc_issuer", "issuer"),
    "--oidc-client-id": ("oidc_client_id", "client_id"),
    "--oidc-client-secret-stdin": ("oidc_client_secret", "client_secret"),
    "--oidc-scope": ("oidc_scope", "scope"),
}


def _pick(value: T | None, kept: T) -> T:
    return kept if value is None else value


def _credentials(old: DicomWebServer, url: str, edits: ServerEdits) -> Credentials:
    creds = old.credentials
    if check_url(old.name, url) != old.url and DicomWebServer(old.name, url).origin != old.origin:
        creds = replace(creds.without_secrets(), origin="")  # the new origin gets no old secret
    creds = replace(creds, username=_pick(edits.username, creds.username))
    if edits.password is not None:
        creds = replace(creds, password=edits.password)
    if edits.token is not None:
        creds = replace(creds, token=edits.token)
    oidc = {field: getattr(edits, name) for name, field in OIDC_OPTIONS.values()}
    oidc = {field: value for field, value in oidc.items() if value is not None}
    if oidc.get("issuer"):
        from dicomstation.auth_oidc.provider import check_issuer

        oidc["issuer"] = check_issuer(old.name, oidc["issuer"])
    creds = replace(creds, **oidc)
    if edits.password is not None or edits.token is not None or oidc.get("client_secret"):
        creds = replace(creds, origin="")  # bound to the URL's origin by with_server
    return creds


def _dicomweb(old: DicomWebServer, edits: ServerEdits) -> DicomWebServer:
    if wrong := edits.dimse_given():
        raise UsageError(f"server {old.name!r} is DICOMweb: {', '.join(wrong)} apply to DIMSE")
    url = check_url(old.name, _pick(edits.url, old.url))
    return replace(
        old,
        url=url,
        credentials=_credentials(old, url, edits),
        verify_tls=_pick(edits.verify_tls, old.verify_tls),
        ca_bundle=_pick(edits.ca_bundle, old.ca_bundle),
        proxy=_pick(edits.proxy, old.proxy),
        timeout=_timeout(_pick(edits.timeout, old.timeout)),
        use_global_auth=_pick(edits.use_global_auth, old.use_global_auth),
    )


def _dimse(old: DimseServer, edits: ServerEdits) -> DimseServer:
    if wrong := edits.web_given():
        raise UsageError(f"server {old.name!r} is DIMSE: {', '.join(wrong)} apply to DICOMweb")
    port = _pick(edits.port, old.port)
    if not 0 < port < 65536:
        raise UsageError(f"--port {port}: must be 1..65535")
    for option, title in (("--ae", edits.ae_title), ("--calling-ae", edits.calling_ae)):
        if title is not None and not 0 < len(title.strip()) <= 16:
            raise UsageError(f"{option} {title!r}: an AE title has 1 to 16 characters")
    return replace(
        old,
        ae_title=_pick(edits.ae_title, old.ae_title),
        host=_pick(edits.host, old.host),
        port=port,
        calling_ae=_pick(edits.calling_ae, old.calling_ae),
        timeout=_timeout(_pick(edits.timeout, old.timeout)),
        move_destination=_pick(edits.move_destination, old.move_destination),
    )


def _timeout(value: float) -> float:
    if not value > 0:
        raise UsageError(f"--timeout {value:g}: must be a positive number of seconds")
    return value


def apply_edits(name: str, edits: ServerEdits, old: ServerConfig | None) -> ServerConfig:
    """The server ``old`` (or a new one) with ``edits`` applied.

    Raises
    ------
    UsageError
        For options of the other protocol, bad values, or a new server with
        neither ``--url`` nor ``--ae`` and ``--host``.
    """
    if old is None:
        if edits.url is not None and edits.ae_title is not None:
            raise UsageError("give either --url (DICOMweb) or --ae/--host/--port (DIMSE)")
        if edits.url is not None:
            old = DicomWebServer(name, check_url(name, edits.url))
        elif edits.ae_title and edits.host:
            old = DimseServer(name, edits.ae_title, edits.host, edits.port or 104)
        else:
            raise UsageError("a server needs --url, or --ae and --host (and --port)")
    if isinstance(old, DicomWebServer):
        return _dicomweb(old, edits)
    return _dimse(old, edits)


@dataclass(frozen=True)
class CheckResult:
    """One check of ``server test``: what, whether it worked, and what it found."""

    check: str
    ok: bool
    detail: str
    seconds: float


def _timed(check: str, run: Callable[[], str]) -> CheckResult:
    started = time.perf_counter()
    try:
        detail, ok = run(), True
    except DicomStationError as exc:
        detail, ok = str(exc), False
    return CheckResult(check, ok, detail, time.perf_counter() - started)


def _one_instance(node: DicomNode, study: StudyRef) -> tuple[str, str, str]:
    series = node.find(Query(Level.SERIES, study_uid=study.study_uid, limit=1))
    if not series or not isinstance(series[0], SeriesRef):
        raise NotFoundError(f"study {study.study_uid} lists no series")
    series_uid = series[0].series_uid
    found = node.find(Query(Level.IMAGE, study_uid=study.study_uid, series_uid=series_uid))
    first = next((ref for ref in found if isinstance(ref, InstanceRef)), None)
    if first is None:
        raise NotFoundError(f"series {series_uid} lists no instance")
    return study.study_uid, series_uid, first.sop_instance_uid


def test_node(node: DicomNode, *, retrieve: bool) -> list[CheckResult]:
    """Echo, a one-study query and (when ``retrieve``) a one-instance retrieve.

    The retrieve goes into a temporary database that is deleted afterwards.
    Checks after a failed echo are not tried.
    """
    from dicomstation.database import Database

    def echo() -> str:
        return f"answered in {node.echo() * 1000:.0f} ms"

    results = [_timed("echo", echo)]
    if not results[0].ok:
        return results
    studies: list[StudyRef] = []

    def query() -> str:
        studies.extend(r for r in node.find(Query(Level.STUDY, limit=1)) if isinstance(r, StudyRef))
        return f"study {studies[0].study_uid}" if studies else "answered, no study on the server"

    results.append(_timed("query", query))
    if not retrieve or not studies:
        return results

    def fetch_one() -> str:
        study_uid, series_uid, sop_uid = _one_instance(node, studies[0])
        with Database.temporary() as db:
            report = node.retrieve(study_uid, (series_uid,), (sop_uid,), into=db)
        if report.failed or not report.succeeded:
            reason = next(iter(report.failed.values()), "nothing arrived")
            raise NotFoundError(f"instance {sop_uid}: {reason}")
        return f"instance {sop_uid} ({report.bytes_transferred / 1e3:.0f} kB)"

    results.append(_timed("retrieve", fetch_one))
    return results
