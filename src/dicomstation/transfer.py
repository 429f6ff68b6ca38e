"""Protocol-neutral transfer helpers: retries with backoff, thread concurrency, progress.

Used by the DICOMweb node (and reusable by the DIMSE node): a
:class:`RetryPolicy` with :func:`with_retries`, :func:`run_parallel` to keep
several series/instances in flight, and a thread-safe :class:`TransferTracker`
that both emits :class:`~dicomstation.models.ProgressEvent` (throttled) and
accumulates the :class:`~dicomstation.models.TransferReport`.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from dicomstation.errors import CancelledError, NodeError, RemoteStatusError
from dicomstation.models import Phase, ProgressEvent, TransferReport

if TYPE_CHECKING:
    from dicomstation.nodes.base import CancelToken, ProgressCallback

__all__ = [
    "RetryPolicy",
    "SerialWorker",
    "TransferTracker",
    "check_cancel",
    "run_parallel",
    "sleep_unless_cancelled",
    "with_retries",
]

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a failed request.

    Parameters
    ----------
    attempts : int
        Total tries (1 = no retry).
    backoff : float
        First delay in seconds; doubles each retry (exponential backoff).
    max_backoff : float
        Upper bound of one delay.
    jitter : float
        Random fraction added to each delay, so parallel clients do not retry in step.
    max_retry_after : float
        Longest wait a server may ask for (``Retry-After``); an error asking for
        more is not retried (a clear error instead of a long silent wait).
    """

    attempts: int = 4
    backoff: float = 0.5
    max_backoff: float = 10.0
    jitter: float = 0.2
    max_retry_after: float = 30.0

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        base = min(self.max_backoff, self.backoff * 2 ** (retry - 1))
        return float(base * (1 + self.jitter * random.random()))


def check_cancel(cancel: CancelToken | None, what: str = "transfer") -> None:
    """Raise :class:`CancelledError` if ``cancel`` was triggered."""
    if cancel is not None and cancel.cancelled:
        raise CancelledError(f"{what} cancelled")


