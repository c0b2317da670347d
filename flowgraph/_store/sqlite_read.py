"""Reading a SQLite run store: a run folded from its segments, and the runs listed.
A record that cannot be read is a ``StoreError`` naming its run; the others stay
readable."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from flowgraph._base.context import Usage
from flowgraph._base.errors import StoreError
from flowgraph._store.records import Commit, RunInfo, fold, upto
from flowgraph._store.sqlite_format import decode_segments


def read_run(db: sqlite3.Connection, path: str, run_id: str, step: int | None) -> Commit | None:
    """The run folded into one commit (up to ``step``), or None if there is no such run."""
    db.execute("BEGIN")  # one snapshot for both queries
    run = db.execute(
        "SELECT run_id, flow, parent, created, status, reason FROM runs WHERE run_id = ?",
        (run_id,),
    ).fetchone()
    rows = db.execute(
        "SELECT seq, first, path, data, created FROM commits WHERE run_id = ? ORDER BY seq",
        (run_id,),
    ).fetchall()
    db.execute("COMMIT")
    if run is None:
        return None
    try:
        commits = upto(decode_segments(run[:4], rows), step)
        snapshot = fold(commits) if commits else None
    except (ValueError, TypeError, KeyError, IndexError) as exc:  # pydantic's too
        raise _damaged(path, run_id, exc) from exc
    if snapshot is not None and step is None and run[4] == "failed":
        # Failed by the writer (SQLiteCheckpointer._fail_run): its last commit says running.
        snapshot.status, snapshot.reason = "failed", run[5]
    return snapshot


def read_runs(db: sqlite3.Connection, path: str, flow: str | None, limit: int) -> list[RunInfo]:
    """The newest runs first (of ``flow``, if given)."""
    query = "SELECT run_id, flow, status, step, node, reason, usage, parent, created, updated"
    query += " FROM runs" + (" WHERE flow = ?" if flow is not None else "")
    query += " ORDER BY updated DESC LIMIT ?"
    rows = db.execute(query, (*([flow] if flow is not None else []), limit)).fetchall()
    infos = []
    for row in rows:
        try:
            infos.append(_info(db, *row))
        except (ValueError, TypeError) as exc:  # pydantic's too
            raise _damaged(path, row[0], exc) from exc
    return infos


def read_ids(db: sqlite3.Connection, prefix: str, limit: int) -> list[str]:
    """The run ids that begin with ``prefix``, sorted: a range of the primary key, from
    ``prefix`` to the first text past all that begin with it (UTF-8 sorts by code point)."""
    last = ord(prefix[-1]) if prefix else 0x10FFFF
    if last in (0xD7FF, 0x10FFFF):  # no next character to end the range on: check them all
        query = "SELECT run_id FROM runs WHERE run_id >= ? AND substr(run_id, 1, ?) = ?"
        bounds: tuple[object, ...] = (prefix, len(prefix), prefix)
    else:
        query = "SELECT run_id FROM runs WHERE run_id >= ? AND run_id < ?"
        bounds = (prefix, prefix[:-1] + chr(last + 1))
    rows = db.execute(query + " ORDER BY run_id LIMIT ?", (*bounds, limit)).fetchall()
    return [run_id for (run_id,) in rows]


def _info(db: sqlite3.Connection, run_id: str, *fields: Any) -> RunInfo:
    name, status, step, node, reason, usage, parent, created, updated = fields
    path: list[str] = []
    for (entered,) in db.execute(
        "SELECT path FROM commits WHERE run_id = ? AND path IS NOT NULL ORDER BY seq",
        (run_id,),
    ):
        path.extend(json.loads(entered))
    return RunInfo(
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


def _damaged(path: str, run_id: str, exc: Exception) -> StoreError:
    return StoreError(
        f"run {run_id!r} in the run store {path!r} cannot be read: "
        f"{type(exc).__name__}: {str(exc)[:300]}. The other runs in the file can still be "
        "read and resumed"
    )
