"""The SQLite file's format: its tables, the entries of a segment, and how they are
written and read back. ``sqlite.py`` buffers commits and writes them with these.

Tables: ``runs`` (one row per run, for listing) and ``commits`` (one row per run and
batch, a segment: a JSON array of an entry per commit, each with the messages it
added, and the path they added). Nothing is rewritten as the conversation grows.
"""

from __future__ import annotations

import contextlib
import json
import operator
import sqlite3
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import orjson
from pydantic_core import to_json, to_jsonable_python

from flowgraph._base.errors import ConfigurationError
from flowgraph._base.result import StepRecord, Waiting
from flowgraph._store.records import (
    Commit,
    Position,
    Spent,
    Step,
    UnstorableStep,
    as_spent,
    spent,
    usage_of,
)

BUSY_TIMEOUT = 60.0  # seconds a write waits for a lock before it fails (and is retried)
SCHEMA_VERSION = 6  # 6: a step's record may hold its model and hooks
UPGRADES = {5: "a step's record gains optional items: 5's records read as they are"}
"""The formats this version reads and, on opening, marks as its own."""
SCHEMA = f"""
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
    first INTEGER NOT NULL,
    path TEXT,
    data TEXT NOT NULL,
    created REAL NOT NULL,
    UNIQUE (run_id, seq)
);
PRAGMA user_version = {SCHEMA_VERSION};
"""


def use_wal(db: sqlite3.Connection, busy_timeout: float) -> None:
    """Put the file in WAL mode. SQLite does not wait for a busy file here (another
    process creating the tables holds it): try again until the busy timeout."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def refuse_foreign(db: sqlite3.Connection, path: str) -> bool:
    """Whether the file holds flowgraph's tables; raise if it holds someone else's (a
    database that is not empty and not a run store is never changed)."""
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    if not tables or "commits" in tables:
        return bool(tables)
    shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
    raise ConfigurationError(
        f"{path!r} is a SQLite database that is not a flowgraph run store (it holds "
        f"{shown}); it was left as it is: give the path of a new file, or of a run store"
    )


def create_tables(db: sqlite3.Connection, path: str) -> None:
    """Create the tables, or check that the file's are the ones this version writes;
    in one transaction, as other processes may be opening the file too."""
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if not refuse_foreign(db, path):
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
        elif version in UPGRADES:
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif version != SCHEMA_VERSION:
            raise ConfigurationError(
                f"the run store {path!r} was written by another version of flowgraph (its "
                f"format is {version}, this one reads {SCHEMA_VERSION}): finish or drop its "
                "runs with that version, or give a new file"
            )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


COMMIT_COLUMNS = "run_id, seq, first, path, data, created"
RUN_COLUMNS = "run_id, flow, status, step, node, reason, usage, parent, created, updated, seq"
ON_RUN_CONFLICT = (
    " ON CONFLICT (run_id) DO UPDATE SET status = excluded.status, step = excluded.step, "
    "node = excluded.node, reason = excluded.reason, usage = excluded.usage, "
    "updated = excluded.updated, seq = excluded.seq WHERE excluded.seq > runs.seq"
)
ROWS_PER_STATEMENT = 500  # 11 columns each: well under SQLite's 32,766 variables


# A run's row fields as its latest commit left them: run id, flow, status, step,
# positions, reason, usage, parent, started, created, seq.
class RunFields(NamedTuple):
    """A run's fields as its latest commit in a segment left them: its ``runs`` row."""

    run_id: str
    flow: str
    status: str
    step: int
    positions: list[Position]
    reason: str
    usage: Spent
    parent: str | None
    started: float
    created: float
    seq: int


class Segment:
    """One run's commits in a batch, to be written as one row: their entries, encoded
    as they were handed over (a chunk of entries per hand-over), the path they added,
    and the run's fields as the latest left them. It keeps only bytes, strings and a
    tuple, in lists made once per segment: containers kept until written made the
    garbage collector walk the heap more often."""

    __slots__ = ("entries", "first", "path", "run", "seq")

    def __init__(self, first: int) -> None:
        self.first, self.seq = first, first - 1  # its first commit's seq; its last's
        self.entries: list[bytes] = []
        self.path: list[str] = []
        self.run: RunFields | None = None

    def row(self) -> tuple[Any, ...]:
        """The ``commits`` row: a JSON array of the entries, and the path."""
        assert self.run is not None
        return (
            self.run.run_id,
            self.seq,
            self.first,
            _json(self.path) if self.path else None,
            (b"[" + b",".join(self.entries) + b"]").decode(),
            self.run.created,
        )


