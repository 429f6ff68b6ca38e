"""DICOMweb server speed: dicomstation's server beside Orthanc (DICOMweb plugin), one run.

Usage: python benchmarks/bench_server.py [N_STUDIES] [N_SLICES] [SIZE] [REPEATS]

1. QIDO-RS study lists over N_STUDIES (default 10,000) one-instance studies, held
   both in a dicomstation database (served by ``dicomstation.server``) and in
   Orthanc: the first page (limit=25) and a filtered query (patient ID prefix +
   date range + modality), median of REPEATS * 5 requests each.
2. WADO-RS retrieval of one series (default 200 slices of 512x512, ~100 MB) from
   both servers, streamed and split into parts by the same client code
   (``nodes.multipart.iter_parts``), best of REPEATS.

Prints seconds, MB/s and the ratio dicomstation / Orthanc (time: lower is better).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydicom.uid import generate_uid
from tests.peers import OrthancServer, start_orthanc
from tests.synth import ct_dataset, write_ct_series

from dicomstation.database import Database
from dicomstation.nodes.multipart import boundary_of, iter_parts
from dicomstation.server.running import free_port

ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def write_studies(folder: Path, count: int) -> list[Path]:
    """One tiny instance per study, patients DOE^0..N, dates spread over ten years."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        ds = ct_dataset(
            0,
            study_uid=generate_uid(),
            series_uid=generate_uid(),
            size=8,
            patient_name=f"DOE^{i}",
            patient_id=f"P{i:05d}",
            study_date=f"{2015 + i % 10}{1 + i % 12:02d}{1 + i % 28:02d}",
        )
        path = folder / f"{i:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def upload(orthanc: OrthancServer, paths: list[Path]) -> None:
    """Store files in Orthanc through its REST API, 4 at a time."""
    with orthanc.rest() as client:

        def post(path: Path) -> None:
            client.post("/instances", content=path.read_bytes()).raise_for_status()

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(post, paths))


def median_time(call: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median seconds of ``repeats`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def qido(client: httpx.Client, url: str, params: dict[str, str]) -> int:
    response = client.get(url, params=params, headers={"Accept": "application/dicom+json"})
    response.raise_for_status()
    return len(response.json())


def wado(client: httpx.Client, url: str) -> tuple[int, int]:
    """Stream a series; return (parts, bytes) as parsed by the shared multipart parser."""
    parts = size = 0
    with client.stream("GET", url, headers={"Accept": ACCEPT}) as response:
        response.raise_for_status()
        boundary = boundary_of(response.headers["content-type"])
        for part in iter_parts(response.iter_bytes(1 << 20), boundary):
            parts += 1
            size += sum(len(c) for c in part.chunks())
    return parts, size


def row(name: str, ours: float, theirs: float, extra: str = "") -> None:
    print(
        f"{name:<34} {ours * 1000:>10.1f} ms {theirs * 1000:>10.1f} ms "
        f"{ours / theirs:>7.2f}x  {extra}"
    )


_SERVE = (
    "import sys, uvicorn\n"
    "from dicomstation.database import Database\n"
    "from dicomstation.server import ServerOptions, create_app\n"
    "db = Database.open(sys.argv[1])\n"
    "uvicorn.run(create_app(db, ServerOptions(port=int(sys.argv[2]))), host='127.0.0.1',"
    " port=int(sys.argv[2]), log_level='warning')\n"
)


def serve(db_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Run the dicomstation server in its own process, as deployed (and as Orthanc runs)."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", _SERVE, str(db_path), str(port)])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/dicom-web/studies?limit=1").raise_for_status()
            return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the dicomstation server did not start")


def main() -> None:
    defaults = [10_000, 200, 512, 3]
    given = [int(a) for a in sys.argv[1:5]]
    n_studies, n_slices, size, repeats = given + defaults[len(given) :]
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        root = Path(tmp)
        (root / "orthanc").mkdir()
        orthanc = start_orthanc(root / "orthanc")
        process = None
        try:
            with Database.open(root / "db") as db:
                prepare(root, orthanc, db, n_studies, n_slices, size)
            process, url = serve(root / "db")
            run(root, orthanc, url, n_slices, repeats)
        finally:
            if process is not None:
                process.terminate()
                process.wait(timeout=20)
            orthanc.stop()


def prepare(
    root: Path, orthanc: OrthancServer, db: Database, n_studies: int, n_slices: int, size: int
) -> None:
    """Write the data and put it in both servers."""
    started = time.perf_counter()
    studies = write_studies(root / "studies", n_studies)
    write_ct_series(root / "series", n_slices, size=size)
    series = sorted((root / "series").iterdir())
    db.import_path([*studies, *series])
    upload(orthanc, studies + series)
    print(
        f"setup: {n_studies} studies + a {n_slices}-slice {size}x{size} series in both "
        f"servers ({time.perf_counter() - started:.0f} s)\n"
    )


def run(root: Path, orthanc: OrthancServer, ours_url: str, n_slices: int, repeats: int) -> None:
    """Time the requests against both servers and print the table."""
    series = sorted((root / "series").iterdir())
    ours = f"{ours_url}/dicom-web"
    theirs = orthanc.dicomweb_url
    print(f"{'request':<34} {'dicomstation':>13} {'Orthanc':>13} {'ratio':>8}")
    queries = {
        "QIDO first page (limit=25)": {"limit": "25"},
        "QIDO filtered (dates, CT)": {
            "ModalitiesInStudy": "CT",
            "StudyDate": "20200101-20200630",
            "limit": "25",
        },
        "QIDO filtered (ID*, dates)": {"PatientID": "P0012*", "StudyDate": "20200101-20211231"},
    }
    auth = (orthanc.user, orthanc.password)
    with httpx.Client(timeout=300) as mine, httpx.Client(timeout=300, auth=auth) as peer:
        for name, params in queries.items():
            ours_t, ours_n = median_time(
                lambda p=params: qido(mine, f"{ours}/studies", p), repeats * 5
            )
            theirs_t, theirs_n = median_time(
                lambda p=params: qido(peer, f"{theirs}/studies", p), repeats * 5
            )
            row(name, ours_t, theirs_t, f"{ours_n} / {theirs_n} results")
        from pydicom import dcmread

        first = dcmread(series[0], stop_before_pixels=True)
        path = f"/studies/{first.StudyInstanceUID}/series/{first.SeriesInstanceUID}"
        mb = sum(p.stat().st_size for p in series) / 1e6
        results = []
        for base, client in ((ours, mine), (theirs, peer)):
            times = []
            for _ in range(repeats):
                begin = time.perf_counter()
                parts, _size = wado(client, base + path)
                times.append(time.perf_counter() - begin)
                assert parts == n_slices, parts
            results.append(min(times))
        row(
            f"WADO-RS series ({mb:.0f} MB)",
            results[0],
            results[1],
            f"{mb / results[0]:.0f} vs {mb / results[1]:.0f} MB/s",
        )


if __name__ == "__main__":
    main()
