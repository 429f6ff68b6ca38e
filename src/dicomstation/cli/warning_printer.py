"""A CLI command's warnings: each text printed when it first occurs, repeats counted, bounded.

The CLI process is the application, so it (and only it: library code never captures
warnings, the warnings module's state being process-wide) routes the warnings of a
whole command here (:func:`printed_warnings`). A cohort run lasts hours, so a text
shows as soon as it first occurs -- above the live display, which rich keeps at the
bottom -- and its repeats are counted and summed up when the command ends. Texts come
from files and peers: control characters are replaced (no terminal escape gets
through) and a text is cut at :data:`TEXT_LIMIT` characters. Memory and output stay
bounded whatever a run meets: the first :data:`SHOWN` distinct texts are printed and
counted, the warnings with any other text are only counted (one line at the end).
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, TextIO

from dicomstation.safe_text import printable

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["SHOWN", "TEXT_LIMIT", "WarningPrinter", "printed_warnings"]

#: distinct texts printed as they occur
SHOWN = 50
#: characters of a text printed
TEXT_LIMIT = 300


class WarningPrinter:
    """A ``warnings.showwarning`` replacement printing to ``console`` (thread-safe)."""

    def __init__(self, console: Console, *, bounded: bool = True) -> None:
        self.console = console
        self.bounded = bounded  # False: print every warning the filters let through, keep none
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()  # the SHOWN first texts
        self._hidden = 0  # warnings not printed because their text came after the SHOWN first

    def show(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        """Print ``message`` if its text is new (the signature of ``warnings.showwarning``)."""
        text = printable(str(message), TEXT_LIMIT, ascii_only=False)
        if not self.bounded:  # the filters decide what repeats; nothing is kept
            self._print(text)
            return
        with self._lock:
            if text in self._counts:
                self._counts[text] += 1
                return
            new = len(self._counts) < SHOWN
            if new:
                self._counts[text] = 1
            else:
                self._hidden += 1
        if new:
            self._print(text)

    def summary(self) -> None:
        """Print the counts of the repeated texts, and how many warnings were not shown."""
        with self._lock:
            repeated = [(t, n) for t, n in self._counts.items() if n > 1]
            hidden = self._hidden
        for text, count in repeated:
            self._print(text, f" ({count:,} times in all)")
        if hidden:
            self._print(f"{hidden:,} more warnings not shown (other texts)")

    def _print(self, text: str, times: str = "") -> None:
        from rich.markup import escape

        self.console.print(f"[yellow]warning[/]{times} {escape(text)}", highlight=False)


@contextlib.contextmanager
def printed_warnings(console: Console, *, keep_filters: bool = False) -> Iterator[WarningPrinter]:
    """Print the warnings raised inside the block to ``console`` as they occur (see the module).

    For a command's whole run, in the CLI process only; the warnings filters and
    ``showwarning`` are restored when the block ends, however it ends. Every warning
    is shown (repeats counted, the first :data:`SHOWN` texts) unless ``keep_filters``:
    then the filters decide, and each warning they let through is printed (a server
    running for days keeps showing its warnings; nothing is kept in memory).
    """
    printer = WarningPrinter(console, bounded=not keep_filters)
    with warnings.catch_warnings():
        if not keep_filters:
            warnings.simplefilter("always")
        warnings.showwarning = printer.show
        try:
            yield printer
        finally:
            printer.summary()
