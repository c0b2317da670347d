"""``SQLiteCheckpointer``: runs committed to a SQLite file, off the event loop.

One writer thread per file and process writes commits in batches, one transaction
each (group commit), so a hundred concurrent runs cost a few transactions, not a
hundred, and never meet "database is locked".

A run's journal hands its plain steps over in batches (``BATCH`` in ``_engine/journal.py``), encoded
as JSON in one go on the event loop's thread; other commits go one at a time. They
wait in a buffer until the runs have made none for ``quiet`` seconds (5 ms: they
await a model, a tool, a human), or the oldest has waited ``max_wait`` (100 ms).
Then the writer takes the buffer, and the steps the journals still hold. Writing
while runs keep the loop busy costs more than the writing: the two threads trade the
GIL, and each trade waits for the OS to wake a thread. The writer keeps the time
itself: a timer on the event loop would make each of the loop's turns dearer while
commits wait. It looks at the buffer ``quiet`` seconds after its first commit, and
while the runs are busy it looks again after waits four times longer each time (up
to ``max_wait``): a look takes the GIL from the busy loop, and measured, each cost a
run of fast steps far more than the look's own work (a look every 5 ms made such a
run 5-8% slower). So commits made in a burst are written at most about four times
the burst's length after it ends. ``flush`` has the writer take everything at once,
and waits until it is written.

The file is in WAL mode with ``synchronous=NORMAL``: a written commit survives the
process being killed; after a power cut the last few may be lost, as with any WAL
database. The tables, and how commits become rows and come back, are in
``sqlite_format.py``.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import Any

import orjson
from pydantic_core import to_jsonable_python

from flowgraph._base.checks import check_seconds
from flowgraph._base.errors import ConfigurationError, StoreError, UsageError
from flowgraph._store.lease import (
    LEASE,
    LeaseRequest,
    apply,
    new_owner,
    refusal_here,
    release,
    renew,
    take,
)
from flowgraph._store.lease import SCHEMA as LEASES
from flowgraph._store.protocol import HeldSteps
from flowgraph._store.records import (
    Commit,
    RunInfo,
    Step,
    step_of,
)
from flowgraph._store.sqlite_format import (
    BUSY_TIMEOUT,
    UNWRITTEN,
    RunFields,
    Segment,
    compact_record,
    create_tables,
    dump_one_by_one,
    is_transient,
    refuse_foreign,
    use_wal,
    where_at,
    write_segments,
)
from flowgraph._store.sqlite_read import read_ids, read_run, read_runs

EXIT_FLUSH_SECONDS = 10.0
QUIET = 0.005
MAX_WAIT = 0.1
BACKOFF = 4  # each look at busy runs waits this many times longer than the last
RETRY_FIRST, RETRY_MOST = 0.05, 1.0  # waits before writing again after a transient error
GIVE_UP = 30.0  # a flush waits this long for a transient error to clear; the commits stay


_WAKE = None  # the buffer got its first commit: the writer starts keeping the time


class _Flush:
    def __init__(self) -> None:
        self.done: concurrent.futures.Future[None] = concurrent.futures.Future()


class SQLiteCheckpointer:
    """Commits runs to a SQLite file. ``flow.run(..., store="runs.db")`` opens one.

    Args:
        path: the database file; created, with its tables, if missing.
        quiet: commits are written once no run has committed for this many seconds
            (noticed later after a burst of commits: see the module's notes),
        max_wait: or once the oldest unwritten commit has waited this long. Pauses,
            ends, failures and an agent's calls of tools that take the run context
            are written before the run goes on.
        lease: seconds a run's lease lasts: while a process drives a run it renews
            the lease; another process may take the run over once the lease lapses
            (at once on the same host, when the holder's process is gone).
        busy_timeout: seconds a write waits for another process's lock before it
            fails; it is then tried again, as after a full disk, until it succeeds.
            A commit no try can write (a value SQLite cannot take) fails its run
            only: the other runs' commits are written.

    Example:
        >>> store = SQLiteCheckpointer("runs.db")  # doctest: +SKIP
        >>> result = flow.run("Hi", store=store)  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        quiet: float = QUIET,
        max_wait: float = MAX_WAIT,
        busy_timeout: float = BUSY_TIMEOUT,
        lease: float = LEASE,
    ) -> None:
        self.path = os.fspath(path)
        self.quiet, self.max_wait = quiet, max_wait
        timeout = check_seconds(busy_timeout, "busy_timeout", error=UsageError)
        if timeout is None:
            raise UsageError("busy_timeout must be a number of seconds, not None")
        self.busy_timeout: float = timeout
        self.lease = check_seconds(lease, "lease", error=UsageError) or LEASE
        self._owner = new_owner()
        self._driving: set[str] = set()  # the runs this store object leases
        self._fresh: set[str] = set()  # new runs: leased when first written
        self._released: set[str] = set()  # released with their last commit
        self._renew_at = 0.0
        try:
            with closing(self._connect()) as db:
                refuse_foreign(db, self.path)  # before WAL mode changes the file
                use_wal(db, self.busy_timeout)
                create_tables(db, self.path)
                db.execute(LEASES)  # added to files of this format: older versions ignore it
        except sqlite3.Error as exc:
            raise ConfigurationError(
                f"cannot open the run store {self.path!r}: {exc}. Give a writable file path"
            ) from exc
        # _WAKE when the buffer gets its first commit; a _Flush to write it at once.
        self._queue: queue.SimpleQueue[_Flush | LeaseRequest | None] = queue.SimpleQueue()
        # The commits not yet written: a segment per run, and the closed ones.
        self._open: dict[str, Segment] = {}
        self._closed: list[Segment] = []
        self._announced: list[HeldSteps] = []  # journals holding steps for the next write
        self._first = self._last = 0.0  # when the oldest and the newest buffered commit came
        self._lock = threading.Lock()
        self._outputs: dict[str, Any] = {}  # run id -> the output last written
        # Run id -> why its commits could not be written: told once, to the run.
        self._failures: dict[str, StoreError] = {}
        # Run id -> the commit its next stored one must be: those after the ones that
        # failed are dropped (they would follow a gap), until a resume starts there.
        self._broken: dict[str, int] = {}
        self._stuck: Exception | None = None  # a transient error the writer waits out
        self._retry_at: float | None = None  # when it writes again
        self._retry_wait = 0.0
        self._thread = threading.Thread(
            target=self._write_loop, name=f"flowgraph-sqlite:{self.path}", daemon=True
        )
        self._thread.start()
        atexit.register(self._flush_at_exit)

    def __repr__(self) -> str:
        return f"SQLiteCheckpointer({self.path!r})"

    # -- writing ----------------------------------------------------------------------

    def commit(self, commit: Commit) -> None:
        self.commit_steps(
            commit.run_id, commit.flow, commit.parent, commit.started, [step_of(commit)]
        )
        if commit.status != "running":  # ended or paused: a resumed run starts over
            self._outputs.pop(commit.run_id, None)

    def commit_steps(
        self, run_id: str, flow: str, parent: str | None, started: float, steps: list[Step]
    ) -> None:
        """Commit a run's steps, in order: the journal's way for plain steps, in
        batches (see ``Journal``), and ``commit``'s for a Commit, as a Step.

        The one place commits become entries (JSON arrays, their fields in the order of
        ``ENTRY``: the encoder's time goes by the item) and join their run's segment.
        Entries are made of small lists, dicts and numbers, which orjson encodes three
        times faster than pydantic-core; a batch is encoded in one call, mostly on the
        event loop's thread (a journal hands over ``BATCH`` steps at a time). The steps
        a journal still holds when the writer writes are encoded on the writer's: fewer
        than ``BATCH``, and mostly while the runs are quiet. Encoding every batch
        there was slower: the steps' containers, kept until then, made the garbage
        collector walk more, and the writer's Python work fought the runs for the GIL.
        """
        failure = self.take_failure(run_id)
        if failure is not None:
            raise failure
        follows = self._broken.get(run_id)
        if follows is not None:
            if steps[0].seq != follows:
                return  # the run failed in the file already: see _fail_run
            del self._broken[run_id]
        entries = self._entries(run_id, steps)
        try:
            encoded, failure = orjson.dumps(entries, default=to_jsonable_python)[1:-1], None
        except orjson.JSONEncodeError:
            encoded, failure, steps = dump_one_by_one(entries, run_id, steps)
            if failure is not None:  # keep the steps before it, and say which it was
                self._outputs.pop(run_id, None)
                if not steps:
                    raise failure from failure.__cause__
        last = steps[-1]  # the run now
        run = RunFields(
            run_id=run_id,
            flow=flow,
            status=last.status,
            step=last.step,
            positions=last.positions,
            reason=last.reason,
            usage=last.usage,
            parent=parent,
            started=started,
            created=last.created or time.time(),
            seq=last.seq,
        )
        self._buffer(run_id, steps, encoded, run)
        if failure is not None:
            raise failure

    def _entries(self, run_id: str, steps: list[Step]) -> list[tuple[Any, ...]]:
        """The steps as entries, in ``ENTRY``'s order. A step repeats the output until a
        node makes another: it is written only when it is not the object last written."""
        written = self._outputs.get(run_id, UNWRITTEN)
        entries = []
        for step in steps:
            extra, output = step.extra, step.output
            if output is not written:
                written = output
                extra = extra if extra is not None else {}
                extra["output"] = output
            trace = step.trace
            entries.append(
                (
                    step.step,
                    where_at(step.positions, step.step),
                    step.messages_from,  # from
                    step.messages,
                    step.usage,
                    step.usage_by_node or None,
                    len(step.path),
                    step.context,
                    list(map(compact_record, trace)) if trace else None,
                    extra or None,
                )
            )
        self._outputs[run_id] = written
        return entries

    def _buffer(self, run_id: str, steps: list[Step], encoded: bytes, run: RunFields) -> None:
        """Add the run's encoded steps to its segment in the buffer (a new segment if
        they do not follow the last one: the run went back, two journals wrote it)."""
        now = time.monotonic()
        first = steps[0].seq
        with self._lock:
            segment = self._open.get(run_id)
            if segment is None or first != segment.seq + 1:
                if segment is not None:
                    self._closed.append(segment)
                else:
                    self._start_clock(now)
                segment = self._open[run_id] = Segment(first)
            segment.entries.append(encoded)
            for step in steps:
                segment.path += step.path
            segment.seq, segment.run = run.seq, run
            self._last = now

    def announce(self, journal: HeldSteps) -> None:
        """``journal`` holds plain steps: the writer takes them when it writes, as it
        would steps already given, and keeps the time from now."""
        with self._lock:
            self._start_clock(time.monotonic())
            self._announced.append(journal)

    def _empty(self) -> bool:
        """Nothing waits to be written: no segment, no journal holding steps. Under
        the lock."""
        return not (self._open or self._closed or self._announced)

    def _start_clock(self, now: float) -> None:
        """Under the lock, before a commit joins the buffer: if it was empty, the
        writer keeps the time from ``now``."""
        if self._empty():
            self._first = now
            self._queue.put(_WAKE)

    async def flush(self) -> None:
        marker = _Flush()
        self._queue.put(marker)
        await asyncio.wrap_future(marker.done)

    # -- leases (see lease.py) ---------------------------------------------------------

    async def take_lease(self, run_id: str, *, fresh: bool = False) -> None:
        if run_id in self._driving:
            raise UsageError(refusal_here(run_id))
        self._driving.add(run_id)
        if fresh:  # no one can know the run before its first commit: taken with it
            self._fresh.add(run_id)
            return
        request = LeaseRequest(run_id, take=True)
        self._queue.put(request)  # the writer takes it, with the others asked meanwhile
        try:
            await asyncio.wrap_future(request.done)
        except BaseException:
            self._driving.discard(run_id)
            self._queue.put(LeaseRequest(run_id, take=False))  # if it was taken after all
            raise

    async def drop_lease(self, run_id: str) -> None:
        self._driving.discard(run_id)
        self._fresh.discard(run_id)
        if run_id in self._released:  # with the run's last commit (see _leases_of)
            self._released.discard(run_id)
            return
        request = LeaseRequest(run_id, take=False)
        self._queue.put(request)
        await asyncio.wrap_future(request.done)  # released before run() returns

    def _write_leased(self, db: sqlite3.Connection, segments: list[Segment]) -> None:
        """Write the segments; in the same transaction take the leases of the new runs
        among them and release those of the runs that ended (or paused) there."""
        done: list[tuple[str, bool]] = []  # run id, ended: noted once committed

        def leases(db: sqlite3.Connection, runs: list[RunFields]) -> None:
            taken: list[str] = []
            released: list[str] = []
            for run in runs:
                fresh, ended = run.run_id in self._fresh, run.status != "running"
                if fresh:
                    done.append((run.run_id, False))
                if ended:
                    done.append((run.run_id, True))
                if fresh != ended:  # a new run that ended here never needed a row
                    (released if ended else taken).append(run.run_id)
            take(db, taken, self._owner, self.lease)
            release(db, released, self._owner)

        write_segments(db, segments, leases)
        for run_id, ended in done:
            if ended:
                self._released.add(run_id)
            else:
                self._fresh.discard(run_id)

    def _lease(self, db: sqlite3.Connection, requests: list[LeaseRequest]) -> None:
        """Apply the lease requests; a transient error is waited out, up to ``GIVE_UP``."""
        wait, until = _longer(0.0), time.monotonic() + GIVE_UP
        while True:
            try:
                apply(db, requests, self._owner, self.lease)
                return
            except Exception as exc:
                if not is_transient(exc) or time.monotonic() + wait > until:
                    failure = StoreError(
                        f"could not take or release a run's lease in {self.path!r}: {exc}"
                    )
                    for request in requests:
                        request.done.set_exception(failure)
                    return
            time.sleep(wait)
            wait = _longer(wait)

    def _renew(self, db: sqlite3.Connection) -> float | None:
        """Renew this store's leases when due; when next (None: it holds none)."""
        if not self._driving:
            return None
        now = time.monotonic()
        if now >= self._renew_at:
            with contextlib.suppress(Exception):  # a lapse is safe: others may take over
                renew(db, self._owner, self.lease)
            self._renew_at = now + self.lease / 3
        return self._renew_at

    def take_failure(self, run_id: str) -> StoreError | None:
        """Why the run's commits could not be written, if they could not; told once."""
        failure = self._failures.pop(run_id, None)
        if failure is not None:
            self._outputs.pop(run_id, None)  # the output last written is not known
        return failure

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def _write_loop(self) -> None:
        db = self._connect()
        due: float | None = None  # when to look at the buffer next; None: it is empty
        wait = self.quiet  # how long to wait after a look that found the runs busy
        flushes: list[_Flush] = []  # waiting for what came before them to be written
        stuck_since = 0.0
        while True:
            renewal = self._renew(db)
            soonest = min((t for t in (due, renewal) if t is not None), default=None)
            timeout = None if soonest is None else max(0.0, soonest - time.monotonic())
            items: list[_Flush | LeaseRequest | None] = []
            with contextlib.suppress(queue.Empty):
                items.append(self._queue.get(timeout=timeout))
                while True:
                    items.append(self._queue.get_nowait())
            flushes += [item for item in items if isinstance(item, _Flush)]
            leases = [item for item in items if isinstance(item, LeaseRequest)]
            if leases:
                self._lease(db, leases)
            retry = self._retry_at is not None and time.monotonic() >= self._retry_at
            if self._stuck is not None and not retry:  # wait for the next try
                due = self._retry_at
            else:
                segments, due = self._take(bool(flushes) or retry, wait)
                wait = self.quiet if due is None else wait * BACKOFF
                if segments:
                    stuck_since = stuck_since if self._stuck else time.monotonic()
                    due = self._write(db, segments) or due
            flushes = self._answer(flushes, stuck_since)

    def _write(self, db: sqlite3.Connection, segments: list[Segment]) -> float | None:
        """Write the segments; on a transient error keep them for another try, and
        return when (None: all written, or failed for good)."""
        self._stuck = None
        left = self._write_runs(db, segments)
        if not left:
            self._retry_at = None
            return None
        with self._lock:  # before what came since: a run's commits stay in order
            self._closed[:0] = left
        self._retry_wait = _longer(0.0 if self._retry_at is None else self._retry_wait)
        self._retry_at = time.monotonic() + self._retry_wait
        return self._retry_at

    def _write_runs(self, db: sqlite3.Connection, segments: list[Segment]) -> list[Segment]:
        """Write the segments in one transaction; if a value in them cannot be written,
        each run's in its own, so that the run it belongs to fails alone. Returns the
        segments a transient error kept from being written."""
        try:
            self._write_leased(db, segments)
            return []
        except Exception as exc:
            if is_transient(exc):
                self._stuck = exc
                return segments
            runs = _by_run(segments)
            if len(runs) == 1:
                self._fail_run(db, segments, exc)
                return []
        left: list[Segment] = []
        for own in runs.values():
            try:
                self._write_leased(db, own)
            except Exception as exc:
                if not is_transient(exc):
                    self._fail_run(db, own, exc)
                    continue
                self._stuck = exc
                left += own
        return left

    def _fail_run(self, db: sqlite3.Connection, own: list[Segment], exc: Exception) -> None:
        """A run's segments cannot be written: the run fails, in the file too, at the
        last commit stored; its later commits are dropped."""
        assert own[0].run is not None
        run_id = own[0].run.run_id
        cause = f"{type(exc).__name__}: {exc}"
        failure = StoreError(
            f"the commits of run {run_id!r} cannot be stored in {self.path!r}: {cause}. "
            "Its earlier commits are kept; other runs are not affected"
        )
        failure.__cause__ = exc
        self._failures[run_id] = failure
        self._broken[run_id] = own[0].first
        with contextlib.suppress(Exception):  # a run id SQLite cannot take, say
            db.execute(
                "UPDATE runs SET status = 'failed', reason = ? WHERE run_id = ?",
                (f"its commits from {own[0].first} on cannot be stored: {cause}", run_id),
            )

    def _answer(self, flushes: list[_Flush], stuck_since: float) -> list[_Flush]:
        """Answer the flushes once what came before them is written; while a transient
        error lasts they wait, up to ``GIVE_UP`` seconds. Returns those still waiting."""
        stuck = self._stuck
        if stuck is None:
            for marker in flushes:
                marker.done.set_result(None)
            return []
        if time.monotonic() - stuck_since < GIVE_UP:
            return flushes
        failure = StoreError(
            f"could not write to the run store {self.path!r} for {GIVE_UP:.0f} s: "
            f"{type(stuck).__name__}: {stuck}. The commits are kept, and written once "
            "it clears (while this process lives)"
        )
        failure.__cause__ = stuck
        for marker in flushes:
            marker.done.set_exception(failure)
        return []

    def _take(self, everything: bool, wait: float) -> tuple[list[Segment], float | None]:
        """The buffered commits, and the steps the announced journals hold, if
        ``everything`` is asked for or they are due, and else when to look again (None:
        the buffer is empty). They are due when the runs have been quiet for ``quiet``
        seconds, or the oldest has waited ``max_wait``. While the runs are busy the
        writer looks again after ``wait`` seconds, longer each time (see the module's
        notes)."""
        with self._lock:
            if self._empty():
                return [], None
            now, oldest = time.monotonic(), self._first + self.max_wait
            last = max([self._last, *(journal.committed for journal in self._announced)])
            if not everything and now < last + self.quiet and now < oldest:
                return [], min(max(now + wait, last + self.quiet), oldest)
            journals, self._announced = self._announced, []
        for journal in journals:  # the steps they hold join the buffer
            try:
                journal.hand_over()
            except Exception as exc:  # the run fails with it at its next commit
                journal.failure = exc
        with self._lock:
            segments = [*self._closed, *self._open.values()]
            self._open, self._closed = {}, []
            return segments, None

    def _flush_at_exit(self) -> None:
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

    async def runs_starting(self, prefix: str, limit: int) -> list[str]:
        """The ids that begin with ``prefix``, sorted, at most ``limit`` (``FindsRuns``)."""
        await self.flush()
        return await asyncio.to_thread(self._starting, prefix, limit)

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        try:
            with closing(self._connect()) as db:
                yield db
        except sqlite3.Error as exc:
            raise StoreError(f"could not read the run store {self.path!r}: {exc}") from exc

    def _load(self, run_id: str, step: int | None) -> Commit | None:
        with self._reading() as db:
            return read_run(db, self.path, run_id, step)

    def _list(self, flow: str | None, limit: int) -> list[RunInfo]:
        with self._reading() as db:
            return read_runs(db, self.path, flow, limit)

    def _starting(self, prefix: str, limit: int) -> list[str]:
        with self._reading() as db:
            return read_ids(db, prefix, limit)


def _longer(wait: float) -> float:
    """The wait before the next try after a transient error: twice the last, from
    ``RETRY_FIRST`` up to ``RETRY_MOST``."""
    return min(RETRY_MOST, max(RETRY_FIRST, wait * 2))


def _by_run(segments: list[Segment]) -> dict[str, list[Segment]]:
    """The segments of each run, in order."""
    runs: dict[str, list[Segment]] = {}
    for segment in segments:
        assert segment.run is not None
        runs.setdefault(segment.run.run_id, []).append(segment)
    return runs
