"""Leases: one driver per run at a time.

Starting or resuming a run takes its lease in the store: an owner (this host, this
process, this store object) and an expiry, renewed while the owner lives (the SQLite
writer renews all of its leases at once, every third of the lease). A second driver is
refused with an error naming the holder; when the holder's process dies its lease is
taken over at once on the same host (its process is gone), elsewhere once it lapses.
A run's lease is released when its drive ends: completed, failed, paused or cancelled.

The lease is kept in a table beside the runs (``leases``: run id, owner, expiry), so
that it extends to stores shared by many machines: only the expiry crosses hosts.
"""

from __future__ import annotations

import concurrent.futures
import os
import socket
import sqlite3
import time
import uuid
from contextlib import suppress
from typing import Protocol, cast, runtime_checkable

from flowgraph._base.callables import implements
from flowgraph._base.errors import StoreError, UsageError

LEASE = 60.0  # seconds a lease lasts without renewal
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS leases "
    "(run_id TEXT PRIMARY KEY, owner TEXT NOT NULL, expires REAL NOT NULL)"
)
HOST = socket.gethostname()


@runtime_checkable
class Leases(Protocol):
    """A store that leases its runs to one driver at a time."""

    async def take_lease(self, run_id: str, *, fresh: bool = False) -> None:
        """Take the run's lease, or raise ``UsageError`` naming who holds it. A
        ``fresh`` run (a new id no one else can know) may be leased with its first
        commit."""
        ...

    async def drop_lease(self, run_id: str) -> None:
        """Release the run's lease (this driver's own only)."""
        ...


class leased:
    """Hold the run's lease while the block runs, if the store leases runs. A small
    object, not a generator: a thousand runs at once each keep one while they run."""

    __slots__ = ("fresh", "run_id", "store")

    def __init__(self, store: object, run_id: str, *, fresh: bool = False) -> None:
        self.store = cast(Leases, store) if implements(store, Leases) else None
        self.run_id, self.fresh = run_id, fresh

    async def __aenter__(self) -> None:
        if self.store is not None:
            await self.store.take_lease(self.run_id, fresh=self.fresh)

    async def __aexit__(self, *exc: object) -> None:
        if self.store is not None:
            with suppress(StoreError):  # unreleased, it lapses: the run's outcome stands
                await self.store.drop_lease(self.run_id)


def new_owner() -> str:
    """Who holds a lease: this host, this process and a token for the store object."""
    return f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LeaseRequest:
    """A lease to take (``take``) or release, for a store's writer to apply; ``done``
    gets the outcome (a ``UsageError`` when another driver holds the run)."""

    __slots__ = ("done", "run_id", "take")

    def __init__(self, run_id: str, take: bool) -> None:
        self.run_id, self.take = run_id, take
        self.done: concurrent.futures.Future[None] = concurrent.futures.Future()


def apply(db: sqlite3.Connection, requests: list[LeaseRequest], owner: str, lease: float) -> None:
    """Take and release leases for ``owner``, in one transaction; each request's
    ``done`` gets its outcome once it is committed."""
    refused: dict[int, UsageError] = {}
    db.execute("BEGIN IMMEDIATE")
    try:
        for index, request in enumerate(requests):
            if not request.take:
                release(db, [request.run_id], owner)
                continue
            row = db.execute(
                "SELECT owner, expires FROM leases WHERE run_id = ?", (request.run_id,)
            )
            held = row.fetchone()
            if held is not None and held[0] != owner and held[1] > time.time() and _alive(held[0]):
                refused[index] = UsageError(_refusal(request.run_id, held[0], held[1]))
                continue
            take(db, [request.run_id], owner, lease)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    for index, request in enumerate(requests):
        if index in refused:
            request.done.set_exception(refused[index])
        else:
            request.done.set_result(None)


def take(db: sqlite3.Connection, run_ids: list[str], owner: str, lease: float) -> None:
    expires = time.time() + lease
    db.executemany(
        "INSERT INTO leases (run_id, owner, expires) VALUES (?, ?, ?) ON CONFLICT "
        "(run_id) DO UPDATE SET owner = excluded.owner, expires = excluded.expires",
        [(run_id, owner, expires) for run_id in run_ids],
    )


def release(db: sqlite3.Connection, run_ids: list[str], owner: str) -> None:
    db.executemany(
        "DELETE FROM leases WHERE run_id = ? AND owner = ?", [(run_id, owner) for run_id in run_ids]
    )


def renew(db: sqlite3.Connection, owner: str, lease: float) -> None:
    db.execute("UPDATE leases SET expires = ? WHERE owner = ?", (time.time() + lease, owner))


def refusal_here(run_id: str) -> str:
    return (
        f"run {run_id!r} is being driven in this process already: wait for that run() or "
        "resume() to return before resuming it again"
    )


def _refusal(run_id: str, owner: str, expires: float) -> str:
    host, pid, _ = [*owner.split(":"), "", ""][:3]
    until = time.strftime("%H:%M:%S", time.localtime(expires))
    return (
        f"run {run_id!r} is being driven by process {pid} on {host!r} (its lease runs to "
        f"{until}, renewed while that process lives): resume it once that drive ends, or "
        "once the lease lapses if that process died"
    )


def _alive(owner: str) -> bool:
    """Whether the owner's process may be alive: on another host, assume so."""
    parts = owner.split(":")
    if len(parts) != 3 or parts[0] != HOST or not parts[1].isdigit():
        return True
    pid = int(parts[1])
    if pid == os.getpid():
        return True  # another store object of this process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # alive, another user's
        return True
    return True
