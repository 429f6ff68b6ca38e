"""DIMSE speed: dicomstation beside dcmtk and a plain pynetdicom SCU, against one Orthanc.

Usage: python benchmarks/bench_dimse.py [N_SLICES] [SIZE] [REPEATS]
Makes a synthetic CT series (default 300 slices of 512x512, ~150 MB) in a temp
folder, starts Orthanc on loopback (tests/peers.py), and in one run times:

C-STORE of the series to Orthanc (Orthanc emptied before each run):
  * dcmtk ``storescu`` (the peer to beat; goal: dicomstation >= 80 % of its speed);
  * dicomstation ``DimseNode.store`` (one association, files streamed as encoded);
  * plain pynetdicom SCU, naive: ``dcmread`` + ``send_c_store(dataset)`` per file.
C-GET of the same series from Orthanc:
  * dcmtk ``getscu`` into a folder;
  * dicomstation ``DimseNode.retrieve`` into a fresh database (instance listing by
    C-FIND, files written + indexed), by C-GET and, for information, by C-MOVE.

C-STORE into dcmtk ``storescp --ignore`` and a ``storescp`` writing files (the
ceiling, TCP_NODELAY=1): ``storescu`` beside dicomstation on both transports
(``DICOMSTATION_DIMSE_TRANSPORT=fast`` and ``pynetdicom``). For per-instance
overhead run ``bench_dimse.py 2000 64``.

Prints seconds, instances/s, MB/s and the ratio to the dcmtk tool (best of REPEATS).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from pydicom import dcmread

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pynetdicom import AE
from tests.peers import OrthancServer, free_port, start_orthanc
from tests.synth import write_ct_series

from dicomstation.config import DimseServer, LocalNodeConfig
from dicomstation.database import Database
from dicomstation.nodes.dimse import DimseNode


def _storescu(orthanc: OrthancServer, folder: Path) -> None:
    subprocess.run(
        [
            "storescu",
            "-aet",
            "STORESCU",
            "-aec",
            orthanc.aet,
            "+sd",
            "-R",
            "127.0.0.1",
            str(orthanc.dicom_port),
            str(folder),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def _dicomstation_store(node: DimseNode, paths: list[Path]) -> None:
    report = node.store(paths)
    assert report.ok and len(report.succeeded) == len(paths), report.failed


def _naive_store(orthanc: OrthancServer, paths: list[Path]) -> None:
    ae = AE(ae_title="STORESCU")
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2")  # CT Image Storage
    assoc = ae.associate("127.0.0.1", orthanc.dicom_port, ae_title=orthanc.aet)
    assert assoc.is_established
    try:
        for path in paths:
            status = assoc.send_c_store(dcmread(path))
            code = getattr(status, "Status", None)  # empty: timed out or aborted
            assert code == 0, f"pynetdicom naive store: status {code} for {path.name}"
    finally:
        assoc.release()


def _getscu(orthanc: OrthancServer, study: str, series: str, out: Path) -> None:
    out.mkdir(parents=True)
    subprocess.run(
        [
            "getscu",
            "-aet",
            "GETSCU",
            "-aec",
            orthanc.aet,
            "-S",
            "-k",
            "QueryRetrieveLevel=SERIES",
            "-k",
            f"StudyInstanceUID={study}",
            "-k",
            f"SeriesInstanceUID={series}",
            "-od",
            str(out),
            "127.0.0.1",
            str(orthanc.dicom_port),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def _dicomstation_get(node: DimseNode, study: str, series: str, root: Path, count: int) -> None:
    with Database.open(root) as db:
        report = node.retrieve(study, [series], into=db)
    assert len(report.succeeded) == count, (len(report.succeeded), report.failed)


def _start_storescp(work: Path, ignore: bool) -> tuple[subprocess.Popen[bytes], int]:
    """dcmtk storescp on loopback (TCP_NODELAY=1 from the environment): --ignore or writing."""
    port = free_port()
    args = ["storescp", "-aet", "STORESCP", "+xa"]
    if ignore:
        args.append("--ignore")
    else:
        out = work / f"storescp-{port}"
        out.mkdir()
        args += ["-od", str(out)]
    quiet = subprocess.DEVNULL  # a writing storescp warns on every overwrite (repeats)
    proc = subprocess.Popen([*args, str(port)], stdout=quiet, stderr=quiet)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("storescp did not start")


def _storescu_to(port: int, folder: Path) -> None:
    args = ["storescu", "-aet", "STORESCU", "-aec", "STORESCP", "+sd", "-R", "127.0.0.1"]
    subprocess.run([*args, str(port), str(folder)], check=True, stdout=subprocess.DEVNULL)


def _ceiling(work: Path, folder: Path, paths: list[Path], nbytes: int, repeats: int) -> None:
    """C-STORE into storescp --ignore and a writing storescp: both transports beside storescu."""
    for ignore in (True, False):
        proc, port = _start_storescp(work, ignore)
        try:
            label = "storescp --ignore" if ignore else "storescp writing files"
            print(f"C-STORE to {label} (TCP_NODELAY=1)")
            _ceiling_rows(port, folder, paths, nbytes, repeats)
        finally:
            proc.terminate()
            proc.wait(10)


def _ceiling_rows(port: int, folder: Path, paths: list[Path], nbytes: int, repeats: int) -> None:
    count = len(paths)
    ref = _best(lambda _: _storescu_to(port, folder), repeats, lambda: None)
    print(_row("dcmtk storescu", ref, count, nbytes, ref))
    node = DimseNode(DimseServer("scp", "STORESCP", "127.0.0.1", port, timeout=120))
    try:
        for transport in ("fast", "pynetdicom"):
            os.environ["DICOMSTATION_DIMSE_TRANSPORT"] = transport
            ours = _best(lambda _: _dicomstation_store(node, paths), repeats, lambda: None)
            print(_row(f"dicomstation store ({transport})", ours, count, nbytes, ref))
            print(f"  {transport} / storescu: {ref / ours:.2f}x (goal >= 0.9)")
    finally:
        os.environ.pop("DICOMSTATION_DIMSE_TRANSPORT", None)


def _best(run: Callable[[int], None], repeats: int, before: Callable[[], None]) -> float:
    times = []
    for attempt in range(repeats):
        before()
        started = time.perf_counter()
        run(attempt)
        times.append(time.perf_counter() - started)
    return min(times)


def _row(name: str, seconds: float, count: int, nbytes: int, ref: float) -> str:
    return (
        f"{name:<34} {seconds:8.2f} s {count / seconds:9.1f} inst/s "
        f"{nbytes / seconds / 1e6:8.1f} MB/s   x{ref / seconds:5.2f}"
    )


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 512
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    # dcmtk (storescu, getscu, and Orthanc's DICOM server) keeps Nagle's algorithm on
    # unless TCP_NODELAY=1; with it on, every message waits ~40 ms for a delayed ACK
    # and all tools look equally slow. dicomstation disables Nagle on its own sockets.
    os.environ["TCP_NODELAY"] = "1"
    # Orthanc's storage + index on tmpfs, so the peer's disk does not hide SCU speed.
    shm = Path("/dev/shm")
    work = Path(tempfile.mkdtemp(prefix="bench-dimse-", dir=shm if shm.is_dir() else None))
    (work / "orthanc").mkdir()
    orthanc = start_orthanc(work / "orthanc")
    try:
        folder = work / "series"
        paths = write_ct_series(folder, count, size=size)
        nbytes = sum(p.stat().st_size for p in paths)
        first = dcmread(paths[0], stop_before_pixels=True)
        study, series = str(first.StudyInstanceUID), str(first.SeriesInstanceUID)
        server = DimseServer("orthanc", orthanc.aet, "127.0.0.1", orthanc.dicom_port, timeout=120)
        node = DimseNode(server)
        print(
            f"{count} instances of {size}x{size}, {nbytes / 1e6:.1f} MB; Orthanc on loopback;"
            f" best of {repeats}"
        )
        _ceiling(work, folder, paths, nbytes, repeats)
        print("C-STORE to Orthanc")
        ref = _best(lambda _: _storescu(orthanc, folder), repeats, orthanc.clear)
        print(_row("dcmtk storescu", ref, count, nbytes, ref))
        ours = _best(lambda _: _dicomstation_store(node, paths), repeats, orthanc.clear)
        print(_row("dicomstation DimseNode.store", ours, count, nbytes, ref))
        try:
            naive = _best(lambda _: _naive_store(orthanc, paths), repeats, orthanc.clear)
            print(_row("pynetdicom naive (dcmread+send)", naive, count, nbytes, ref))
        except AssertionError as exc:  # the comparison SCU failing must not end the run
            print(f"pynetdicom naive (dcmread+send)    failed: {exc}")
        print(f"dicomstation / storescu speed: {ref / ours:.0%} (goal >= 80 %)")
        print("C-GET from Orthanc")
        got = work / "get"
        ref = _best(
            lambda i: _getscu(orthanc, study, series, got / f"dcmtk{i}"), repeats, lambda: None
        )
        print(_row("dcmtk getscu", ref, count, nbytes, ref))
        ours = _best(
            lambda i: _dicomstation_get(node, study, series, got / f"db{i}", count),
            repeats,
            lambda: None,
        )
        print(_row("dicomstation retrieve (C-GET)", ours, count, nbytes, ref))
        print(f"dicomstation / getscu speed: {ref / ours:.0%}")
        port = free_port()
        orthanc.add_modality("benchmove", "BENCHMOVE", port)
        mover = DimseNode(
            replace(server, move_destination="BENCHMOVE"),
            local=LocalNodeConfig(ae_title="BENCHMOVE", port=port),
        )
        moved = _best(
            lambda i: _dicomstation_get(mover, study, series, got / f"move{i}", count),
            repeats,
            lambda: None,
        )
        print(_row("dicomstation retrieve (C-MOVE)*", moved, count, nbytes, ref))
        print("* C-MOVE: Orthanc sends the stores to a dicomstation listener started for the move")
    finally:
        orthanc.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