def dump_one_by_one(
    entries: list[tuple[Any, ...]], run_id: str, steps: list[Step]
) -> tuple[bytes, UnstorableStep | None, list[Step]]:
    """A batch orjson does not take (an int over 64 bits, a key not a string), its
    entries encoded one by one. At an entry nothing can encode: the entries before
    it, the error, which names its step, and the steps before it."""
    parts: list[bytes] = []
    for index, entry in enumerate(entries):
        try:
            parts.append(orjson.dumps(entry, default=to_jsonable_python))
        except orjson.JSONEncodeError:
            try:
                parts.append(to_json(entry))
            except ValueError as exc:  # pydantic-core's errors are ValueErrors
                failure = UnstorableStep(
                    f"run {run_id}: step {entry[0]} cannot be stored as JSON ({exc}); keep "
                    "JSON data (str, numbers, lists, dicts) in messages and outputs",
                    steps[index].seq,
                )
                failure.__cause__ = exc
                return b",".join(parts), failure, steps[:index]
    return b",".join(parts), None, steps


def where_at(positions: list[Position], step: int) -> str | list[list[Any]]:
    """Where a step stands, compactly: most steps are on their way to a node at
    their step, and then this is just its name."""
    first = positions[0] if len(positions) == 1 else None
    if first is not None and first.phase == "next" and first.step == step and first.bare():
        return first.node
    return [position.dump() for position in positions]


def _positions(at: str | list[list[Any]], step: int) -> list[Position]:
    if isinstance(at, str):
        return [Position(at, "next", step)]
    return [Position.load(item) for item in at]


def compact_record(record: Any) -> list[Any]:
    """A step's record (a ``StepRecord``, or its JSON data as read back from a file) as
    a compact array: step, node, seconds, usage, edge, next; then, those that are set
    and those before them, a sub-flow's records, the model's name, the hooks' records
    (each ``[hook, point, injected, flows]``) and 1 if the agent ran out of turns."""
    if type(record) is dict:  # seldom: a fork of a run read back from a file
        record = StepRecord.model_validate(record)
    # The model's fields in one call: each attribute read of a pydantic model costs
    # several times a plain object's, and there is a record per step.
    fields = RECORD_FIELDS(record.__dict__)
    step, node, seconds, usage, edge, target, inner, model, hooks, out_of_turns = fields
    compact = [step, node, seconds, spent(usage), edge, target]
    if inner or model is not None or hooks or out_of_turns:
        tail = [
            [compact_record(item) for item in inner],
            model,
            [[h.hook, h.point, h.injected, h.flows] for h in hooks],
            1 if out_of_turns else 0,
        ]
        while tail[-1] == TAIL_DEFAULTS[len(tail) - 1]:  # only up to the last one set
            tail.pop()
        compact.extend(tail)
    return compact


RECORD_FIELDS = operator.itemgetter(
    "step",
    "node",
    "seconds",
    "usage",
    "edge",
    "next",
    "inner",
    "model",
    "hooks",
    "max_turns_reached",
)
TAIL_DEFAULTS: list[Any] = [[], None, [], 0]  # a record's optional items, when not set
HOOK_FIELDS = ("hook", "point", "injected", "flows")


def _unrecord(compact: list[Any]) -> dict[str, Any]:
    """A step's record as ``StepRecord`` JSON data, back from ``record``'s array."""
    step, node, seconds, usage, edge, target, *more = compact
    more += TAIL_DEFAULTS[len(more) :]
    inner, model, hooks, out_of_turns = more
    return {
        "step": step,
        "node": node,
        "seconds": seconds,
        "usage": usage_of(as_spent(usage)).model_dump(),
        "edge": edge,
        "next": target,
        "inner": [_unrecord(item) for item in inner],
        "model": model,
        "hooks": [dict(zip(HOOK_FIELDS, hook, strict=True)) for hook in hooks],
        "max_turns_reached": bool(out_of_turns),
    }


# A commit's entry in a segment. "at": its positions; "from": where its messages start
# in the conversation; "messages": the messages it added; "usage": the run's usage;
# "by_node": the usage of the nodes whose usage changed; "path": how many path entries
# it added (the segment's path column holds them); "extra": the fields of RARE that
# are set (status when not "running"), and the output if it changed. A commit's seq
# is the segment's first plus its index.
ENTRY = (
    "step",
    "at",
    "from",
    "messages",
    "usage",
    "by_node",
    "path",
    "context",
    "trace",
    "extra",
)
UNWRITTEN = object()  # an output like no other: none written yet


def write_segments(
    db: sqlite3.Connection,
    segments: list[Segment],
    also: Callable[[sqlite3.Connection, list[RunFields]], None] | None = None,
) -> None:
    """Write the segments, and each run's newest state, in one transaction (with what
    ``also`` writes of those runs: their leases).

    Rows go in by multi-row INSERTs, not ``executemany``: each statement hands the
    GIL back and forth with the event loop's thread once, not once per row.
    """
    rows = [segment.row() for segment in segments]
    latest: dict[str, RunFields] = {}  # a run's closed segments come before its open one
    for segment in segments:
        if segment.run is not None:
            latest[segment.run.run_id] = segment.run
    runs = [_run_row(*run) for run in latest.values()]
    db.execute("BEGIN IMMEDIATE")
    try:
        _insert(db, "INSERT OR REPLACE INTO commits", COMMIT_COLUMNS, rows, "")
        _insert(db, "INSERT INTO runs", RUN_COLUMNS, runs, ON_RUN_CONFLICT)
        if also is not None:
            also(db, list(latest.values()))
        db.execute("COMMIT")
    except BaseException:
        # SQLite may have ended the transaction itself (a full disk does): rolling
        # back again would raise, and hide the cause.
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise


