"""Opening a store: a path names a SQLite file (opened once per process), a
``Checkpointer`` is used as it is; runs given no store pause in ``DEFAULT_STORE``."""

from __future__ import annotations

import os
from typing import cast

from flowgraph._base.callables import implements
from flowgraph._base.errors import UsageError
from flowgraph._store.memory import MemoryCheckpointer
from flowgraph._store.protocol import Checkpointer

Store = str | os.PathLike[str] | Checkpointer

# Runs given no store pause here, so flow.resume(run_id, reply=...) works in-process.
DEFAULT_STORE = MemoryCheckpointer()
_sqlite_stores: dict[str, Checkpointer] = {}


def open_store(store: Store | None) -> Checkpointer | None:
    """The checkpointer for ``store``: a path opens (once per process) a SQLite file."""
    if store is None or implements(store, Checkpointer):
        return cast(Checkpointer | None, store)
    if isinstance(store, (str, os.PathLike)):
        path = os.path.realpath(os.fspath(store))
        found = _sqlite_stores.get(path)
        if found is None:
            # Deferred with the sqlite3 driver: most runs are given no store.
            from flowgraph._store.sqlite import SQLiteCheckpointer

            found = _sqlite_stores[path] = SQLiteCheckpointer(path)
        return found
    raise UsageError(
        f"store={store!r} is not a store: pass a SQLite file path (e.g. 'runs.db') or a "
        "Checkpointer such as fg.MemoryCheckpointer()"
    )
