"""What a run store is written against: for keeping runs somewhere flowgraph has no
store for (a database of your own), or reading what a store gives back.

``Checkpointer`` is the protocol: a store keeps each run's ``Commit`` records in order
and gives a run back as one folded ``Commit``; ``list_runs`` describes runs as
``RunInfo``. A store may also take the plain steps of a running run in batches
(``StepStore``: ``commit_steps`` of ``Step`` records, ``announce`` of the journal's
``HeldSteps``), as flowgraph's own stores do; any other Checkpointer is given one
``Commit`` at a time. ``Position`` says where a run stands in a commit. A store that
can be shared by processes leases each run to one driver at a time (``Leases``, as
SQLite does): a second driver is refused, naming the holder.

A commit holds only what its step changed. ``fold`` joins a run's commits into the
one ``load`` returns, ``upto`` picks those that end at a given step (for
``load(step=)``, which forking uses), and ``run_info`` describes a folded run: with
them a store of your own keeps a list of commits per run, and little else.

Example:
    >>> import flowgraph.stores as stores
    >>> isinstance(stores.MemoryCheckpointer(), stores.Checkpointer)
    True
"""

from __future__ import annotations

from flowgraph._base.errors import StoreError
from flowgraph._store.lease import Leases
from flowgraph._store.memory import MemoryCheckpointer
from flowgraph._store.protocol import Checkpointer, HeldSteps, StepStore
from flowgraph._store.records import Commit, Position, RunInfo, Step, fold, run_info, upto
from flowgraph._store.sqlite import SQLiteCheckpointer

__all__ = [
    "Checkpointer",
    "Commit",
    "HeldSteps",
    "Leases",
    "MemoryCheckpointer",
    "Position",
    "RunInfo",
    "SQLiteCheckpointer",
    "Step",
    "StepStore",
    "StoreError",
    "fold",
    "run_info",
    "upto",
]