def is_transient(exc: BaseException) -> bool:
    """A write error that may clear by itself: the file locked past the busy timeout,
    the disk full, an I/O error. Others (a value SQLite cannot take) come back on
    every try."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    name = getattr(exc, "sqlite_errorname", "")  # Python 3.11 and later
    if name:
        return name.split("_")[1] in {"BUSY", "LOCKED", "FULL", "IOERR", "CANTOPEN"}
    text = str(exc)
    return any(word in text for word in ("locked", "busy", "full", "disk I/O", "unable to open"))


def _insert(
    db: sqlite3.Connection, insert: str, columns: str, rows: list[tuple[Any, ...]], tail: str
) -> None:
    width = columns.count(",") + 1
    row = "(" + ", ".join("?" * width) + ")"
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start : start + ROWS_PER_STATEMENT]
        values = ", ".join([row] * len(chunk))
        # "WHERE true" keeps an upsert's ON CONFLICT from being read as a join's ON.
        where = " WHERE true" if tail else ""
        db.execute(
            f"{insert} ({columns}) SELECT * FROM (VALUES {values}){where}{tail}",
            [value for item in chunk for value in item],
        )


def decode_segments(
    run: tuple[str, str, str | None, float], rows: list[tuple[Any, ...]]
) -> list[Commit]:
    """A run's commits back from its segments, in order. ``run``: its id, flow, parent
    and start, as the runs table holds them; ``rows``: seq, first, path, data, created."""
    commits: list[Commit] = []
    output = None
    for seq, first, path_text, text, created in rows:
        if first != len(commits) + 1:
            raise ValueError(f"its commits {len(commits) + 1} to {first - 1} are missing")
        entries, path = json.loads(text), json.loads(path_text) if path_text else []
        if first + len(entries) - 1 != seq:
            raise ValueError(
                f"its segment ending at commit {seq} holds {len(entries)} commits, "
                f"not {seq - first + 1}: the file is damaged"
            )
        entered = 0  # path entries taken by the commits so far
        for index, values in enumerate(entries):
            entry = dict(zip(ENTRY, values, strict=True))
            extra = entry.pop("extra") or {}
            output = extra.pop("output", output)
            steps = entry["path"]
            entry.update(extra)
            entry.update(seq=first + index, path=path[entered : entered + steps], output=output)
            commits.append(_commit(run, entry, created))
            entered += steps
    return commits


def _commit(
    run: tuple[str, str, str | None, float], entry: dict[str, Any], created: float
) -> Commit:
    """One commit back from its segment entry (given its seq, path and output)."""
    run_id, flow, parent, started = run
    waiting, usage, by_node = entry.get("waiting"), entry["usage"], entry["by_node"] or {}
    return Commit(
        run_id=run_id,
        flow=flow,
        seq=entry["seq"],
        status=entry.get("status", "running"),
        reason=entry.get("reason", ""),
        step=entry["step"],
        positions=_positions(entry["at"], entry["step"]),
        messages_from=entry["from"],
        messages=entry["messages"],
        usage=as_spent(usage),
        usage_by_node={name: as_spent(u) for name, u in by_node.items()},
        context=entry["context"],
        context_type=entry.get("context_type"),
        path=entry["path"],
        trace=[_unrecord(record) for record in entry["trace"] or ()],
        chats=entry.get("chats", []),
        notes=entry.get("notes", []),
        output=entry["output"],
        replies=entry.get("replies", {}),
        waiting=Waiting.model_validate(waiting) if waiting else None,
        parent=parent,
        inner=entry.get("inner", {}),
        started=started,
        created=created,  # when its segment's last commit was made
    )


def _run_row(
    run_id: str,
    flow: str,
    status: str,
    step: int,
    positions: list[Position],
    reason: str,
    usage: Spent,
    parent: str | None,
    started: float,
    created: float,
    seq: int,
) -> tuple[Any, ...]:
    """The ``runs`` row, from the fields of its latest commit."""
    node = positions[0].node if positions else None
    usage_json = _json(usage_of(usage).model_dump())
    return (
        run_id,
        flow,
        status,
        step,
        node,
        reason,
        usage_json,
        parent,
        started or created,
        created,
        seq,
    )


def _json(value: Any) -> str:
    """Compact JSON text (orjson: several times faster than json's encoder)."""
    return orjson.dumps(value).decode()
