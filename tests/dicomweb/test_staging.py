"""The staging writer thread: files complete in order, aborts leave nothing, errors surface."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomstation.nodes.staging import StagingWriter


def test_files_written_completed_and_aborted(tmp_path: Path) -> None:
    done: list[Path] = []
    writer = StagingWriter(tmp_path, done.append, depth=2)
    first = writer.new_file()
    for i in range(10):
        first.write(bytes([i]) * 1000)
    first.close()
    second = writer.new_file()
    second.write(b"partial")
    second.abort()
    first.wait()
    second.wait()
    writer.drain()
    writer.close()
    assert done == [first.path]
    assert first.path.read_bytes() == b"".join(bytes([i]) * 1000 for i in range(10))
    assert not second.path.exists()


def test_write_errors_reach_the_producer(tmp_path: Path) -> None:
    writer = StagingWriter(tmp_path / "missing-folder", lambda p: None)
    staged = writer.new_file()
    staged.write(b"x")
    with pytest.raises(FileNotFoundError):
        staged.wait()
    with pytest.raises(FileNotFoundError):
        writer.new_file().write(b"y")
    writer.close()
