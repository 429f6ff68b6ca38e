"""UPS-RS on dicomstation's server, driven by a generic HTTP client (httpx) with the standard's
request shapes (PS3.18 §11, PS3.4 Annex CC), and the WebSocket event channel."""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import websockets
from pydicom.uid import generate_uid

from tests.ups.conftest import TOKEN, UpsServer

JSON = {"Content-Type": "application/dicom+json", "Accept": "application/dicom+json"}
GLOBAL = "1.2.840.10008.5.1.4.34.5"


def _workitem(label: str = "Segment CT", study: str = "1.2.3.4") -> list[dict]:
    """A push workitem as in PS3.18 §11.4 (array of one dataset)."""
    return [
        {
            "00741000": {"vr": "CS", "Value": ["SCHEDULED"]},
            "00741200": {"vr": "CS", "Value": ["MEDIUM"]},
            "00741204": {"vr": "LO", "Value": [label]},
            "00404041": {"vr": "CS", "Value": ["READY"]},
            "00404005": {"vr": "DT", "Value": ["20261201120000"]},
            "00404018": {
                "vr": "SQ",
                "Value": [
                    {
                        "00080100": {"vr": "SH", "Value": ["segmentation"]},
                        "00080102": {"vr": "SH", "Value": ["99DICOMSTATION"]},
                        "00080104": {"vr": "LO", "Value": ["Automated segmentation"]},
                    }
                ],
            },
            "00404021": {
                "vr": "SQ",
                "Value": [{"0020000D": {"vr": "UI", "Value": [study]}}],
            },
        }
    ]


def _state(state: str, txn: str) -> list[dict]:
    return [
        {
            "00081195": {"vr": "UI", "Value": [txn]},
            "00741000": {"vr": "CS", "Value": [state]},
        }
    ]


def _create(http: httpx.Client, uid: str | None = None, **kwargs: str) -> str:
    url = f"/workitems?{uid}" if uid else "/workitems"
    answer = http.post(url, content=json.dumps(_workitem(**kwargs)), headers=JSON)
    assert answer.status_code == 201, answer.text
    return answer.headers["Location"].rsplit("/", 1)[1]


def test_create_retrieve_search(ups_server: UpsServer) -> None:
    with ups_server.client() as http:
        uid = generate_uid()
        assert _create(http, uid) == uid
        other = _create(http, label="Other", study="9.8.7")
        again = http.post(f"/workitems?{uid}", content=json.dumps(_workitem()), headers=JSON)
        assert again.status_code == 409 and "already exists" in again.headers["Warning"]
        got = http.get(f"/workitems/{uid}", headers=JSON)
        assert got.status_code == 200
        item = got.json()[0]
        assert item["00080018"]["Value"] == [uid]
        assert item["00080016"]["Value"] == ["1.2.840.10008.5.1.4.34.6.1"]
        assert item["00741000"]["Value"] == ["SCHEDULED"]
        found = http.get("/workitems", params={"ProcedureStepLabel": "Oth*"}).json()
        assert [f["00080018"]["Value"][0] for f in found] == [other]
        code = http.get("/workitems", params={"00404018.00080100": "segmentation"}).json()
        assert {f["00080018"]["Value"][0] for f in code} == {uid, other}
        studies = http.get(
            "/workitems", params={"InputInformationSequence.StudyInstanceUID": "9.8.7"}
        )
        assert len(studies.json()) == 1
        none = http.get("/workitems", params={"ProcedureStepState": "COMPLETED"})
        assert none.status_code == 204
        assert http.get("/workitems", params={"NoSuchKeyword": "x"}).status_code == 400
        assert http.get(f"/workitems/{generate_uid()}").status_code == 404


def test_bad_creates_are_refused(ups_server: UpsServer) -> None:
    with ups_server.client() as http:
        in_progress = _workitem()
        in_progress[0]["00741000"]["Value"] = ["IN PROGRESS"]
        assert http.post("/workitems", json=in_progress).status_code == 400
        with_txn = _workitem()
        with_txn[0]["00081195"] = {"vr": "UI", "Value": ["1.2.3"]}
        assert http.post("/workitems", json=with_txn).status_code == 400
        assert http.post("/workitems", content=b"not json").status_code == 400
        assert http.post("/workitems?../../etc", json=_workitem()).status_code == 400
        assert http.post("/workitems", content=b"[" + b"1," * 600_000 + b"1]").status_code in (
            400,
            413,
        )
    no_token = httpx.post(f"{ups_server.root}/workitems", json=_workitem())
    assert no_token.status_code == 401


