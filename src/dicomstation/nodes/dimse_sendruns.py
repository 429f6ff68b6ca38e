"""Sending over several associations at once: the files in runs, one progress for all.

Used by :func:`dimse_store.send_files` (``associations=N``): each run is sent by
its own thread on its own association with its own send state; :class:`Relay`
sums their counts into one stream of progress events.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from dicomstation.errors import CancelledError
from dicomstation.models import Phase, ProgressEvent

__all__ = ["MAX_ASSOCIATIONS", "Relay", "fail_unsent", "split_runs"]

T = TypeVar("T")


#: At most this many parallel associations for one send.
MAX_ASSOCIATIONS = 32


def split_runs(items: list[T], count: int) -> list[list[T]]:
    """``items`` in at most ``count`` consecutive runs of near-equal size."""
    count = max(1, min(count, len(items)))
    bounds = [len(items) * i // count for i in range(count + 1)]
    return [items[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def fail_unsent(
    runs: list[list[Any]], states: list[Any], errors: list[BaseException | None]
) -> None:
    """A run whose association could not be made: its unsent instances fail, named."""
    for run, state, error in zip(runs, states, errors, strict=True):
        if error is None:
            continue
        if isinstance(error, CancelledError):
            raise error
        done = set(state.succeeded) | set(state.failed)
        for item in run:
            if item.sop_uid not in done:
                state.failed[item.sop_uid] = f"{error} ({item.path})"


class Relay:
    """Progress of several runs as one: counts summed over their states."""

    def __init__(
        self, states: Sequence[Any], progress: Callable[[ProgressEvent], None] | None
    ) -> None:
        self.states = states
        self.progress = progress
        self.lock = threading.Lock()
        for state in states:
            state.progress = self.forward if progress is not None else None

    def forward(self, event: ProgressEvent) -> None:
        with self.lock:
            done = sum(len(s.succeeded) + len(s.failed) for s in self.states)
            nbytes = sum(s.nbytes for s in self.states)
            if self.progress is not None:
                self.progress(replace(event, done=done, bytes_done=nbytes))

    def emit(self, phase: Phase) -> None:
        if self.progress is not None:
            self.forward(ProgressEvent("C-STORE", phase, 0, self.states[0].total))
