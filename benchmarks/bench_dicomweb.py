"""DICOMweb fetch and store: dicomstation vs dicomweb-client vs curl, against a real Orthanc.

Run:  .venv/bin/python benchmarks/bench_dicomweb.py [--slices 300] [--repeat 3]

Starts an Orthanc with the DICOMweb plugin on loopback, makes a synthetic CT
series (512x512 int16 slices) in code, then measures, each client in its own
subprocess (so peak RSS is the client's own):

* WADO-RS fetch of the whole series into files: curl of the series URL (the
  ceiling: one stream to one file, no parsing), dicomweb-client
  ``retrieve_series`` + writing each dataset, and dicomstation ``retrieve`` into
  a local database (listing, streamed parsing, indexing included);
* STOW-RS of the same files: dicomweb-client ``store_instances`` (one request
  holding every dataset) and dicomstation ``store`` (streamed batches).

Prints a table with instances/s, MB/s, peak RSS and the ratios the goals use.
A smaller series is fetched too, to show that dicomstation's peak RSS does not
grow with the series size, and a series of many small instances (default 2,000
of 64x64: per-instance overhead) is fetched by curl and by dicomstation.

Goals: big series fetch median >= 1.0x curl; small instances >= 0.8x curl of the
same instances; STOW >= 2x dicomweb-client. One command, unattended:
``.venv/bin/python benchmarks/bench_dicomweb.py`` (``--tiny 0`` skips the small
instances).

Every file goes under the temporary folder (``TMPDIR``), named in the header
with its file system and the time it takes to create 2,000 small files there: a
fetch creates one file per instance where curl creates one in all, so
file-creation cost shows. On an ext4 without a journal, each new file skips the
inodes deleted in its block group in the last minute or more, one by one: in a
/tmp where other processes delete many files, 2,000 creations took 2-7 s against
0.07 s on tmpfs. So the benchmark deletes nothing until it ends (each run's
output stays; the store runs, which clear their Orthanc, use one of their own
and run last), and ``TMPDIR=/dev/shm/x`` (tmpfs) measures the clients without
the effect.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

STUDY = "1.2.826.0.1.3680043.8.498.77"
ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def _file_system(path: str) -> str:
    """The type of the file system holding ``path`` (from /proc/mounts; '?' elsewhere)."""
    best, kind = "", "?"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return kind
    real = os.path.realpath(path)
    for line in mounts:
        fields = line.split()
        if len(fields) > 2 and real.startswith(fields[1]) and len(fields[1]) > len(best):
            best, kind = fields[1], fields[2]
    return kind


def _peak_mb(children: bool = False) -> float:
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024


# -- workers (run in a subprocess each) -------------------------------------------------------
def worker_curl(cfg: dict[str, Any]) -> dict[str, Any]:
    out = Path(cfg["out"]) / "series.multipart"
    url = f"{cfg['url']}/studies/{STUDY}/series/{cfg['series']}"
    started = time.perf_counter()
    subprocess.run(
        [
            "curl",
            "-sS",
            "--fail",
            "-u",
            f"{cfg['user']}:{cfg['password']}",
            "-H",
            f"Accept: {ACCEPT}",
            "-o",
            str(out),
            url,
        ],
        check=True,
    )
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "bytes": out.stat().st_size,
        "instances": cfg["count"],
        "rss": _peak_mb(children=True),
    }


def _dwc_client(cfg: dict[str, Any]) -> Any:
    from dicomweb_client.api import DICOMwebClient
    from dicomweb_client.session_utils import create_session_from_user_pass

    session = create_session_from_user_pass(cfg["user"], cfg["password"])
    return DICOMwebClient(url=cfg["url"], session=session)


def worker_dwc_fetch(cfg: dict[str, Any]) -> dict[str, Any]:
    client = _dwc_client(cfg)
    out = Path(cfg["out"])
    started = time.perf_counter()
    datasets = client.retrieve_series(STUDY, cfg["series"])
    size = 0
    for ds in datasets:
        path = out / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path)
        size += path.stat().st_size
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "bytes": size, "instances": len(datasets), "rss": _peak_mb()}


def _node(cfg: dict[str, Any]) -> Any:
    from dicomstation.config import Credentials, DicomWebServer, Secret
    from dicomstation.nodes.dicomweb import DicomWebNode

    creds = Credentials(username=cfg["user"], password=Secret(cfg["password"]))
    return DicomWebNode.from_config(
        DicomWebServer("orthanc", cfg["url"], creds), concurrency=cfg.get("concurrency", 4)
    )


def worker_ds_fetch(cfg: dict[str, Any]) -> dict[str, Any]:
    from dicomstation.database import Database

    # a database in the run's folder, removed with the others at the end (see remove_outputs)
    with _node(cfg) as node, Database.open(Path(cfg["out"]) / "db") as db:
        started = time.perf_counter()
        report = node.retrieve(STUDY, [cfg["series"]], into=db)
        seconds = time.perf_counter() - started
    assert report.ok and len(report.succeeded) == cfg["count"], report.failed
    return {
        "seconds": seconds,
        "bytes": report.bytes_transferred,
        "instances": len(report.succeeded),
        "rss": _peak_mb(),
    }


def worker_dwc_store(cfg: dict[str, Any]) -> dict[str, Any]:
    import pydicom

    client = _dwc_client(cfg)
    files = sorted(Path(cfg["files"]).glob("*.dcm"))
    started = time.perf_counter()
    datasets = [pydicom.dcmread(f) for f in files]  # its API takes datasets
    client.store_instances(datasets)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "bytes": sum(f.stat().st_size for f in files),
        "instances": len(files),
        "rss": _peak_mb(),
    }


def worker_ds_store(cfg: dict[str, Any]) -> dict[str, Any]:
    files = sorted(Path(cfg["files"]).glob("*.dcm"))
    with _node(cfg) as node:
        started = time.perf_counter()
        report = node.store(files)
        seconds = time.perf_counter() - started
    assert report.ok and len(report.succeeded) == len(files), report.failed
    return {
        "seconds": seconds,
        "bytes": report.bytes_transferred,
        "instances": len(report.succeeded),
        "rss": _peak_mb(),
    }


WORKERS = {
    f.__name__.removeprefix("worker_"): f
    for f in (worker_curl, worker_dwc_fetch, worker_ds_fetch, worker_dwc_store, worker_ds_store)
}


# -- driver -------------------------------------------------------------------------------------
#: every run's output folder, removed when the benchmark ends (see remove_outputs)
_OUTPUTS: list[str] = []


def remove_outputs() -> None:
    """Remove the runs' output folders (files fetched, databases).

    Not done between runs: ext4 without a journal makes each new file skip the inodes
    deleted in its block group in the last 60 s or more, so deleting one run's 2,000
    files made the next run's 2,000 creations cost seconds -- a cost of the benchmark
    itself, paid by the client that creates one file per instance and not by curl.
    """
    while _OUTPUTS:
        shutil.rmtree(_OUTPUTS.pop(), ignore_errors=True)


def upload(cfg: dict[str, Any], files: list[Path], attempts: int = 3) -> None:
    """Store ``files`` in the benchmark's Orthanc (set-up, not measured).

    Instances Orthanc refuses are sent again: a loaded Orthanc answered some of
    2,000 small instances with a failure (HTTP 200, FailedSOPSequence) once, and
    the unattended run stopped there.
    """
    import pydicom

    left = list(files)
    for _ in range(attempts):
        with _node(cfg) as node:
            report = node.store(left)
        if report.ok:
            return
        failed = set(report.failed)
        left = [
            f for f in left if pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID in failed
        ]
    raise SystemExit(f"Orthanc refused {len(left)} instance(s) {attempts} times: {report.failed}")


def creation_probe(count: int = 2000) -> float:
    """Seconds to create ``count`` small files in a new temporary folder (kept until the end)."""
    folder = tempfile.mkdtemp(prefix="bench-probe-")
    _OUTPUTS.append(folder)
    started = time.perf_counter()
    for index in range(count):
        with open(os.path.join(folder, f"{index}.part"), "xb") as handle:
            handle.write(b"x" * 64)
    return time.perf_counter() - started


def run_worker(name: str, cfg: dict[str, Any]) -> dict[str, Any]:
    out = tempfile.mkdtemp(prefix=f"bench-{name}-")
    _OUTPUTS.append(out)
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", name, json.dumps({**cfg, "out": out})],
            check=True,
            capture_output=True,
            text=True,
        )
        return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"{name} failed:\n{exc.stderr}") from None


def measure(
    jobs: dict[str, tuple[str, dict[str, Any]]], repeat: int, before: Any = None
) -> dict[str, dict[str, Any]]:
    """Run every job ``repeat`` times, interleaved and rotated (A B C, B C A, ...) so that a
    server's drift hits all clients alike; keep each job's fastest run, median and peak RSS."""
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in jobs}
    labels = list(jobs)
    for round_ in range(repeat):
        shift = round_ % len(labels)  # rotate the order too: no client always goes first
        for label in labels[shift:] + labels[:shift]:
            worker, cfg = jobs[label]
            if before is not None:
                before()
            runs[label].append(run_worker(worker, cfg))
    result = {}
    for label, items in runs.items():
        fastest = dict(min(items, key=lambda r: r["seconds"]))
        fastest["median_s"] = statistics.median(r["seconds"] for r in items)
        fastest["rss"] = max(r["rss"] for r in items)
        result[label] = fastest
    return result


def row(label: str, r: dict[str, Any]) -> str:
    mb = r["bytes"] / 1e6
    return (
        f"{label:<34} {r['instances'] / r['seconds']:>9.0f} {mb / r['seconds']:>9.1f} "
        f"{r['seconds']:>7.2f} {r['median_s']:>7.2f} {r['rss']:>9.0f}"
    )


def ratio(a: dict[str, Any], b: dict[str, Any]) -> str:
    """MB/s of ``a`` over ``b``: best runs, and medians."""
    best = (a["bytes"] / a["seconds"]) / (b["bytes"] / b["seconds"])
    median = (a["bytes"] / a["median_s"]) / (b["bytes"] / b["median_s"])
    return f"{best:.2f} (median {median:.2f})"


def report(
    fetched: dict[str, dict[str, Any]],
    stored: dict[str, dict[str, Any]],
    args: argparse.Namespace,
    tiny: dict[str, dict[str, Any]],
) -> None:
    print(f"{'client':<34} {'inst/s':>9} {'MB/s':>9} {'best s':>7} {'median':>7} {'peak MB':>9}")
    for label, result in {**fetched, **stored, **tiny}.items():
        print(row(label, result))
    curl, dwc, ds, small = fetched.values()
    s_dwc, s_ds = stored.values()

    print("\nratios of MB/s, best runs (medians in brackets):")
    print(f"fetch: dicomstation / curl            = {ratio(ds, curl)}   goal: median >= 1.0")
    if tiny:
        t_curl, t_ds = tiny.values()
        print(
            f"fetch {args.tiny} x {args.tiny_size}x{args.tiny_size}: dicomstation / curl = "
            f"{ratio(t_ds, t_curl)}   goal >= 0.8"
        )
    print(f"fetch: dicomstation / dicomweb-client = {ratio(ds, dwc)}   goal >= 3")
    print(f"store: dicomstation / dicomweb-client = {ratio(s_ds, s_dwc)}   goal >= 2")
    print(
        f"peak RSS dicomstation fetch: {ds['rss']:.0f} MB for {args.slices} slices, "
        f"{small['rss']:.0f} MB for {args.small} slices; store {s_ds['rss']:.0f} MB; "
        f"dicomweb-client: {dwc['rss']:.0f} MB (fetch), {s_dwc['rss']:.0f} MB (store)"
    )


def _tiny(work: Path, cfg: dict[str, Any], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Many small instances: stored once (by dicomstation, STOW), fetched by curl and by us."""
    from tests.dicomweb.synth import make_series

    series = STUDY + ".3"
    files = make_series(
        work / "tiny", study_uid=STUDY, series_uid=series, count=args.tiny, size=args.tiny_size
    )
    upload(cfg, files)
    fetch = {**cfg, "series": series, "count": args.tiny}
    return measure(
        {
            f"fetch  curl, {args.tiny} small": ("curl", fetch),
            f"fetch  dicomstation, {args.tiny} small": ("ds_fetch", fetch),
        },
        args.repeat,
    )