def test_claim_update_complete_and_conflicts(ups_server: UpsServer) -> None:
    with ups_server.client() as http:
        uid = _create(http)
        txn, rival = generate_uid(), generate_uid()
        # Update while SCHEDULED needs no transaction.
        label = [{"00741204": {"vr": "LO", "Value": ["Relabelled"]}}]
        assert http.post(f"/workitems/{uid}", json=label).status_code == 200
        missing = [{"00741000": {"vr": "CS", "Value": ["IN PROGRESS"]}}]
        assert http.put(f"/workitems/{uid}/state", json=missing).status_code == 400
        assert http.put(f"/workitems/{uid}/state", json=_state("COMPLETED", txn)).status_code == 409
        assert (
            http.put(f"/workitems/{uid}/state", json=_state("IN PROGRESS", txn)).status_code == 200
        )
        second = http.put(f"/workitems/{uid}/state", json=_state("IN PROGRESS", rival))
        assert second.status_code == 409 and "Warning" in second.headers
        progress = [
            {"00741002": {"vr": "SQ", "Value": [{"00741004": {"vr": "DS", "Value": [50]}}]}}
        ]
        assert http.post(f"/workitems/{uid}", json=progress).status_code == 400  # no txn
        assert http.post(f"/workitems/{uid}?transaction={rival}", json=progress).status_code == 409
        assert http.post(f"/workitems/{uid}?transaction={txn}", json=progress).status_code == 200
        assert (
            http.put(f"/workitems/{uid}/state", json=_state("COMPLETED", rival)).status_code == 409
        )
        assert http.put(f"/workitems/{uid}/state", json=_state("DONE", txn)).status_code == 400
        assert http.put(f"/workitems/{uid}/state", json=_state("COMPLETED", txn)).status_code == 200
        item = http.get(f"/workitems/{uid}").json()[0]
        assert item["00741000"]["Value"] == ["COMPLETED"]
        assert item["00741204"]["Value"] == ["Relabelled"]
        assert "00081195" not in item  # the Transaction UID is never returned
        assert http.post(f"/workitems/{uid}?transaction={txn}", json=label).status_code == 409


def test_cancel_requests(ups_server: UpsServer) -> None:
    with ups_server.client() as http:
        scheduled, running = _create(http), _create(http)
        assert http.post(f"/workitems/{scheduled}/cancelrequest").status_code == 202
        assert http.get(f"/workitems/{scheduled}").json()[0]["00741000"]["Value"] == ["CANCELED"]
        assert http.post(f"/workitems/{scheduled}/cancelrequest").status_code == 409
        txn = generate_uid()
        http.put(f"/workitems/{running}/state", json=_state("IN PROGRESS", txn))
        reason = [{"00741238": {"vr": "LT", "Value": ["no longer needed"]}}]
        assert http.post(f"/workitems/{running}/cancelrequest", json=reason).status_code == 202
        # The performer decides: still IN PROGRESS until it cancels with its transaction.
        assert http.get(f"/workitems/{running}").json()[0]["00741000"]["Value"] == ["IN PROGRESS"]
        assert (
            http.put(f"/workitems/{running}/state", json=_state("CANCELED", txn)).status_code == 200
        )


def test_only_one_of_many_concurrent_claims_wins(ups_server: UpsServer) -> None:
    with ups_server.client() as http:
        uid = _create(http)

    def claim(_: int) -> int:
        with ups_server.client() as http:
            body = _state("IN PROGRESS", generate_uid())
            return http.put(f"/workitems/{uid}/state", json=body).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = sorted(pool.map(claim, range(8)))
    assert codes == [200] + [409] * 7


def test_an_expired_lease_can_be_claimed_again(ups_server: UpsServer) -> None:
    with ups_server.client() as http:
        uid = _create(http)
        old, new = generate_uid(), generate_uid()
        url = f"/workitems/{uid}/state"
        assert http.put(url + "?lease=0.3", json=_state("IN PROGRESS", old)).status_code == 200
        assert http.put(url, json=_state("IN PROGRESS", new)).status_code == 409
        time.sleep(0.4)  # the lease running out is the event itself
        assert http.put(url, json=_state("IN PROGRESS", new)).status_code == 200
        assert http.put(url, json=_state("COMPLETED", old)).status_code == 409
        assert http.put(url, json=_state("COMPLETED", new)).status_code == 200


def test_global_subscription_reports_events_over_websocket(ups_server: UpsServer) -> None:
    ws_url = ups_server.root.replace("http://", "ws://") + "/subscribers/WATCHER"

    async def scenario() -> list[dict]:
        with pytest.raises(websockets.exceptions.InvalidStatus):
            async with websockets.connect(ws_url):
                pass
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with websockets.connect(ws_url, additional_headers=headers) as channel:
            with ups_server.client() as http:
                sub = http.post(f"/workitems/{GLOBAL}/subscribers/WATCHER")
                assert sub.status_code == 201
                uid = await asyncio.to_thread(_create, http)
                txn = generate_uid()
                await asyncio.to_thread(
                    http.put, f"/workitems/{uid}/state", json=_state("IN PROGRESS", txn)
                )
            reports = [json.loads(await asyncio.wait_for(channel.recv(), 10)) for _ in range(2)]
        return [r | {"uid": uid} for r in reports]

    reports = asyncio.run(scenario())
    assert [r["00741000"]["Value"][0] for r in reports] == ["SCHEDULED", "IN PROGRESS"]
    assert all(r["00001000"]["Value"] == [r["uid"]] for r in reports)
    assert all(r["00001002"]["Value"] == [1] for r in reports)  # UPS State Report


def test_peers_cannot_grow_the_store_without_bound(
    ups_server: UpsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dicomstation.server import ups_store

    monkeypatch.setattr(ups_store, "MAX_WORKITEMS", 2)
    monkeypatch.setattr(ups_store, "MAX_SUBSCRIPTIONS", 1)
    with ups_server.client() as http:
        _create(http)
        _create(http)
        full = http.post("/workitems", json=_workitem())
        assert full.status_code == 503 and "2 workitems" in full.json()["detail"]
        assert http.post(f"/workitems/{GLOBAL}/subscribers/ONE").status_code == 201
        assert http.post(f"/workitems/{GLOBAL}/subscribers/TWO").status_code == 503
        assert http.post(f"/workitems/{GLOBAL}/subscribers/bad%2Faet").status_code in (400, 404)
