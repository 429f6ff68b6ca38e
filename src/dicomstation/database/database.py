"""The local DICOM database: files on disk + SQLite index + cached JSON headers.

Layout of a database folder::

    index.sqlite                     the index (WAL mode, schema in schema.py)
    files/<study>/<series>/<sop>.dcm instances owned by the database
    incoming/                        staging; dead processes' leftovers settled on open
    journal/                         writers' intent journals (journal.py)

Folders are made 0700 and files 0600, whatever the umask. Every instance is
indexed atomically: its file is complete and in place before its row is committed,
and a failed commit removes (or gives back) the file, so neither a crash nor a bad
file leaves a half-indexed instance. Any number of processes may use one database
at once (ingest.py explains how; leftovers.py what happens to staging leftovers).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import sqlite3
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dicomstation.database.archives import import_archive, is_archive
from dicomstation.database.batches import Scans, run_batches
from dicomstation.database.dicomdir import expand_dicomdirs
from dicomstation.database.importer import Scanned, expand_paths, scan_files
from dicomstation.database.ingest import (
    Mode,
    delete_rows,
    insert_batch,
    insert_encoded,
    present_uids,
)
from dicomstation.database.journal import Journal
from dicomstation.database.leftovers import sweep
from dicomstation.database.matching import conditions
from dicomstation.database.private import database_error, make_private_dirs, staging_full
from dicomstation.database.records import (
    CACHE_HEADER,
    HEADER_ROWS,
    LEVEL_SQL,
    first_row,
    row_to_ref,
)
from dicomstation.database.schema import connect
from dicomstation.errors import NotFoundError
from dicomstation.models import Level, ProgressEvent, Query, TransferReport

if TYPE_CHECKING:
    from dicomstation.nodes.base import CancelToken, Ref
    from dicomstation.volumes.model import LoadedVolume

__all__ = ["Database"]

PathLike = str | os.PathLike[str]
Progress = Callable[[ProgressEvent], None]


_UID_COLUMN = {Level.STUDY: "se.study_uid", Level.SERIES: "se.series_uid", Level.IMAGE: "i.sop_uid"}


class Database:
    """A local DICOM database in one folder. Thread-safe; use :meth:`open` or :meth:`temporary`."""

    def __init__(self, root: Path, conn: sqlite3.Connection, *, temporary: bool = False) -> None:
        self.root = root
        self.temporary_db = temporary
        self._conn = conn
        self._lock = threading.RLock()
        self._journal = Journal(root / "journal")

    # -- lifecycle -----------------------------------------------------------------
    @classmethod
    def open(cls, path: PathLike) -> Database:
        """Open (creating if needed) the database in folder ``path``.

        Leftovers of dead processes in ``incoming/`` are settled first: complete
        received files are indexed, partial ones removed, interrupted writes undone.

        Raises
        ------
        DatabaseError
            If the folder or index cannot be opened (DiskFullError if the disk is full).
        """
        root = Path(path).expanduser().resolve()
        try:
            make_private_dirs(root / "files")
            make_private_dirs(root / "incoming")
            make_private_dirs(root / "journal")
            conn = connect(root / "index.sqlite")
        except (OSError, sqlite3.Error) as exc:
            raise database_error(exc, "cannot open database", root) from exc
        db = cls(root, conn)
        folders = [root / "journal", root / "incoming"]
        sweep(folders, conn, db._lock, lambda files: db.add_files(files, move=True))
        return db

    @classmethod
    @contextlib.contextmanager
    def temporary(cls) -> Iterator[Database]:
        """A database in a new temporary folder, deleted with all its files on exit."""
        root = Path(tempfile.mkdtemp(prefix="dicomstation-"))
        db = cls.open(root)
        db.temporary_db = True
        try:
            yield db
        finally:
            db.close()
            shutil.rmtree(root, ignore_errors=True)

    def close(self) -> None:
        """Close the index."""
        with self._lock:
            self._conn.close()
            with contextlib.suppress(OSError):
                self._journal.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Database({str(self.root)!r})"

    # -- import --------------------------------------------------------------------
    def import_path(
        self,
        paths: PathLike | Iterable[PathLike],
        *,
        copy: bool = True,
        progress: Progress | None = None,
        cancel: CancelToken | None = None,
        workers: int | None = None,
    ) -> TransferReport:
        """Import files, folders (recursively) and zip archives, like Slicer's ``importDicom``.

        Parameters
        ----------
        paths : path or iterable of paths
            Files and/or folders; a zip archive's members are imported as files
            (:mod:`.archives`; always copied, named ``ARCHIVE:MEMBER`` in the report);
            a DICOMDIR named here is replaced by the files it lists, one found in a
            folder is a note (the report's ``warnings``), not a failure (:mod:`.dicomdir`).
        copy : bool
            Copy files into the database (True) or index them where they are (False).
        progress : callable, optional
            Receives :class:`ProgressEvent` after every batch.
        cancel : CancelToken, optional
            Stops the import between batches; what was committed stays.
        workers : int, optional
            Parser processes (default: CPU count).

        Returns
        -------
        TransferReport
            Imported, skipped (already present) and failed files with reasons.
            Non-DICOM and truncated files are reported, never abort the import.

        Raises
        ------
        DiskFullError
            When the disk fills up; what was committed before stays, nothing is
            half-written, and importing again skips what is present.
        """
        sources: list[str] = []
        archives: list[str] = []
        for source in expand_paths(expand_dicomdirs(paths)):
            (archives if is_archive(source) else sources).append(source)
        report = self._ingest(
            sources, Mode.COPY if copy else Mode.REFERENCE, "import", progress, cancel, workers
        )
        for archive in archives:
            report = report.merged(import_archive(self, archive, progress=progress, cancel=cancel))
        return report

    def add_files(
        self,
        paths: Iterable[PathLike],
        *,
        move: bool = True,
        progress: Progress | None = None,
        heads: Mapping[str, bytes] | None = None,
        scanned: Mapping[str, Scanned] | None = None,
    ) -> TransferReport:
        """Index complete files written by dicomstation (fetched, received, exported).

        With ``move=True`` the database takes the files over: they are moved into
        the store, and duplicates (SOP Instance UID already present) are deleted.
        ``heads`` may give the first bytes of files (``os.fspath(path)`` -> bytes)
        that the writer still holds, which saves reading them again; file sizes
        still come from the disk, so a truncated file is still refused.
        ``scanned`` may give files their writer already scanned and checked
        (``os.fspath(path)`` -> :class:`~.importer.Scanned` with fields, syntax and
        size): when it covers every path and ``move`` is True, nothing is read again
        and the files are indexed in one transaction.
        """
        sources = [os.fspath(p) for p in paths]
        mode = Mode.MOVE if move else Mode.COPY
        if scanned is not None and move and all(s in scanned for s in sources):
            return self._ingest(sources, mode, "add", progress, None, 1, known=scanned)
        return self._ingest(sources, mode, "add", progress, None, 1, heads)

    def add_encoded(self, items: Sequence[tuple[Scanned, bytes | memoryview]]) -> TransferReport:
        """Write instances held in memory into the store and index them, in one transaction.

        For a fetcher that has whole instances in memory and scanned them
        (:func:`~.scanner.scan_bytes`): each file is created in place, no staging
        copy is moved (see :func:`~.ingest.insert_encoded`). The report names the
        items by ``Scanned.source``.
        """
        with self._lock:
            return insert_encoded(self._conn, self.root / "files", list(items), self._journal)

    def _ingest(
        self,
        sources: list[str],
        mode: Mode,
        operation: str,
        progress: Progress | None,
        cancel: CancelToken | None,
        workers: int | None,
        heads: Mapping[str, bytes] | None = None,
        known: Mapping[str, Scanned] | None = None,
    ) -> TransferReport:
        # only copies are staged; moved and referenced files need no folder (and
        # add_files runs once per small batch of a transfer: no mkdir/rmtree each time)
        staging = self.staging_dir("import") if mode is Mode.COPY else None
        try:
            if known is not None:  # scanned by their writer: one batch, nothing read
                scans: Scans = (batch for batch in ([known[s] for s in sources],))
            else:
                scans = scan_files(sources, str(staging) if staging else None, workers, heads)
            return run_batches(
                scans,
                self._insert,
                mode,
                staging,
                operation=operation,
                total=len(sources),
                progress=progress,
                cancel=cancel,
                disk_full=lambda done: staging_full(self.root, done, len(sources)),
            )
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)

    def _insert(self, batch: list[Scanned], mode: Mode) -> TransferReport:
        with self._lock:
            return insert_batch(self._conn, self.root / "files", batch, mode, self._journal)

    def staging_dir(self, purpose: str) -> Path:
        """A new folder under ``incoming/`` for files being received or copied.

        Files are complete here before :meth:`add_files` moves them into the store.
        The folder name carries this process's id, so opening the database from
        another process only sweeps folders whose process is gone (crash leftovers),
        never those of a running listener or fetch.
        """
        folder = self.root / "incoming" / f"{purpose}.{os.getpid()}.{uuid.uuid4().hex}"
        try:
            make_private_dirs(folder)
        except OSError as exc:
            raise database_error(
                exc, f"cannot make staging folder {folder.name}", self.root
            ) from exc
        return folder

    # -- queries -------------------------------------------------------------------
    def iter_find(self, query: Query) -> Iterator[Ref]:
        """Yield studies/series/instances (or patients) matching ``query``."""
        level = Level.parse(query.level)
        sql, order = LEVEL_SQL[level]
        conds = conditions(level, query.filters, query.fuzzy)
        where = [c.sql for c in conds]
        params: list[object] = [p for c in conds for p in c.params]
        if query.study_uid and level in (Level.SERIES, Level.IMAGE):
            where.append("st.study_uid = ?")
            params.append(query.study_uid)
        if query.series_uid and level is Level.IMAGE:
            where.append("se.series_uid = ?")
            params.append(query.series_uid)
        text = sql + (" WHERE " + " AND ".join(where) if where else "") + f" ORDER BY {order}"
        text += " LIMIT ? OFFSET ?"
        params += [-1 if query.limit is None else query.limit, query.offset]
        with self._lock:
            rows = self._conn.execute(text, params).fetchall()
        for row in rows:
            yield row_to_ref(row, level)

    def find(self, query: Query) -> list[Ref]:
        """All matches of :meth:`iter_find`."""
        return list(self.iter_find(query))

    def has_instances(self, uids: Iterable[str]) -> set[str]:
        """Return the subset of SOP Instance UIDs already in the database."""
        with self._lock:
            return present_uids(self._conn, list(uids))

    def _paths(self, where: str, params: Sequence[object]) -> list[Path]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT i.path FROM instances i JOIN series se ON se.series_uid = i.series_uid"
                f" WHERE {where} ORDER BY se.series_number, i.instance_number, i.sop_uid",
                params,
            ).fetchall()
        return [Path(r[0]) for r in rows]

    def series_files(self, series_uid: str) -> list[Path]:
        """Files of a series, by instance number. Raises NotFoundError if unknown."""
        found = self._paths("se.series_uid = ?", (series_uid,))
        if not found:
            raise NotFoundError(f"series {series_uid} is not in the database {self.root}")
        return found

    def study_files(self, study_uid: str) -> list[Path]:
        """Files of a study. Raises NotFoundError if unknown."""
        found = self._paths("se.study_uid = ?", (study_uid,))
        if not found:
            raise NotFoundError(f"study {study_uid} is not in the database {self.root}")
        return found

    def instance_path(self, sop_uid: str) -> Path:
        """The file of one instance. Raises NotFoundError if unknown."""
        found = self._paths("i.sop_uid = ?", (sop_uid,))
        if not found:
            raise NotFoundError(f"instance {sop_uid} is not in the database {self.root}")
        return found[0]

    def level_of(self, uid: str) -> Level:
        """Whether ``uid`` is a study, series or instance here. Raises NotFoundError."""
        with self._lock:
            for level, table, column in (
                (Level.STUDY, "studies", "study_uid"),
                (Level.SERIES, "series", "series_uid"),
                (Level.IMAGE, "instances", "sop_uid"),
            ):
                sql = f"SELECT 1 FROM {table} WHERE {column} = ?"
                if self._conn.execute(sql, (uid,)).fetchone():
                    return level
        raise NotFoundError(f"{uid} is not in the database {self.root}")

    def files_of(self, uid: str) -> list[Path]:
        """Files of a study, series or instance UID."""
        level = self.level_of(uid)
        if level is Level.STUDY:
            return self.study_files(uid)
        if level is Level.SERIES:
            return self.series_files(uid)
        return [self.instance_path(uid)]

    # -- metadata ------------------------------------------------------------------
    def metadata(self, study_uid: str, series_uid: str | None = None) -> list[Mapping[str, Any]]:
        """DICOM JSON headers (no bulk data) of every instance of a study or series.

        Headers are made from the files on first request and cached in the index.
        """
        where = "se.study_uid = ?" + (" AND se.series_uid = ?" if series_uid else "")
        params = (study_uid, series_uid) if series_uid else (study_uid,)
        return self._headers(where, params, series_uid or study_uid)

    def headers_of(self, uid: str) -> list[Mapping[str, Any]]:
        """Cached DICOM JSON headers of a study, series or single instance UID."""
        column = _UID_COLUMN[self.level_of(uid)]
        return self._headers(f"{column} = ?", (uid,), uid)

    def first_header(
        self, level: Level, uid: str, tags: frozenset[str] | None = None
    ) -> Mapping[str, Any]:
        """The cached header of the first instance of a study, series or instance at ``level``
        (one query, no level lookup: a search result's own header). With ``tags``, an
        uncached header is not made: those tags are read from the file alone."""
        if tags is None:
            return self._headers(f"{_UID_COLUMN[level]} = ?", (uid,), uid, " LIMIT 1")[0]
        with self._lock:
            row = first_row(self._conn, _UID_COLUMN[level], uid)
        if row is None:
            raise NotFoundError(f"{uid} is not in the database {self.root}")
        from dicomstation.database.headers import header_tags

        return header_tags(row, tags)

    def _headers(
        self, where: str, params: Sequence[object], uid: str, limit: str = ""
    ) -> list[Mapping[str, Any]]:
        with self._lock:
            rows = self._conn.execute(HEADER_ROWS.format(where=where) + limit, params).fetchall()
        if not rows:
            raise NotFoundError(f"{uid} is not in the database {self.root}")
        from dicomstation.database.headers import load_headers  # pydicom: only with headers

        headers, fresh = load_headers(rows)
        if fresh:
            with self._lock:
                self._conn.executemany(CACHE_HEADER, fresh)
        return headers

    # -- delete --------------------------------------------------------------------
    def delete(self, uid: str) -> int:
        """Delete a study, series or instance (rows, and files the database owns).

        Returns the number of instances removed.
        """
        level = self.level_of(uid)
        column = _UID_COLUMN[level]
        trash = functools.partial(self.staging_dir, "delete")
        try:
            with self._lock:
                return delete_rows(self._conn, level, column, uid, trash, self._journal)
        except (OSError, sqlite3.Error) as exc:
            raise database_error(exc, f"cannot delete {uid}", self.root) from exc

    def load(self, series_uid: str) -> LoadedVolume:
        """Load a series as a volume (see :func:`dicomstation.volumes.load_series`)."""
        from dicomstation.volumes import load_series  # volumes build on the database

        return load_series(self.series_files(series_uid))
