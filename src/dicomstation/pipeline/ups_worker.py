"""A UPS-RS task performer: claim "segmentation" workitems, run the pipeline, complete them.

A workitem (PS3.4 Annex CC) is taken when its Scheduled Workitem Code
(0040,4018) has Code Value ``segmentation``. Its Input Information Sequence
(0040,4021) names the study (Study Instance UID, optionally Referenced Series)
and where it is: Retrieve AE Title (0008,0054) or a WADO-RS Retrieval
Sequence's Retrieve URL (0040,E025 > 0008,1190), matched against the
configured servers by name or URL. The Output Destination Sequence
(0040,4070 > 0040,4071 DICOM Storage > 2100,0140 Destination AE, or
0040,4072 STOW-RS Storage > 0040,E010 Storage URL) names where the results
go. Nothing from the network names a path, a module or a segmenter: the
segmenter is the worker's own setting.

For each claimed workitem the worker runs one pipeline task (fetch, load,
segment, export SEG + SR, send) in a temporary database, renews its lease
while it runs, then sets the workitem COMPLETED with an Output Information
Sequence of the SOP instances made, or CANCELED with a reason
(Reason For Cancellation, 0074,1238). A worker that dies leaves the workitem
IN PROGRESS; once its lease runs out another worker may claim it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydicom.uid import generate_uid

from dicomstation.config import DicomWebServer, ServerConfig
from dicomstation.errors import ConfigError, DicomStationError, ProcessingError, RemoteStatusError
from dicomstation.nodes.base import CancelToken
from dicomstation.nodes.http_decoding import MAX_BODY, AnswerTooLargeError
from dicomstation.nodes.url_paths import checked_path
from dicomstation.pipeline.definition import Pipeline
from dicomstation.pipeline.executor import Executor
from dicomstation.pipeline.model import StepState, TaskManifest, TaskResult, WorkItem
from dicomstation.pipeline.task import run_task

__all__ = [
    "Claim",
    "UpsClient",
    "Worker",
    "WorkerOptions",
    "WorkitemTask",
    "parse_workitem",
    "segmentation_workitem",
]

TASK_CODE = "segmentation"
_JSON = {"Content-Type": "application/dicom+json", "Accept": "application/dicom+json"}
#: a worklist answer (workitems of a search, or one) is refused past this many bytes
MAX_ANSWER_BYTES = 16 << 20


def _el(vr: str, *value: Any) -> dict[str, Any]:
    return {"vr": vr, "Value": list(value)} if value else {"vr": vr}


def _first(dataset: Mapping[str, Any], tag: str) -> Any:
    value = dataset.get(tag, {}).get("Value") or [None]
    return value[0]


def _items(dataset: Mapping[str, Any], tag: str) -> list[Mapping[str, Any]]:
    return [v for v in dataset.get(tag, {}).get("Value") or [] if isinstance(v, Mapping)]


@dataclass(frozen=True)
class WorkitemTask:
    """What a segmentation workitem asks for."""

    uid: str
    study_uid: str
    series_uids: tuple[str, ...]
    source: str
    destination: str


def _server_for(names: list[str], servers: Mapping[str, ServerConfig], what: str, uid: str) -> str:
    for name in names:
        if name in servers:
            return name
        for key, server in servers.items():
            url = getattr(server, "url", None)
            if url and url.rstrip("/") == name.rstrip("/"):
                return key
    raise ConfigError(f"workitem {uid}: its {what} {names or '(none)'} is not a configured server")


def segmentation_workitem(
    study_uid: str, source: str, destination: str, series_uids: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """A SCHEDULED segmentation workitem (DICOM JSON, to POST) that :func:`parse_workitem` reads.

    ``source`` and ``destination`` are server names (Retrieve AE Title and Destination AE).
    """
    given: dict[str, Any] = {"0020000D": _el("UI", study_uid), "00080054": _el("AE", source)}
    if series_uids:
        given["00081115"] = _el("SQ", *({"0020000E": _el("UI", uid)} for uid in series_uids))
    task = {
        "00080100": _el("SH", TASK_CODE),
        "00080102": _el("SH", "99DICOMSTATION"),
        "00080104": _el("LO", "Automated segmentation"),
    }
    storage = {"00404071": _el("SQ", {"21000140": _el("AE", destination)})}
    return [
        {
            "00741000": _el("CS", "SCHEDULED"),
            "00404018": _el("SQ", task),
            "00404021": _el("SQ", given),
            "00404070": _el("SQ", storage),
        }
    ]


def parse_workitem(dataset: Mapping[str, Any], servers: Mapping[str, ServerConfig]) -> WorkitemTask:
    """Read a segmentation workitem (ConfigError naming the workitem when it is not one)."""
    uid = str(_first(dataset, "00080018") or "?")
    inputs = _items(dataset, "00404021")
    study = next((str(_first(i, "0020000D")) for i in inputs if _first(i, "0020000D")), "")
    if not study:
        raise ConfigError(f"workitem {uid}: no Study Instance UID in its Input Information")
    series = tuple(
        str(_first(s, "0020000E"))
        for i in inputs
        for s in _items(i, "00081115")
        if _first(s, "0020000E")
    )
    sources = [str(_first(i, "00080054")) for i in inputs if _first(i, "00080054")]
    sources += [
        str(_first(r, "00081190"))
        for i in inputs
        for r in _items(i, "0040E025")
        if _first(r, "00081190")
    ]
    outputs = _items(dataset, "00404070")
    dests = [str(_first(d, "21000140")) for o in outputs for d in _items(o, "00404071")]
    dests += [str(_first(d, "0040E010")) for o in outputs for d in _items(o, "00404072")]
    return WorkitemTask(
        uid,
        study,
        series,
        _server_for(sources, servers, "source", uid),
        _server_for([d for d in dests if d != "None"], servers, "destination", uid),
    )


@dataclass(frozen=True)
class Claim:
    """A claimed workitem: its UID and our Transaction UID."""

    uid: str
    transaction: str


class UpsClient:
    """The UPS-RS calls a performer makes, on one worklist server."""

    def __init__(self, server: DicomWebServer, http: httpx.Client) -> None:
        self.root = server.url.rstrip("/")
        self.name = server.name
        self.http = http

    def _check(self, answer: httpx.Response, what: str) -> None:
        if answer.status_code >= 400:
            detail = answer.headers.get("Warning", "") or answer.text[:200]
            raise RemoteStatusError(
                f"{self.name}: {what}: HTTP {answer.status_code} {detail}",
                server=self.name,
                operation="UPS-RS",
                status=answer.status_code,
            )

    def scheduled(self, limit: int = 50, state: str = "SCHEDULED") -> list[dict[str, Any]]:
        """Segmentation workitems in ``state``, oldest first."""
        params = {
            "ProcedureStepState": state,
            "ScheduledWorkitemCodeSequence.CodeValue": TASK_CODE,
            "limit": str(limit),
        }
        answer = self._get(f"{self.root}/workitems", "search workitems", params)
        self._check(answer, "search workitems")
        found: list[dict[str, Any]] = [] if answer.status_code == 204 else answer.json()
        return found

    def _get(self, url: str, what: str, params: Mapping[str, str] | None = None) -> httpx.Response:
        """A GET whose answer is refused past :data:`MAX_ANSWER_BYTES` (by our transport)."""
        try:
            return self.http.get(
                url, params=params, headers=_JSON, extensions={MAX_BODY: MAX_ANSWER_BYTES}
            )
        except AnswerTooLargeError:
            raise RemoteStatusError(
                f"{self.name}: {what}: answer longer than {MAX_ANSWER_BYTES} bytes",
                server=self.name,
                operation="UPS-RS",
            ) from None

    def _url(self, uid: str, tail: str = "") -> str:
        """The URL of workitem ``uid`` (a UID from the worklist's own answer: checked)."""
        path = checked_path(f"workitems/{uid}{tail}", server=self.name, operation="UPS-RS")
        return f"{self.root}/{path}"

    def workitem(self, uid: str) -> dict[str, Any]:
        """One workitem's dataset (DICOM JSON)."""
        answer = self._get(self._url(uid), f"retrieve workitem {uid}")
        self._check(answer, f"retrieve workitem {uid}")
        found: list[dict[str, Any]] = answer.json()
        return found[0]

    def claim(self, uid: str, lease: float) -> Claim | None:
        """Set IN PROGRESS with a new Transaction UID; None when someone else has it (409)."""
        txn = generate_uid()
        answer = self._state(uid, "IN PROGRESS", txn, lease)
        if answer.status_code == 409:
            return None
        self._check(answer, f"claim workitem {uid}")
        return Claim(uid, txn)

    def _state(self, uid: str, state: str, txn: str, lease: float | None = None) -> httpx.Response:
        body = [{"00081195": _el("UI", txn), "00741000": _el("CS", state)}]
        params = {"lease": f"{lease:g}"} if lease else {}
        return self.http.put(
            self._url(uid, "/state"),
            params=params,
            content=json.dumps(body),
            headers=_JSON,
        )

    def update(self, claim: Claim, changes: Mapping[str, Any], lease: float | None = None) -> None:
        """Update the claimed workitem (this renews the lease)."""
        params = {"transaction": claim.transaction} | ({"lease": f"{lease:g}"} if lease else {})
        answer = self.http.post(
            self._url(claim.uid),
            params=params,
            content=json.dumps([dict(changes)]),
            headers=_JSON,
        )
        self._check(answer, f"update workitem {claim.uid}")

    def finish(self, claim: Claim, state: str, changes: Mapping[str, Any]) -> None:
        """Write the final attributes, then COMPLETED or CANCELED."""
        self.update(claim, changes)
        self._check(self._state(claim.uid, state, claim.transaction), f"{state} {claim.uid}")


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker segments and how long it holds a claim.

    Parameters
    ----------
    servers : mapping of str to ServerConfig
        The servers a workitem may name as source or destination.
    segmenter : str
        The registered segmenter to run (default ``ct_baseline``).
    params : mapping
        Its parameters.
    lease : float
        Seconds a claim is held without renewal (renewed every third of it).
    executor : Executor or None
        Where the pipeline task runs (e.g. a ``DaskExecutor``); None: in this process.
    """

    servers: Mapping[str, ServerConfig]
    segmenter: str = "ct_baseline"
    params: Mapping[str, Any] = field(default_factory=dict)
    lease: float = 120.0
    executor: Executor | None = None


def pipeline_for(task: WorkitemTask, options: WorkerOptions) -> Pipeline:
    """The pipeline one workitem runs."""
    return Pipeline.from_dict(
        {
            "name": f"ups {task.uid}",
            "source": {"kind": "items", "items": [task.study_uid]},
            "steps": [
                {"kind": "fetch", "server": task.source},
                {"kind": "load"},
                {"kind": "segment", "segmenter": options.segmenter, "params": dict(options.params)},
                {"kind": "export", "kinds": ["seg", "sr"]},
                {"kind": "send", "server": task.destination},
            ],
            "run": {"workspace": "temporary"},
        }
    )


class Worker:
    """Poll a worklist, claim segmentation workitems one at a time, perform them.

    Parameters
    ----------
    client : UpsClient
        The worklist.
    options : WorkerOptions
        Servers, segmenter and lease.
    log : callable
        Receives one line per event (claimed, completed, failed).
    """

    def __init__(
        self, client: UpsClient, options: WorkerOptions, log: Callable[[str], None] = print
    ) -> None:
        self.client = client
        self.options = options
        self.log = log

    def claims(self) -> Iterator[Claim]:
        """Claim workitems one after another (skipping those others hold).

        SCHEDULED ones first, then IN PROGRESS ones: the server lets those be
        claimed only once their performer's lease has run out.
        """
        found = self.client.scheduled() + self.client.scheduled(state="IN PROGRESS")
        for dataset in found:
            uid = str(_first(dataset, "00080018"))
            claim = self.client.claim(uid, self.options.lease)
            if claim is not None:
                yield claim

    def run_once(self) -> int:
        """Perform every workitem claimable now; return how many this worker performed."""
        done = 0
        for claim in self.claims():
            self.perform(claim)
            done += 1
        return done

    def perform(self, claim: Claim) -> None:
        """Run one claimed workitem to COMPLETED or CANCELED (never raises a package error)."""
        self.log(f"claimed workitem {claim.uid}")
        stop = threading.Event()
        renew = threading.Thread(target=self._renew, args=(claim, stop), daemon=True)
        renew.start()
        try:
            try:
                dataset = self.client.workitem(claim.uid)
                task = parse_workitem(dataset, self.options.servers)
                result = self._run(task)
            finally:
                stop.set()
                renew.join()
            if result.state is StepState.DONE:
                outputs = [u for r in result.records if r.step == "export" for u in r.outputs]
                self.client.finish(claim, "COMPLETED", _completed(task, outputs))
                self.log(f"completed workitem {claim.uid}: {len(outputs)} instance(s)")
            else:
                self._fail(claim, result.error or "the pipeline failed")
        except DicomStationError as exc:
            self._fail(claim, str(exc))

    def _run(self, task: WorkitemTask) -> TaskResult:
        pipeline = pipeline_for(task, self.options)
        names = {task.source, task.destination}
        servers = {n: s for n, s in self.options.servers.items() if n in names}
        manifest = TaskManifest(
            pipeline.to_json(), WorkItem(task.study_uid, task.series_uids), (), {}, None, servers
        )
        if self.options.executor is None:
            return run_task(manifest)
        results: list[TaskResult] = []
        self.options.executor.run([manifest], lambda r: results.append(r), cancel=CancelToken())
        if not results:
            raise ProcessingError(f"workitem {task.uid}: the executor reported no result")
        return results[0]

    def _renew(self, claim: Claim, stop: threading.Event) -> None:
        while not stop.wait(self.options.lease / 3):
            try:
                self.client.update(claim, _progress(50, "segmenting"), self.options.lease)
            except (DicomStationError, httpx.HTTPError) as exc:
                self.log(f"workitem {claim.uid}: lease renewal failed: {exc}")

    def _fail(self, claim: Claim, reason: str) -> None:
        self.log(f"failed workitem {claim.uid}: {reason}")
        changes = _progress(100, "failed") | {"00741238": _el("LT", reason[:1024])}
        try:
            self.client.finish(claim, "CANCELED", changes)
        except (DicomStationError, httpx.HTTPError) as exc:
            self.log(f"workitem {claim.uid}: could not be set CANCELED: {exc}")


def _progress(percent: int, text: str) -> dict[str, Any]:
    item = {"00741004": _el("DS", percent), "00741006": _el("ST", text)}
    return {"00741002": _el("SQ", item)}


def _completed(task: WorkitemTask, outputs: list[str]) -> dict[str, Any]:
    refs = [{"00081155": _el("UI", uid)} for uid in outputs]
    output = {
        "0020000D": _el("UI", task.study_uid),
        "00080054": _el("AE", task.destination[:16]),
        "00081199": _el("SQ", *refs),
    }
    return _progress(100, "completed") | {"00404033": _el("SQ", output)}
