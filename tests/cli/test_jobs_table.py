"""`dicomstation jobs show`: an item's error is readable in an 80-column terminal."""

from __future__ import annotations

from rich.console import Console

from dicomstation.cli.pipeline_view import item_table
from dicomstation.pipeline.ledger import ItemStatus
from dicomstation.pipeline.model import StepRecord, StepState, WorkItem

STUDY = "1.2.826.0.1.3680043.8.498.43029757880331125098557355444280009133"


def test_an_items_error_is_not_squeezed_beside_its_uid() -> None:
    item = WorkItem(STUDY)
    why = "series 1.2.3.4.5 has no Frame of Reference UID or no patient geometry"
    status = ItemStatus(
        item,
        StepState.FAILED,
        1,
        f"{item.describe()}, step export: {why}",
        (StepRecord("load", StepState.DONE), StepRecord("export", StepState.FAILED, error=why)),
    )
    console = Console(width=80, record=True, color_system=None)
    console.print(item_table([status]))
    text = console.export_text()
    assert "study" not in text  # the Item column names the item: the error does not again
    assert "step export" in text
    assert len(text.splitlines()) <= 10, text  # was 15 lines, the error in a 19-column strip
