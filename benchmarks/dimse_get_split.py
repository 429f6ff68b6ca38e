"""Where a C-GET's time goes per instance: the peer's turn against ours (dcmqrscp, loopback).

Usage: python benchmarks/dimse_get_split.py [N_SLICES] [SIZE] [REPEATS]

A C-GET is ping-pong: the SCP sends the next C-STORE sub-operation only once it
has our C-STORE-RSP for the last one, so each instance costs the peer's turn
plus ours, and nothing overlaps. ``bench_dimse.py`` gives the ratio to getscu;
this script says why it is what it is. It times getscu, then dicomstation's
C-GET of the same series from the same dcmqrscp with time stamps taken in our
own exchange (:class:`dicomstation.nodes.dimse_fastget.Exchange`, wrapped on
this process's class only):

* peer: from our C-STORE-RSP sent to the next C-STORE-RQ parsed;
* ours, data: from that command to its data set complete (its bytes arriving);
* ours, answer: from the data set complete to our C-STORE-RSP sent (write,
  fsync, check, queue for indexing, answer).

It also prints the receiving thread's CPU time per instance. Medians and means
over the instances of the last run. Every server listens on 127.0.0.1 only.
"""

from __future__ import annotations

import itertools
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_dimse as bd
from pydicom import dcmread

from dicomstation.nodes import dimse_fastget

_STAMPS: list[tuple[str, float]] = []


def _stamped(label: str, method: Callable[..., Any], after: bool) -> Callable[..., Any]:
    def wrapper(*args: Any) -> Any:
        if not after:
            _STAMPS.append((label, time.perf_counter()))
        result = method(*args)
        if after:
            _STAMPS.append((label, time.perf_counter()))
        return result

    return wrapper


def _instrument() -> None:
    exchange = dimse_fastget.Exchange
    exchange._start_store = _stamped("command", exchange._start_store, after=False)  # type: ignore[method-assign]
    exchange._finish_store = _stamped("data", exchange._finish_store, after=False)  # type: ignore[method-assign]
    exchange._respond = _stamped("answer", exchange._respond, after=True)  # type: ignore[method-assign]


def _turns(stamps: list[tuple[str, float]]) -> dict[str, list[float]]:
    turns: dict[str, list[float]] = {"peer": [], "ours, data": [], "ours, answer": []}
    names = {("answer", "command"): "peer", ("command", "data"): "ours, data"}
    names[("data", "answer")] = "ours, answer"
    for (first, t1), (second, t2) in itertools.pairwise(stamps):
        name = names.get((first, second))
        if name is not None:
            turns[name].append(t2 - t1)
    return turns


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    os.environ["TCP_NODELAY"] = "1"  # dcmtk's sockets: no delayed-ACK waits
    shm = Path("/dev/shm")
    work = Path(tempfile.mkdtemp(prefix="bench-split-", dir=shm if shm.is_dir() else None))
    paths = bd.write_ct_series(work / "series", count, size=size)
    first = dcmread(paths[0], stop_before_pixels=True)
    study, series = str(first.StudyInstanceUID), str(first.SeriesInstanceUID)
    proc, port = bd._start_dcmqrscp(work, paths)
    _instrument()
    try:
        node = bd.DimseNode(bd.DimseServer("qr", "QRSCP", "127.0.0.1", port, timeout=120))
        print(f"C-GET of {count} instances of {size}x{size} from dcmqrscp, {repeats} runs")
        for run in range(repeats):
            started = time.perf_counter()
            bd._getscu_from(port, study, series, work / f"getscu{run}")
            getscu = time.perf_counter() - started
            _STAMPS.clear()
            cpu, started = time.thread_time(), time.perf_counter()
            bd._dicomstation_get(node, study, series, work / f"db{run}", count)
            ours, cpu = time.perf_counter() - started, time.thread_time() - cpu
            print(
                f"  getscu {getscu:.3f} s, dicomstation {ours:.3f} s ({getscu / ours:.2f}x); "
                f"receiving thread CPU {1e6 * cpu / count:.0f} us per instance"
            )
        print("per instance, last run (us):")
        for name, values in _turns(_STAMPS).items():
            print(
                f"  {name:<13} median {1e6 * statistics.median(values):6.0f}   "
                f"mean {1e6 * statistics.mean(values):6.0f}"
            )
        print(f"  getscu's whole cycle: {1e6 * getscu / count:.0f}")
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
