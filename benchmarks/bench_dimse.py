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
  * dicomstation ``DimseNode.retrieve`` into a fresh database (no instance
    listing: the database holds nothing of the series; files written, fsynced and
    indexed), by C-GET and, for information, by C-MOVE.

C-STORE into dcmtk ``storescp --ignore`` and a ``storescp`` writing files (the
ceiling, TCP_NODELAY=1; the writing one starts every run with an empty folder, so
no client pays for overwriting another's files): ``storescu`` beside dicomstation
on both transports (``DICOMSTATION_DIMSE_TRANSPORT=fast`` and ``pynetdicom``).
For per-instance overhead run ``bench_dimse.py 2000 64``.

Parallel associations: one ``storescu`` beside ``DimseNode.store(associations=N)``
(N = 4; ``send --associations N``) into ``storescp --fork`` (one process per
association) and into Orthanc. Goal: >= 1.5x one storescu.

C-GET from dcmtk ``dcmqrscp`` (files indexed with ``dcmqridx``): ``getscu`` beside
dicomstation. Goal: >= 0.9x getscu. ``dimse_get_split.py`` splits that C-GET's time
per instance into the peer's turn and ours (a C-GET is ping-pong).

Prints seconds, instances/s, MB/s and the ratio to the dcmtk tool (best of REPEATS).
Every server listens on 127.0.0.1 only. One command, unattended:
``.venv/bin/python benchmarks/bench_dimse.py [N_SLICES] [SIZE] [REPEATS]``.
"""

from __future__ import annotations

import os
import resource
import shutil
import socket
import statistics
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
from tests.peers import OrthancServer, bindlocal_library, free_port, start_orthanc
from tests.synth import write_ct_series

from dicomstation.config import DimseServer, LocalNodeConfig
from dicomstation.database import Database
from dicomstation.errors import DicomStationError
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


def _local_env(work: Path) -> dict[str, str]:
    """dcmtk servers bind loopback only (LD_PRELOAD shim from tests/peers.py)."""
    return dict(os.environ, LD_PRELOAD=str(bindlocal_library(work / "bindlocal")))


def _wait_port(proc: subprocess.Popen[bytes], port: int, name: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{name} did not start")


def _start_storescp(
    work: Path, ignore: bool, fork: bool = False
) -> tuple[subprocess.Popen[bytes], int, Path | None]:
    """dcmtk storescp on loopback (TCP_NODELAY=1 from the environment): --ignore or writing."""
    port = free_port()
    args = ["storescp", "-aet", "STORESCP", "+xa", *(["--fork"] if fork else [])]
    out = None
    if ignore:
        args.append("--ignore")
    else:
        out = work / f"storescp-{port}"
        out.mkdir()
        args += ["-od", str(out)]
    quiet = subprocess.DEVNULL
    proc = subprocess.Popen([*args, str(port)], stdout=quiet, stderr=quiet, env=_local_env(work))
    _wait_port(proc, port, "storescp")
    return proc, port, out


def _emptied(folder: Path | None) -> Callable[[], None]:
    """A ``before`` hook: every run writes into an empty folder (no overwriting)."""

    def empty() -> None:
        if folder is not None:
            for path in folder.iterdir():
                path.unlink()

    return empty


def _storescu_to(port: int, folder: Path) -> None:
    args = ["storescu", "-aet", "STORESCU", "-aec", "STORESCP", "+sd", "-R", "127.0.0.1"]
    subprocess.run([*args, str(port), str(folder)], check=True, stdout=subprocess.DEVNULL)


def _ceiling(work: Path, folder: Path, paths: list[Path], nbytes: int, repeats: int) -> None:
    """C-STORE into storescp --ignore and a writing storescp: both transports beside storescu."""
    for ignore in (True, False):
        proc, port, out = _start_storescp(work, ignore)
        try:
            label = "storescp --ignore" if ignore else "storescp writing files"
            print(f"C-STORE to {label} (TCP_NODELAY=1)")
            _ceiling_rows(port, folder, paths, nbytes, repeats, _emptied(out))
        finally:
            proc.terminate()
            proc.wait(10)


def _ceiling_rows(
    port: int,
    folder: Path,
    paths: list[Path],
    nbytes: int,
    repeats: int,
    before: Callable[[], None],
) -> None:
    count = len(paths)
    ref = _best(lambda _: _storescu_to(port, folder), repeats, before)
    print(_row("dcmtk storescu", ref, count, nbytes, ref))
    node = DimseNode(DimseServer("scp", "STORESCP", "127.0.0.1", port, timeout=120))
    try:
        for transport in ("fast", "pynetdicom"):
            os.environ["DICOMSTATION_DIMSE_TRANSPORT"] = transport
            try:
                ours = _best(lambda _: _dicomstation_store(node, paths), repeats, before)
            except (AssertionError, DicomStationError) as exc:  # reported, not the end of the run
                print(f"dicomstation store ({transport})  failed: {exc}")
                continue
            print(_row(f"dicomstation store ({transport})", ours, count, nbytes, ref))
            print(f"  {transport} / storescu: {ref / ours:.2f}x (goal >= 0.9)")
    finally:
        os.environ.pop("DICOMSTATION_DIMSE_TRANSPORT", None)


def _parallel(
    work: Path, orthanc: OrthancServer, folder: Path, paths: list[Path], repeats: int
) -> None:
    """One storescu vs N parallel associations, into storescp --fork and into Orthanc."""
    n = 4
    proc, port, out = _start_storescp(work, ignore=False, fork=True)
    try:
        print(f"C-STORE with {n} parallel associations to storescp --fork (writing files)")
        scp = DimseServer("scp", "STORESCP", "127.0.0.1", port, timeout=120)
        _parallel_rows(scp, lambda: _storescu_to(port, folder), paths, n, repeats, _emptied(out))
    finally:
        proc.terminate()
        proc.wait(10)
    print(f"C-STORE with {n} parallel associations to Orthanc")
    server = DimseServer("orthanc", orthanc.aet, "127.0.0.1", orthanc.dicom_port, timeout=120)
    _parallel_rows(server, lambda: _storescu(orthanc, folder), paths, n, repeats, orthanc.clear)


def _parallel_rows(
    server: DimseServer,
    storescu: Callable[[], None],
    paths: list[Path],
    n: int,
    repeats: int,
    before: Callable[[], None],
) -> None:
    nbytes, count = sum(p.stat().st_size for p in paths), len(paths)
    ref = _best(lambda _: storescu(), repeats, before)
    print(_row("dcmtk storescu (1 association)", ref, count, nbytes, ref))
    one = _best(lambda _: _dicomstation_store(DimseNode(server), paths), repeats, before)
    print(_row("dicomstation store, 1 association", one, count, nbytes, ref))
    node = DimseNode(server, associations=n)
    ours = _best(lambda _: _dicomstation_store(node, paths), repeats, before)
    print(_row(f"dicomstation store, {n} associations", ours, count, nbytes, ref))
    print(f"  {n} associations / one storescu: {ref / ours:.2f}x (goal >= 1.5)")


def _start_dcmqrscp(work: Path, paths: list[Path]) -> tuple[subprocess.Popen[bytes], int]:
    """dcmtk dcmqrscp on loopback holding ``paths`` (copied, indexed with dcmqridx)."""
    port, store = free_port(), work / "qrdb"
    store.mkdir()
    copies = [shutil.copy(path, store / path.name) for path in paths]
    for start in range(0, len(copies), 500):  # command lines stay short
        subprocess.run(["dcmqridx", str(store), *map(str, copies[start : start + 500])], check=True)
    config = work / "dcmqrscp.cfg"
    config.write_text(
        f"NetworkTCPPort = {port}\nMaxPDUSize = 16384\nMaxAssociations = 16\n"
        "HostTable BEGIN\nHostTable END\nVendorTable BEGIN\nVendorTable END\n"
        f"AETable BEGIN\nQRSCP {store} RW (200, 4096mb) ANY\nAETable END\n"
    )
    quiet = subprocess.DEVNULL
    proc = subprocess.Popen(
        ["dcmqrscp", "-c", str(config)], stdout=quiet, stderr=quiet, env=_local_env(work)
    )
    _wait_port(proc, port, "dcmqrscp")
    return proc, port


def _getscu_from(port: int, study: str, series: str, out: Path) -> None:
    out.mkdir(parents=True)
    args = ["getscu", "-aet", "GETSCU", "-aec", "QRSCP", "-S", "-k", "QueryRetrieveLevel=SERIES"]
    args += ["-k", f"StudyInstanceUID={study}", "-k", f"SeriesInstanceUID={series}"]
    args += ["-od", str(out), "127.0.0.1", str(port)]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _dcmqrscp_get(work: Path, paths: list[Path], study: str, series: str, repeats: int) -> None:
    """C-GET of the series from dcmqrscp: getscu beside dicomstation."""
    nbytes, count = sum(p.stat().st_size for p in paths), len(paths)
    proc, port = _start_dcmqrscp(work, paths)
    try:
        print("C-GET from dcmqrscp")
        got = work / "qrget"
        getscu_cpu: list[float] = []
        ref = _best(
            lambda i: _cpu_of(
                lambda: _getscu_from(port, study, series, got / f"dcmtk{i}"),
                resource.RUSAGE_CHILDREN,
                getscu_cpu,
            ),
            repeats,
            _noop,
        )
        print(_row("dcmtk getscu", ref, count, nbytes, ref))
        node = DimseNode(DimseServer("qr", "QRSCP", "127.0.0.1", port, timeout=120))
        ours_cpu: list[float] = []
        ours = _best(
            lambda i: _cpu_of(
                lambda: _dicomstation_get(node, study, series, got / f"db{i}", count),
                resource.RUSAGE_SELF,
                ours_cpu,
            ),
            repeats,
            _noop,
        )
        print(_row("dicomstation retrieve (C-GET)", ours, count, nbytes, ref))
        print(f"  dicomstation / getscu: {ref / ours:.2f}x (goal >= 0.9)")
        print(
            "  client CPU per instance (user + system, median of the runs): getscu "
            f"{1e6 * statistics.median(getscu_cpu) / count:.0f} us, dicomstation "
            f"{1e6 * statistics.median(ours_cpu) / count:.0f} us (a C-GET is ping-pong: "
            "each instance costs the peer's turn plus the client's; see dimse_get_split.py)"
        )
    finally:
        proc.terminate()
        proc.wait(10)


def _noop() -> None:
    pass


def _cpu_of(run: Callable[[], None], who: int, seconds: list[float]) -> None:
    """Run, appending the CPU seconds (user + system) of ``who`` (RUSAGE_SELF/CHILDREN)."""
    before = resource.getrusage(who)
    run()
    after = resource.getrusage(who)
    seconds.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)


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
        _dcmqrscp_get(work, paths, study, series, repeats)
        _parallel(work, orthanc, folder, paths, repeats)
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
