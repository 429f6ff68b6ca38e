"""Rich rendering for pipelines: the live run display, job and item tables."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from dicomstation.cli.common import err_console
from dicomstation.pipeline import ItemStatus, JobSummary, RunStatus

__all__ = ["item_table", "job_table", "live_status"]

_STATE_STYLE = {
    "done": "green",
    "failed": "red",
    "running": "cyan",
    "pending": "yellow",
    "cancelled": "magenta",
    "skipped": "dim",
}


def _eta(status: RunStatus) -> str:
    finished = status.done + status.failed + status.skipped
    if not finished or not status.remaining:
        return "--:--" if status.remaining else "0:00"
    seconds = (time.time() - status.started) / finished * status.remaining
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def render_status(status: RunStatus, name: str) -> Group:
    """Counts, a bar, ETA, and the step every running item is on."""
    total = max(status.total, 1)
    finished = status.done + status.failed + status.skipped
    width = 30
    filled = int(width * finished / total)
    bar = Text("━" * filled, style="green") + Text("━" * (width - filled), style="grey37")
    line = Text(f"{name} ") + bar
    line += Text(
        f" {finished}/{status.total}  done {status.done}  skipped {status.skipped}  "
        f"failed {status.failed}  "
        f"running {len(status.running)}  already done {status.already_done}  ETA {_eta(status)}"
    )
    table = Table(show_header=bool(status.running), box=None, pad_edge=False)
    table.add_column("running item", overflow="fold")
    table.add_column("step")
    for key, step in sorted(status.running.items()):
        table.add_row(key, step)
    return Group(line, table)


@contextlib.contextmanager
def live_status(name: str) -> Iterator[Callable[[RunStatus], None]]:
    """A live display on stderr; yields the ``progress`` callback for :class:`RunOptions`."""
    with Live(console=err_console, refresh_per_second=4, transient=False) as live:

        def update(status: RunStatus) -> None:
            live.update(render_status(status, name))

        yield update


def job_table(jobs: list[JobSummary]) -> Table:
    """One row per job: id, name, item counts per state."""
    table = Table()
    titles = ("Job", "Name", "Items", "Done", "Skipped", "Failed", "Pending", "Running", "Updated")
    for title in titles:
        table.add_column(title, overflow="fold")
    for job in jobs:
        counts = job.counts
        table.add_row(
            job.job_id,
            job.name,
            str(job.total),
            str(counts.get("done", 0)),
            str(counts.get("skipped", 0)),
            str(counts.get("failed", 0)),
            str(counts.get("pending", 0) + counts.get("cancelled", 0)),
            str(counts.get("running", 0)),
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job.updated)),
        )
    return table


def item_table(items: list[ItemStatus]) -> Table:
    """One row per work item: state, attempts, each step's state, error."""
    table = Table(expand=True)  # the columns share the width by ratio: the error gets most
    table.add_column("Item", overflow="fold", ratio=2)
    table.add_column("State", no_wrap=True)
    table.add_column("Tries", no_wrap=True)
    table.add_column("Steps", overflow="fold", ratio=2)
    table.add_column("Error", overflow="fold", ratio=4)
    for item in items:
        steps = Text()
        for record in item.steps:
            steps += Text(f"{record.step}:{record.state.value} ", _STATE_STYLE[record.state.value])
        table.add_row(
            item.item.key,
            Text(item.state.value, _STATE_STYLE[item.state.value]),
            str(item.attempts),
            steps,
            item.error.removeprefix(f"{item.item.describe()}, "),  # the Item column names it
        )
    return table
