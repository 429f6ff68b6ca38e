"""A staged file that arrives in one piece costs one hand-off; a partial one appears at once.

The receiving thread's cost per small instance was mostly thread hand-offs (one
for the first piece, one for the close). A file whose announced size arrives in
its first piece is now created, written and closed by one hand-off; a file that
arrives in several pieces still appears as ``.part`` with its first piece (so an
interrupted transfer shows, and is swept, as before).
"""

from __future__ import annotations

from pathlib import Path

from dicomstation.nodes.staging import StagingWriter


def test_whole_file_in_one_piece_waits_for_close(tmp_path: Path) -> None:
    done: list[Path] = []
    writer = StagingWriter(tmp_path, done.append)
    try:
        staged = writer.new_file(size=5)
        staged.write(b"hello")
        writer.drain()  # everything queued so far is handled
        assert not staged.path.exists(), "nothing handed over before close"
        staged.close()
        staged.wait()
        assert done == [staged.path] and staged.path.read_bytes() == b"hello"
    finally:
        writer.close()


def test_partial_first_piece_creates_the_file_at_once(tmp_path: Path) -> None:
    done: list[Path] = []
    writer = StagingWriter(tmp_path, done.append)
    try:
        for size in (10, None):  # announced and larger, or not announced
            staged = writer.new_file(size=size)
            staged.write(b"hello")
            writer.drain()
            assert staged.path.read_bytes() == b"hello", "the partial file is on disk"
            assert staged.path not in done
            staged.write(b"world")
            staged.close()
            staged.wait()
            assert staged.path.read_bytes() == b"helloworld" and done[-1] == staged.path
    finally:
        writer.close()


def test_announced_size_that_is_wrong_still_writes_everything(tmp_path: Path) -> None:
    done: list[Path] = []
    writer = StagingWriter(tmp_path, done.append)
    try:
        staged = writer.new_file(size=3)  # the sender said 3 bytes, then sent more
        for piece in (b"abc", b"def", b"g"):
            staged.write(piece)
        staged.close()
        staged.wait()
        assert staged.path.read_bytes() == b"abcdefg"
    finally:
        writer.close()


def test_gathered_wakes_once_per_batch_and_loses_nothing() -> None:
    import threading

    from dicomstation.nodes.staging import Gathered

    gathered: Gathered[int] = Gathered()
    assert gathered.add(1) and not gathered.add(2), "only the first of a batch wakes"
    assert gathered.take() == [1, 2] and gathered.take() == []
    wakes, taken = [], []

    def produce(start: int) -> None:
        for item in range(start, start + 500):
            if gathered.add(item):
                wakes.append(item)

    threads = [threading.Thread(target=produce, args=(n * 500,)) for n in range(2)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        taken += gathered.take()
    for thread in threads:
        thread.join()
    taken += gathered.take()
    assert sorted(taken) == list(range(1000)) and 1 <= len(wakes) <= 1000
