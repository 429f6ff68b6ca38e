"""Benchmark: what ONE study costs in CPU, ours per step against the naive script per phase.

The cohort pipeline of ``bench_pipeline.py`` (fetch -> load -> segment -> export SEG + SR
-> send, real Orthancs) runs with ONE thread, so no GIL contention inflates any figure,
and the CPU time of each step is taken on the thread that runs it (``time.thread_time``).
The naive script (dicomweb-client + highdicom, ``bench_pipeline.naive``) runs its phases
on the same studies in the same process, each phase timed the same way. Both are warmed
up with one study first (imports, the standard's tables).

Why this matters: with 2 worker processes on 2 cores, ``dask-2 >= 3x naive`` needs our
CPU per study (plus Orthanc's) under 2/3 of the naive script's; the ``ours / naive`` line
is that ratio, and the per-step lines say where the CPU goes.

Run:  .venv/bin/python benchmarks/bench_study_cost.py [--studies 8] [--slices 64] [--size 128]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_pipeline as bp  # noqa: E402
from tests.peers import OrthancServer  # noqa: E402

_cpu: Counter[str] = Counter()
_wall: Counter[str] = Counter()  # wall time of each pipeline step
_lock = threading.Lock()


def _charge(name: str, started: float) -> None:
    with _lock:
        _cpu[name] += time.thread_time() - started


def _timed_steps() -> None:
    """Charge each built-in step's CPU time (on its own thread) to its class name."""
    from dicomstation.pipeline import steps

    for cls in (
        steps.FetchStep,
        steps.LoadStep,
        steps.SegmentStep,
        steps.ExportStep,
        steps.SendStep,
    ):
        _wrap(cls)
    from dicomstation.pipeline.exports import export_kind, register_export_kind

    for kind in ("seg", "sr"):  # the builders, through the registry (the rest is encoding)
        spec = export_kind(kind)
        build = _timed_build(f"  build {kind.upper()}", spec.build)
        register_export_kind(dataclasses.replace(spec, build=build))


def _timed_build(name: str, build: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def timed(request: Any) -> Any:
        started = time.thread_time()
        try:
            return build(request)
        finally:
            _charge(name, started)

    return timed


def _wrap(cls: Any) -> None:
    run = cls.run

    def timed(self: Any, ctx: Any) -> Any:
        started, wall = time.thread_time(), time.perf_counter()
        try:
            return run(self, ctx)
        finally:
            _charge(cls.__name__, started)
            with _lock:
                _wall[cls.__name__] += time.perf_counter() - wall

    cls.run = timed


def ours(uids: list[str], work: Path, configs: dict[str, Any], name: str) -> tuple[float, float]:
    """The pipeline with one thread; returns (process CPU s, wall s)."""
    from dicomstation.pipeline import Pipeline, RunOptions

    table = bp.pipeline(name, uids).to_dict()
    table["run"]["concurrency"] = 1
    started, wall = time.process_time(), time.perf_counter()
    report = Pipeline.from_dict(table).run(RunOptions(work / name, configs))
    if not report.ok or report.done != len(uids):
        raise SystemExit(f"{name}: {report.done} done, failed: {dict(report.failed)}")
    return time.process_time() - started, time.perf_counter() - wall


def naive(uids: list[str], source: OrthancServer, dest: OrthancServer) -> tuple[float, float]:
    """``bench_pipeline.naive``, phase by phase; returns (process CPU s, wall s)."""
    from dicomweb_client.api import DICOMwebClient
    from dicomweb_client.session_utils import create_session_from_auth
    from requests.auth import HTTPBasicAuth

    auth = HTTPBasicAuth(source.user, source.password)
    src = DICOMwebClient(source.dicomweb_url, session=create_session_from_auth(auth))
    dst = DICOMwebClient(dest.dicomweb_url, session=create_session_from_auth(auth))
    started, wall = time.process_time(), time.perf_counter()
    for uid in uids:
        with _phase("naive: retrieve"):
            images = sorted(src.retrieve_study(uid), key=lambda d: float(d.ImagePositionPatient[2]))
        with _phase("naive: pixels"):
            hu = np.stack(
                [d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in images]
            )
            mask = (hu >= bp.THRESHOLD[0]) & (hu <= bp.THRESHOLD[1])
        with _phase("naive: build SEG"):
            seg = bp._naive_seg(images, mask)
        with _phase("naive: build SR"):
            sr = bp._naive_sr(images, seg, hu, mask)
        with _phase("naive: store"):
            dst.store_instances([seg, sr])
    return time.process_time() - started, time.perf_counter() - wall


@contextlib.contextmanager
def _phase(name: str) -> Iterator[None]:
    started = time.thread_time()
    try:
        yield
    finally:
        _charge(name, started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=8)
    parser.add_argument("--slices", type=int, default=64)
    parser.add_argument("--size", type=int, default=128, help="rows = columns")
    args = parser.parse_args()
    with bp.orthanc_pair("bench-study-cost-") as (work, source, dest):
        bench(args, work, source, dest)


def bench(args: argparse.Namespace, work: Path, source: OrthancServer, dest: OrthancServer) -> None:
    print(
        f"cohort: {args.studies} CT studies of {args.slices} slices {args.size}x{args.size}; "
        f"load average {os.getloadavg()[0]:.1f} at start (CPU ms per study, one thread)",
        flush=True,
    )
    uids = bp.make_cohort(source, args.studies + 1, args.slices, args.size)
    configs = bp.servers(source, dest)
    _timed_steps()
    ours(uids[:1], work, configs, "warm-up")
    naive(uids[:1], source, dest)
    dest.clear()
    _cpu.clear()
    _wall.clear()
    cohort = uids[1:]
    mine, mine_wall = ours(cohort, work, configs, "ours")
    bp.check_destination(dest, cohort)
    dest.clear()
    theirs, theirs_wall = naive(cohort, source, dest)
    bp.check_destination(dest, cohort)
    count = len(cohort)
    for name, seconds in _cpu.items():
        wall = f"  wall {_wall[name] / count * 1000:.0f}" if name in _wall else ""
        print(f"  {name:<18} {seconds / count * 1000:7.1f}{wall}")
    for label, cpu, wall in (("ours", mine, mine_wall), ("naive", theirs, theirs_wall)):
        per_study = cpu / count * 1000, wall / count * 1000
        print(f"  {label + ' (process)':<18} {per_study[0]:7.1f}  wall {per_study[1]:.0f}")
    print(f"ours / naive CPU per study = {mine / theirs:5.2f}  (3x naive on 2 cores needs < 0.67)")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
