"""``SQLiteCheckpointer``: runs committed to a SQLite file, off the event loop.

One writer thread per file and process writes commits in batches, one transaction
each (group commit), so a hundred concurrent runs cost a few transactions, not a
hundred, and never meet "database is locked". Commits wait in a buffer until the
event loop is about to go idle (the run awaits a model, a tool, a flush): handing
each one to the thread at once would make the two threads fight for the GIL while
the run is busy. ``flush`` hands everything over and waits until it is written.
The file is in WAL mode with ``synchronous=NORMAL``: a written commit survives the
process being killed; after a power cut the last few may be lost, as with any WAL
database.

Tables: ``runs`` (one row per run, for listing), ``commits`` (one row per commit:
the small state, the context when it changed, the appended log entries) and
``messages`` (one row per message, written once). Nothing is rewritten as the
conversation grows.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import json
import os
import queue
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Any

from flowgraph._checkpoint import Commit, RunInfo, commit_from_rows, fold, upto
from flowgraph._context import Usage
from flowgraph._errors import ConfigurationError, StoreError

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    flow TEXT NOT NULL,
    status TEXT NOT NULL,
    step INTEGER NOT NULL,
    node TEXT,
    reason TEXT NOT NULL,
    usage TEXT NOT NULL,
    parent TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_update ON runs (updated);
CREATE TABLE IF NOT EXISTS commits (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    step INTEGER NOT NULL,
    messages_end INTEGER NOT NULL,
    state TEXT NOT NULL,
    context TEXT,
    logs TEXT,
    created REAL NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    run_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (run_id, idx)
) WITHOUT ROWID;
"""
BUSY_TIMEOUT_MS = 60_000
EXIT_FLUSH_SECONDS = 10.0


class _Flush:
    def __init__(self) -> None:
        self.done: concurrent.futures.Future[None] = concurrent.futures.Future()


