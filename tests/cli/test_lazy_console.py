"""The CLI's consoles become rich Consoles on first use, safely from several threads at once.

Found running a pipeline over ../shared/data with ``dicomstation run --json``: one item
failed with ``AttributeError: print``. Its two worker threads issued their first warnings
at the same moment; the CLI prints warnings to ``err_console``, a lazy console. The
first thread took the console's arguments and built the Console; the second found the
arguments gone and the class not swapped yet, and raised AttributeError('print').
"""

from __future__ import annotations

import io
import sys
import threading
import time
from collections.abc import Callable

from dicomstation.cli.common import _LazyConsole

THREADS = 8
ROUNDS = 30


def _first_use_from_threads() -> tuple[list[BaseException], str]:
    out = io.StringIO()
    console = _LazyConsole(file=out, width=80, force_terminal=False)
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def use(n: int) -> None:
        start.wait(timeout=10)
        try:
            console.print(f"line {n}")
        except BaseException as exc:  # what the test is looking for
            errors.append(exc)

    threads = [threading.Thread(target=use, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    return errors, out.getvalue()


class _PausingFile(io.StringIO):
    """A console's file whose first ``isatty()`` (asked while the Console is being built)
    runs ``pause``: the moment another thread's first use must wait for that build."""

    def __init__(self) -> None:
        super().__init__()
        self.pause: Callable[[], None] = lambda: None

    def isatty(self) -> bool:
        pause, self.pause = self.pause, lambda: None
        pause()
        return False


def test_a_use_during_the_build_waits_for_it() -> None:
    """Deterministic: the second use comes while the first is inside Console.__init__."""
    out = _PausingFile()
    console = _LazyConsole(file=out, width=80)
    second_done = threading.Event()
    errors: list[BaseException] = []

    def second() -> None:
        try:
            console.print("second")
        except BaseException as exc:  # what the test is looking for
            errors.append(exc)
        finally:
            second_done.set()

    worker = threading.Thread(target=second)

    def pause() -> None:  # inside the first build: start the second use, wait until it waits
        worker.start()
        deadline = time.monotonic() + 10
        while not second_done.wait(0.001) and time.monotonic() < deadline:
            frame = sys._current_frames().get(worker.ident or 0)
            if frame is not None and frame.f_code.co_name == "__getattr__":
                break  # the second use is inside the lazy console: waiting, or failing

    out.pause = pause
    console.print("first")
    worker.join(timeout=10)
    assert errors == [] and not worker.is_alive()
    assert sorted(out.getvalue().split()) == ["first", "second"]


def test_first_use_from_many_threads_at_once() -> None:
    for _ in range(ROUNDS):
        errors, printed = _first_use_from_threads()
        assert errors == []
        assert sorted(printed.split("\n")[:-1]) == sorted(f"line {n}" for n in range(THREADS))


def test_still_a_console_and_unknown_names_still_fail() -> None:
    from rich.console import Console

    console = _LazyConsole(file=io.StringIO())
    assert isinstance(console.width, int) and isinstance(console, Console)
    try:
        console.no_such_attribute  # noqa: B018
    except AttributeError:
        pass
    else:
        raise AssertionError("an unknown attribute was found")
