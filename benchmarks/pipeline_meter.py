"""Measuring helpers of bench_pipeline: CPU seconds per process group, worker RSS.

A module of its own so that Dask workers (``client.run``) import it by name.
"""

from __future__ import annotations

import resource
from collections.abc import Callable
from typing import Any

Cpu = dict[str, float]  # CPU seconds by process group: driver, workers, orthanc


class CpuMeter:
    """CPU seconds of this process, its other children (Dask workers) and the Orthancs.

    ``orthancs``: the running Orthancs (tests.peers.OrthancServer).
    """

    def __init__(self, *orthancs: Any) -> None:
        import psutil

        self.me = psutil.Process()
        self.orthancs = [psutil.Process(o.process.pid) for o in orthancs]
        self.workers: dict[int, Any] = {}  # pid -> Process, kept to read them after they end

    @staticmethod
    def _cpu(process: Any) -> float:
        try:
            times = process.cpu_times()
        except Exception:  # ended meanwhile
            return 0.0
        return float(times.user + times.system)

    def read(self) -> Cpu:
        """CPU seconds so far (workers: those alive now, summed)."""
        skip = {p.pid for p in self.orthancs}
        for child in self.me.children(recursive=True):
            if child.pid not in skip:
                self.workers.setdefault(child.pid, child)
        return {
            "driver": self._cpu(self.me),
            "workers": sum(self._cpu(p) for p in self.workers.values()),
            "orthanc": sum(self._cpu(p) for p in self.orthancs),
        }

    def measure(self, run: Callable[[], float]) -> tuple[float, Cpu]:
        """(what ``run`` returns: seconds, CPU seconds by group spent meanwhile)."""
        before = self.read()
        seconds = run()
        after = self.read()
        return seconds, {k: after[k] - before[k] for k in before}


def peak_rss_mib() -> float:
    """Peak RSS of the calling process (MiB); run on each worker by client.run.

    VmHWM, the high-water mark of this process's own address space. Not
    ``getrusage().ru_maxrss``: Linux keeps that across ``execve``, so a worker started
    by fork + exec (multiprocessing's spawn) reported the driver's RSS at the moment it
    was started whenever that was larger (the second cluster of a run always "grew").
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    """RSS of the calling process now (MiB), after a garbage collection."""
    import gc

    import psutil

    gc.collect()
    return float(psutil.Process().memory_info().rss) / 2**20