def sleep_unless_cancelled(seconds: float, cancel: CancelToken | None) -> None:
    """Sleep, waking early (and raising CancelledError) if cancelled."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        check_cancel(cancel)
        time.sleep(min(left, 0.05))
    check_cancel(cancel)


def with_retries(
    attempt: Callable[[], T],
    *,
    policy: RetryPolicy,
    retryable: Callable[[BaseException], bool],
    cancel: CancelToken | None = None,
    on_retry: Callable[[int, BaseException], None] | None = None,
) -> T:
    """Call ``attempt()`` until it succeeds, retrying retryable errors with backoff.

    ``attempt`` must rebuild everything it sends (a request body generator is
    consumed by the first try), so a retry never resends an exhausted body.
    The last error is re-raised when attempts run out or it is not retryable.
    """
    retry = 0
    while True:
        check_cancel(cancel)
        try:
            return attempt()
        except Exception as exc:
            retry += 1
            if retry >= policy.attempts or not retryable(exc):
                raise
            # a server's Retry-After (429/503), when given, is waited at least
            asked = float(getattr(exc, "retry_after", 0.0))
            if asked > policy.max_retry_after:
                raise _wait_refused(exc, asked, policy.max_retry_after) from exc
            if on_retry is not None:
                on_retry(retry, exc)
            sleep_unless_cancelled(max(policy.delay(retry), asked), cancel)


def _wait_refused(exc: Exception, asked: float, cap: float) -> Exception:
    """The error for a server asking to wait longer than we do (names the server)."""
    if not isinstance(exc, NodeError):
        return exc
    where = f"{exc.operation} on {exc.server}" + (f" for {exc.uid}" if exc.uid else "")
    said = str(exc).removeprefix(where + ": ")
    return RemoteStatusError(
        f"{said} - asked to retry after {asked:.0f} s, longer than the {cap:g} s "
        "we wait (limits.max_retry_after); not retried",
        server=exc.server,
        operation=exc.operation,
        uid=exc.uid,
        status=exc.status,
    )


def run_parallel(
    items: Iterable[I],
    work: Callable[[I], None],
    *,
    workers: int,
    cancel: CancelToken | None = None,
) -> None:
    """Run ``work(item)`` for every item on ``workers`` threads.

    ``work`` records its own outcome (e.g. in a :class:`TransferTracker`); an
    exception escaping it stops the submission of new items, lets running ones
    finish, and is re-raised (the first one). Cancellation behaves the same way.
    """
    todo = list(items)
    if workers <= 1 or len(todo) <= 1:
        for item in todo:
            check_cancel(cancel)
            work(item)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="transfer") as pool:
        try:
            _drive(pool, iter(todo), work, workers, cancel)
        except BaseException:
            if cancel is not None:  # Ctrl-C or a failure: running workers stop early too
                cancel.cancel()
            raise
    check_cancel(cancel)


def _drive(
    pool: ThreadPoolExecutor,
    queue: Iterator[I],
    work: Callable[[I], None],
    workers: int,
    cancel: CancelToken | None,
) -> None:
    pending: set[Future[None]] = set()
    failure: BaseException | None = None
    exhausted = False
    while True:
        while (
            not exhausted and failure is None and len(pending) < workers and not _cancelled(cancel)
        ):
            try:
                pending.add(pool.submit(work, next(queue)))
            except StopIteration:
                exhausted = True
        if not pending:
            break
        done, pending = wait(pending, return_when=FIRST_EXCEPTION)
        for future in done:
            exc = future.exception()
            if exc is not None and failure is None:
                failure = exc
    if failure is not None:
        raise failure


def _cancelled(cancel: CancelToken | None) -> bool:
    return cancel is not None and cancel.cancelled


class TransferTracker:
    """Thread-safe progress events and report of one transfer.

    Byte progress is reported at most every ``interval`` seconds; instance
    completions, skips and failures are always reported. Nothing is emitted
    before :meth:`start` (skips found while planning are announced right after
    the STARTED event), so consumers always see STARTED first and DONE last.
    """

    def __init__(
        self, operation: str, progress: ProgressCallback | None = None, *, interval: float = 0.1
    ) -> None:
        self.operation = operation
        self._progress = progress
        self._interval = interval
        self._lock = threading.Lock()
        self._started = time.perf_counter()
        self._last_emit = 0.0
        self._announced = False
        self.total: int | None = None
        self.succeeded: list[str] = []
        self.skipped: list[str] = []
        self.failed: dict[str, str] = {}
        self.warnings: dict[str, str] = {}
        self.bytes = 0

    def _emit(self, phase: Phase, uid: str | None = None, message: str = "") -> None:
        if self._progress is None or not self._announced:
            return
        done = len(self.succeeded) + len(self.skipped) + len(self.failed)
        self._progress(
            ProgressEvent(self.operation, phase, done, self.total, self.bytes, uid, message)
        )

    def start(self, total: int | None) -> None:
        """Announce the number of instances (None when unknown)."""
        with self._lock:
            self.total = total
            self._announced = True
            self._emit(Phase.STARTED)
            if self.skipped:
                self._emit(Phase.SKIPPED, message="already present")
            for uid, reason in self.failed.items():
                self._emit(Phase.FAILED, uid, reason)

    def add_total(self, count: int) -> None:
        """Grow the expected instance count (when it is learnt series by series)."""
        with self._lock:
            self.total = (self.total or 0) + count

    def add_bytes(self, count: int) -> None:
        """Count payload bytes; emits a throttled PROGRESS event."""
        with self._lock:
            self.bytes += count
            now = time.perf_counter()
            if now - self._last_emit >= self._interval:
                self._last_emit = now
                self._emit(Phase.PROGRESS)

    def succeed(self, uids: Iterable[str]) -> None:
        """Record completed instances."""
        with self._lock:
            self.succeeded.extend(uids)
            self._emit(Phase.PROGRESS)

    def skip(self, uids: Iterable[str], reason: str = "already present") -> None:
        """Record instances not transferred because they were not needed."""
        with self._lock:
            self.skipped.extend(uids)
            self._emit(Phase.SKIPPED, message=reason)

    def fail(self, uid: str, reason: str) -> None:
        """Record a failed instance (or series / file) with a reason."""
        with self._lock:
            self.failed[uid] = reason
            self._emit(Phase.FAILED, uid, reason)

    def warn(self, uid: str, message: str) -> None:
        """Record a warning about an instance that was transferred anyway."""
        with self._lock:
            self.warnings[uid] = message

    def report(self) -> TransferReport:
        """The report so far; also emits the DONE event."""
        with self._lock:
            self._announced = True
            self._emit(Phase.DONE)
            return TransferReport(
                self.operation,
                tuple(self.succeeded),
                tuple(self.skipped),
                dict(self.failed),
                dict(self.warnings),
                self.bytes,
                time.perf_counter() - self._started,
            )


class SerialWorker(Generic[T]):
    """One background thread that applies ``handle`` to submitted items, in order.

    Used to overlap slow sequential work (e.g. indexing fetched files) with
    network transfers. Items submitted while the thread is busy are handed over
    together in the next call; ``linger`` seconds of waiting for more items make
    bigger batches (fewer, cheaper database transactions). :meth:`flush` waits
    for everything submitted so far and re-raises the first error of ``handle``.
    """

    def __init__(
        self,
        handle: Callable[[list[T]], None],
        name: str = "serial-worker",
        *,
        linger: float = 0.0,
        max_batch: int = 256,
    ) -> None:
        self._handle = handle
        self._linger = linger
        self._max_batch = max_batch
        self._queue: queue.Queue[T | None] = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, items: Iterable[T]) -> None:
        """Queue items for the worker thread."""
        for item in items:
            self._queue.put(item)

    def _run(self) -> None:
        while True:
            batch = self._collect()
            items = [i for i in batch if i is not None]
            try:
                if items and self._error is None:
                    self._handle(items)
            except BaseException as exc:  # kept, re-raised by flush()
                self._error = exc
            finally:
                for _ in batch:
                    self._queue.task_done()
            if len(items) < len(batch):
                return

    def _collect(self) -> list[T | None]:
        """The next batch: what is queued, waiting up to ``linger`` for more."""
        batch = [self._queue.get()]
        deadline = time.monotonic() + self._linger
        while batch[-1] is not None and len(batch) < self._max_batch:
            try:
                batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return batch

    def flush(self) -> None:
        """Wait until every submitted item was handled; re-raise a handler error."""
        self._queue.join()
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Handle what is queued, stop the thread; re-raise a handler error."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error