class SQLiteCheckpointer:
    """Commits runs to a SQLite file. ``flow.run(..., store="runs.db")`` opens one.

    Args:
        path: the database file; created, with its tables, if missing.

    Example:
        >>> store = SQLiteCheckpointer("runs.db")  # doctest: +SKIP
        >>> result = flow.run("Hi", store=store)  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        try:
            with closing(self._connect()) as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise ConfigurationError(
                f"cannot open the run store {self.path!r}: {exc}. Give a writable file path"
            ) from exc
        self._queue: queue.SimpleQueue[_Batch | _Flush] = queue.SimpleQueue()
        self._buffer: list[_Rows] = []
        self._lock = threading.Lock()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(
            target=self._write_loop, name=f"flowgraph-sqlite:{self.path}", daemon=True
        )
        self._thread.start()
        atexit.register(self._flush_at_exit)

    def __repr__(self) -> str:
        return f"SQLiteCheckpointer({self.path!r})"

    # -- writing ----------------------------------------------------------------------

    def commit(self, commit: Commit) -> None:
        self._raise_failure()
        rows = _rows(commit)  # encoded now: the commit's lists may grow after this
        with self._lock:
            self._buffer.append(rows)
            first = len(self._buffer) == 1
        if first:
            try:
                asyncio.get_running_loop().call_soon(self._hand_over)
            except RuntimeError:  # no loop: nothing to wait for
                self._hand_over()

    def _hand_over(self) -> None:
        with self._lock:
            buffered, self._buffer = self._buffer, []
        if buffered:
            self._queue.put(_batch(buffered))

    async def flush(self) -> None:
        self._hand_over()
        marker = _Flush()
        self._queue.put(marker)
        await asyncio.wrap_future(marker.done)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def _write_loop(self) -> None:
        db = self._connect()
        while True:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            batches = [item for item in batch if isinstance(item, _Batch)]
            if batches and self._failure is None:
                try:
                    for work in batches:
                        _write(db, work)
                except Exception as exc:
                    failure = StoreError(
                        f"could not write to the run store {self.path!r}: "
                        f"{type(exc).__name__}: {exc}"
                    )
                    failure.__cause__ = exc
                    self._failure = failure
            for marker in batch:
                if isinstance(marker, _Flush):
                    if self._failure is not None:
                        marker.done.set_exception(self._failure)
                    else:
                        marker.done.set_result(None)

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _flush_at_exit(self) -> None:
        self._hand_over()
        marker = _Flush()
        self._queue.put(marker)
        with contextlib.suppress(Exception):  # at exit there is no one left to tell
            marker.done.result(timeout=EXIT_FLUSH_SECONDS)

    # -- reading ----------------------------------------------------------------------

    async def load(self, run_id: str, *, step: int | None = None) -> Commit | None:
        await self.flush()
        return await asyncio.to_thread(self._load, run_id, step)

    async def list_runs(self, flow: str | None = None, limit: int = 100) -> list[RunInfo]:
        await self.flush()
        return await asyncio.to_thread(self._list, flow, limit)

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        try:
            with closing(self._connect()) as db:
                yield db
        except sqlite3.Error as exc:
            raise StoreError(f"could not read the run store {self.path!r}: {exc}") from exc

    def _load(self, run_id: str, step: int | None) -> Commit | None:
        with self._reading() as db:
            db.execute("BEGIN")  # one snapshot for both queries
            flow = db.execute("SELECT flow FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if flow is None:
                return None
            commits = upto(_commits(db, run_id, flow[0]), step)
            if not commits:
                return None
            rows = db.execute(
                "SELECT message FROM messages WHERE run_id = ? AND idx < ? ORDER BY idx",
                (run_id, commits[-1].messages_from),
            ).fetchall()
            db.execute("COMMIT")
        snapshot = fold(commits)
        snapshot.messages = [json.loads(row[0]) for row in rows]
        return snapshot

    def _list(self, flow: str | None, limit: int) -> list[RunInfo]:
        query = "SELECT run_id, flow, status, step, node, reason, usage, parent, created, updated"
        query += " FROM runs" + (" WHERE flow = ?" if flow is not None else "")
        query += " ORDER BY updated DESC LIMIT ?"
        with self._reading() as db:
            rows = db.execute(query, (*([flow] if flow is not None else []), limit)).fetchall()
            infos = []
            for run_id, name, status, step, node, reason, usage, parent, created, updated in rows:
                path: list[str] = []
                for (entered,) in db.execute(
                    "SELECT json_extract(logs, '$.path') FROM commits WHERE run_id = ? "
                    "AND json_extract(logs, '$.path') IS NOT NULL ORDER BY seq",
                    (run_id,),
                ):
                    path.extend(json.loads(entered))
                infos.append(
                    RunInfo(
                        run_id=run_id,
                        flow=name,
                        status=status,
                        step=step,
                        node=node,
                        path=path,
                        usage=Usage.model_validate_json(usage),
                        reason=reason,
                        created=created,
                        updated=updated,
                        parent=parent,
                    )
                )
        return infos


def _commits(db: sqlite3.Connection, run_id: str, flow: str) -> list[Commit]:
    rows = db.execute(
        "SELECT seq, step, messages_end, state, context, logs, created FROM commits "
        "WHERE run_id = ? ORDER BY seq",
        (run_id,),
    ).fetchall()
    return [
        # The messages are read separately: the fold keeps only their count.
        commit_from_rows(
            run_id,
            flow,
            seq,
            step,
            json.loads(state),
            end,
            [],
            context,
            json.loads(logs) if logs else {},
            created,
        )
        for seq, step, end, state, context, logs, created in rows
    ]


_Rows = tuple[list[tuple[Any, ...]], tuple[Any, ...], tuple[Any, ...]]


@dataclass(frozen=True)
class _Batch:
    """Commits encoded as one JSON array per table, written by one statement each."""

    messages: str
    commits: str
    runs: str


def _rows(commit: Commit) -> _Rows:
    messages = [
        (commit.run_id, commit.messages_from + offset, _json(message))
        for offset, message in enumerate(commit.messages)
    ]
    return messages, _commit_row(commit), _run_row(commit)


def _batch(buffered: list[_Rows]) -> _Batch:
    runs = {rows[2][0]: rows[2] for rows in buffered}  # the newest row of each run
    return _Batch(
        messages=_json([message for rows in buffered for message in rows[0]]),
        commits=_json([rows[1] for rows in buffered]),
        runs=_json(list(runs.values())),
    )


def _columns(count: int) -> str:
    return ", ".join(f"json_extract(value, '$[{index}]')" for index in range(count))


# One statement per table, over json_each: every call into sqlite3 hands the GIL
# back and forth with the run's thread, so a batch makes five calls, not one per row.
INSERT_MESSAGES = (
    f"INSERT OR REPLACE INTO messages (run_id, idx, message) SELECT {_columns(3)} FROM json_each(?)"
)
INSERT_COMMITS = (
    "INSERT OR REPLACE INTO commits (run_id, seq, step, messages_end, state, context, logs, "
    f"created) SELECT {_columns(8)} FROM json_each(?)"
)
UPSERT_RUNS = (
    "INSERT INTO runs (run_id, flow, status, step, node, reason, usage, parent, created, "
    f"updated, seq) SELECT {_columns(11)} FROM json_each(?) WHERE true "
    "ON CONFLICT (run_id) DO UPDATE SET status = excluded.status, step = excluded.step, "
    "node = excluded.node, reason = excluded.reason, usage = excluded.usage, "
    "updated = excluded.updated, seq = excluded.seq"
)


def _write(db: sqlite3.Connection, batch: _Batch) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(INSERT_MESSAGES, (batch.messages,))
        db.execute(INSERT_COMMITS, (batch.commits,))
        db.execute(UPSERT_RUNS, (batch.runs,))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _commit_row(commit: Commit) -> tuple[Any, ...]:
    logs = commit.logs()
    return (
        commit.run_id,
        commit.seq,
        commit.step,
        commit.conversation_length,
        _json(commit.state()),
        commit.context,
        _json(logs) if logs else None,
        commit.created,
    )


def _run_row(commit: Commit) -> tuple[Any, ...]:
    return (
        commit.run_id,
        commit.flow,
        commit.status,
        commit.step,
        commit.positions[0].node if commit.positions else None,
        commit.reason,
        commit.usage.model_dump_json(),
        commit.parent,
        commit.started or commit.created,
        commit.created,
        commit.seq,
    )


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
