"""The Dask distributed executor: one task per work item on a Dask cluster.

``DaskExecutor("local:N")`` starts a :class:`distributed.LocalCluster` of N
worker processes (one thread each, bound to 127.0.0.1); ``DaskExecutor(
"tcp://HOST:PORT")`` uses a running scheduler (a SLURM or Kubernetes cluster).
Each task is :func:`~dicomstation.pipeline.task.run_task` on one small
:class:`TaskManifest`; it hands back a small :class:`TaskResult`. No pixels
cross a process boundary, and the ledger stays with the driver, which calls
``report`` on its own thread for each finished task.

A worker that dies is replaced by Dask (its nanny restarts it) and the task is
run again elsewhere; after the scheduler's ``allowed-failures`` deaths
(``attempts - 1`` on a cluster we start) the item fails with a message naming
it, and the run goes on. Retries of retryable errors (429/5xx) wait on the
driver until their back-off is over, not on a worker.

The workers of a cluster we start run without Dask's statistical profiler
(:data:`WORKER_CONFIG`): it samples the running task every 10 ms and keeps a
profile per second of run time (up to 1000 of them per worker), which made
worker memory grow with the cohort (about 0.5 MiB per study here) and cost CPU
on every sample. ``profile=True`` keeps it for the dashboard's Profile page.
Workers of an existing scheduler keep their own configuration
(``distributed.worker.profile.enabled: false`` in theirs does the same).

Manifests carry the servers' credentials (see :class:`TaskManifest`), and Dask
sends task arguments as they are: :func:`check_servers` refuses, before
anything is sent, a run whose servers have secrets on a scheduler reached over
``tcp://`` or ``ucx://`` through a network (loopback and ``tls://`` are fine).

Only ``dashboard_link`` and ``workers`` are read by other code (the web UI).
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dicomstation.config import ServerConfig
from dicomstation.errors import ConfigError, ConnectionFailedError
from dicomstation.nodes.base import CancelToken
from dicomstation.pipeline.cluster_info import forget_cluster, write_cluster
from dicomstation.pipeline.dask_run import DaskRun
from dicomstation.pipeline.model import StepEvent, TaskManifest, TaskResult

# distributed is only partly typed: its client and futures are handled as Any here.
Client = Any
Future = Any

__all__ = ["DaskExecutor", "check_servers", "executor_for"]

Report = Callable[[TaskResult], TaskManifest | None]
EventSink = Callable[[StepEvent], None]

#: How long connecting to a scheduler may take before the run fails.
CONNECT_TIMEOUT = 20.0

#: Dask settings of the worker processes of a LocalCluster we start (given to each
#: nanny, so a worker it restarts gets them too): no statistical profiler. Dotted keys:
#: the nanny merges them shallowly into its configuration, the worker sets them.
WORKER_CONFIG: dict[str, Any] = {"distributed.worker.profile.enabled": False}

#: Environment of the worker processes of a LocalCluster we start, over Dask's default
#: ``distributed.nanny.pre-spawn-environ``: no ``MALLOC_TRIM_THRESHOLD_``. Setting it
#: (Dask sets 65536) turns off glibc's dynamic mmap threshold, so every array above
#: 128 KiB was a fresh mmap, page-faulted and zeroed again: the numpy-heavy steps
#: (export, statistics, segment) took 1.5-5x their in-process CPU in a worker.
#: A variable set in the driver's own environment is still inherited by the workers.
NANNY_ENVIRON: dict[str, Any] = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


def executor_for(
    cluster: str | None, scheduler: str | None, announce: Path | None = None
) -> DaskExecutor | None:
    """The executor for the CLI's ``--cluster local:N`` / ``--scheduler ADDRESS`` (None: neither).

    ``announce``: where to write the running cluster's dashboard link (see
    :mod:`~dicomstation.pipeline.cluster_info`).

    Raises
    ------
    ConfigError
        When both are given, or either is malformed.
    """
    if cluster and scheduler:
        raise ConfigError("give --cluster or --scheduler, not both")
    if cluster:
        if not cluster.startswith("local:"):
            raise ConfigError(f"--cluster takes local:N (N worker processes), not {cluster!r}")
        return DaskExecutor(cluster, announce=announce)
    if scheduler:
        return DaskExecutor(scheduler, announce=announce)
    return None


def _parse(target: str) -> tuple[int, str]:
    """(local worker count, 0 for a scheduler address; scheduler address or '')."""
    if target.startswith("local:"):
        count = target.removeprefix("local:")
        if not count.isdigit() or not 1 <= int(count) <= 256:
            raise ConfigError(f"cluster {target!r}: local:N needs N from 1 to 256")
        return int(count), ""
    scheme, _, rest = target.partition("://")
    if scheme not in ("tcp", "tls", "ucx", "inproc") or not rest:
        raise ConfigError(
            f"scheduler {target!r} is not a Dask scheduler address (tcp://HOST:PORT or tls://...)"
        )
    return 0, target


def _in_clear(address: str) -> bool:
    """True for a scheduler reached over an unencrypted comm through a network.

    ``tcp://`` and ``ucx://`` carry task arguments as they are; loopback addresses
    (``127.0.0.0/8``, ``::1``, ``localhost``) do not leave the machine. Host names
    are not resolved: any other name counts as the network.
    """
    scheme, _, rest = address.partition("://")
    if scheme not in ("tcp", "ucx"):
        return False  # "" (a LocalCluster we start, on loopback), tls://, inproc://
    host = urlsplit(f"//{rest}").hostname or ""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def check_servers(address: str, servers: Mapping[str, ServerConfig]) -> None:
    """Refuse servers whose secrets tasks would carry to the scheduler at ``address`` in clear.

    A task's manifest holds the secrets of the servers its steps name, and Dask
    sends task arguments to the scheduler and a worker as they are: over
    ``tcp://`` to another machine anyone on the path could read them.

    Raises
    ------
    ConfigError
        When a server has a password, token or client secret and ``address`` is an
        unencrypted network comm (use a ``tls://`` scheduler).
    """
    if not _in_clear(address):
        return
    for name, server in servers.items():
        credentials = getattr(server, "credentials", None)
        if credentials is not None and credentials.has_secret:
            raise ConfigError(
                f"scheduler {address} is not encrypted: the credentials of server "
                f"{name!r} would cross the network in clear text; use a tls:// "
                "scheduler (Dask's TLS security settings)"
            )


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ConfigError(
            "the Dask executor needs the 'distributed' package: pip install 'dicomstation[dask]'"
        ) from None
    return distributed


class DaskExecutor:
    """Run work items as Dask tasks (see the module docstring).

    Parameters
    ----------
    target : str
        ``local:N`` (start a LocalCluster of N worker processes) or a scheduler
        address such as ``tcp://10.0.0.5:8786``.
    attempts : int or None
        Runs of one item allowed to die with their worker before it fails (on a
        cluster we start); default: the pipeline's ``run.attempts``.
    dashboard : bool
        Serve the Dask dashboard (a free port on 127.0.0.1) on a cluster we start.
    prefetch : int
        Items queued per worker beyond those running (0: a worker that dies takes no
        queued neighbour with it, which Dask would count as a death of that item too).
    memory_limit : str
        Per-worker memory limit of a cluster we start (Dask's nanny restarts a
        worker above it), e.g. ``"2GiB"``; ``"auto"`` shares the machine's memory.
    announce : Path or None
        While the cluster is up, its dashboard link is written there (for the web UI).
    profile : bool
        Keep Dask's statistical profiler on in the workers of a cluster we start (the
        dashboard's Profile page); off by default, see the module docstring.

    Use it as a context manager to keep one cluster for several runs.
    """

    def __init__(
        self,
        target: str = "local:2",
        *,
        attempts: int | None = None,
        dashboard: bool = True,
        prefetch: int = 0,
        memory_limit: str = "auto",
        announce: Path | None = None,
        profile: bool = False,
    ) -> None:
        self.workers_wanted, self.address = _parse(target)
        self.target = target
        self.attempts = attempts
        self.dashboard = dashboard
        self.prefetch = max(0, prefetch)
        self.memory_limit = memory_limit
        self.announce = announce
        self.profile = profile
        self._client: Client | None = None
        self._cluster: Any = None

    def __repr__(self) -> str:
        return f"DaskExecutor({self.target!r})"

    # -- cluster lifetime ------------------------------------------------------------
    def start(self, attempts: int | None = None) -> Client:
        """Start (or connect to) the cluster; idempotent. Returns the Dask client."""
        if self._client is not None:
            return self._client
        distributed = _import_distributed()
        if self.workers_wanted:
            allowed = max(0, (self.attempts or attempts or 3) - 1)
            self._cluster = self._local_cluster(distributed, allowed)
            self._client = distributed.Client(self._cluster)
        else:
            try:
                self._client = distributed.Client(self.address, timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as exc:
                raise ConnectionFailedError(
                    f"no answer within {CONNECT_TIMEOUT:.0f} s ({exc})",
                    server=self.address,
                    operation="Dask connect",
                ) from None
        _register_pool(self._client)
        if self.announce is not None:
            with contextlib.suppress(OSError):
                write_cluster(
                    self.announce, self.target, self._client.scheduler.address, self.dashboard_link
                )
        return self._client

    def _local_cluster(self, distributed: Any, allowed_failures: int) -> Any:
        """A LocalCluster on loopback; each worker holds only the item it runs.

        ``worker-saturation`` 1.0 (set for the scheduler's creation only) keeps
        other items queued at the scheduler, so a worker killed by one item does
        not count as a death of a neighbour that merely waited on it. The nannies
        are created with :data:`NANNY_ENVIRON` (see there).
        """
        import dask

        with dask.config.set(_creation_config(self.profile)):
            return distributed.LocalCluster(
                n_workers=self.workers_wanted,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",  # its HTTP server runs anyway: a free port
                memory_limit=self.memory_limit,
                config={} if self.profile else WORKER_CONFIG,
                scheduler_kwargs={
                    "allowed_failures": allowed_failures,
                    "dashboard": self.dashboard,
                },
            )

    def close(self) -> None:
        """Disconnect, and stop a cluster we started."""
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        if self.announce is not None:
            forget_cluster(self.announce)
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()

    def __enter__(self) -> DaskExecutor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def dashboard_link(self) -> str:
        """The Dask dashboard's URL ('' when not running or not served)."""
        if self._client is None or (self.workers_wanted and not self.dashboard):
            return ""
        with contextlib.suppress(Exception):
            return str(self._client.dashboard_link or "")
        return ""

    @property
    def workers(self) -> int:
        """Workers connected now (0 when not running)."""
        return len(self._client.nthreads()) if self._client is not None else 0

    @contextlib.contextmanager
    def _session(self, attempts: int | None) -> Iterator[Client]:
        if self._client is not None:
            yield self._client
            return
        try:
            yield self.start(attempts)
        finally:
            self.close()

    # -- running ---------------------------------------------------------------------
    def check_servers(self, servers: Mapping[str, ServerConfig]) -> None:
        """Refuse, before a run starts, servers whose secrets this cluster would get in clear.

        Raises
        ------
        ConfigError
            See :func:`check_servers`.
        """
        check_servers(self.address, servers)

    def run(
        self,
        manifests: Iterable[TaskManifest],
        report: Report,
        *,
        events: EventSink | None = None,
        cancel: CancelToken,
    ) -> None:
        """Run the manifests on the cluster; see :class:`~dicomstation.pipeline.Executor`."""
        waiting = iter(manifests)
        first = next(waiting, None)
        if first is None:
            return
        self.check_servers(first.servers)  # a run's manifests share its servers; before connecting
        attempts = _pipeline_attempts(first)
        with self._session(attempts) as client:
            run = DaskRun(client, report, events, cancel, self.prefetch)
            run.go(itertools.chain([first], waiting))


def _creation_config(profile: bool) -> dict[str, Any]:
    """Dask settings while our LocalCluster (scheduler, nannies) is created, only then."""
    config: dict[str, Any] = {"distributed.scheduler.worker-saturation": 1.0, **NANNY_ENVIRON}
    if not profile:  # the scheduler's event loop is sampled by the same profiler
        config.update(WORKER_CONFIG)
    return config


def _register_pool(client: Client) -> None:
    """Give every worker (present and future) one node pool: a client per server and process."""
    from dicomstation.pipeline.dask_plugin import NodePoolPlugin

    client.register_plugin(NodePoolPlugin())


def _pipeline_attempts(manifest: TaskManifest) -> int | None:
    import json

    value = json.loads(manifest.pipeline).get("run", {}).get("attempts")
    return int(value) if isinstance(value, int) else None