def _stores(work: Path, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """STOW-RS runs, into a new empty Orthanc cleared before each run.

    Not the fetches' Orthanc: clearing it would delete every instance fetched
    before, and on ext4 without a journal each of Orthanc's next file creations
    would skip those freshly deleted inodes, adding the same seconds to both clients.
    """
    from tests.peers import start_orthanc

    (work / "orthanc-stow").mkdir()
    server = start_orthanc(work / "orthanc-stow")
    try:

        def reset() -> None:
            server.clear()
            time.sleep(0.5)  # let Orthanc settle after deleting, before the next upload

        store = {
            "url": server.dicomweb_url,
            "user": server.user,
            "password": server.password,
            "concurrency": args.concurrency,
            "files": str(work / "big"),
        }
        return measure(
            {
                "store  dicomweb-client": ("dwc_store", store),
                "store  dicomstation": ("ds_store", store),
            },
            args.repeat,
            reset,
        )
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--small", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--tiny", type=int, default=2000, help="small instances (0: skip)")
    parser.add_argument("--tiny-size", type=int, default=64)
    args = parser.parse_args()

    from tests.dicomweb.synth import make_series
    from tests.peers import start_orthanc

    work = Path(tempfile.mkdtemp(prefix="bench-dicomweb-"))
    (work / "orthanc").mkdir()
    server = start_orthanc(work / "orthanc")
    try:
        big, small = STUDY + ".1", STUDY + ".2"
        files = make_series(work / "big", study_uid=STUDY, series_uid=big, count=args.slices)
        few = make_series(work / "small", study_uid=STUDY, series_uid=small, count=args.small)
        size_mb = sum(f.stat().st_size for f in files) / 1e6
        cfg = {
            "url": server.dicomweb_url,
            "user": server.user,
            "password": server.password,
            "concurrency": args.concurrency,
        }
        print(
            f"Orthanc {server.url}; series of {args.slices} x 512x512 CT = {size_mb:.0f} MB; "
            f"{args.repeat} interleaved runs; {os.cpu_count()} CPUs; temporary files in "
            f"{tempfile.gettempdir()} ({_file_system(tempfile.gettempdir())}); creating 2,000 "
            f"small files there takes {creation_probe():.2f} s (curl creates 1 per fetch)\n"
        )

        # fetches first, stores last: a store run's reset deletes Orthanc's files,
        # which would tax the next creations of files (see remove_outputs)
        upload(cfg, [*files, *few])
        fetch = {**cfg, "series": big, "count": args.slices}
        fetched = measure(
            {
                "fetch  curl (ceiling)": ("curl", fetch),
                "fetch  dicomweb-client": ("dwc_fetch", fetch),
                f"fetch  dicomstation (c={args.concurrency})": ("ds_fetch", fetch),
                f"fetch  dicomstation, {args.small} slices": (
                    "ds_fetch",
                    {**cfg, "series": small, "count": args.small},
                ),
            },
            args.repeat,
        )
        tiny = _tiny(work, cfg, args) if args.tiny else {}
        server.stop()  # the store runs get an Orthanc of their own (see _stores)
        stored = _stores(work, args)
        report(fetched, stored, args, tiny)
    finally:
        server.stop()
        remove_outputs()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        print(json.dumps(WORKERS[sys.argv[2]](json.loads(sys.argv[3]))))
    else:
        main()
