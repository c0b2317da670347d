"""The store protocol: what a run's journal hands a store, and what it asks back.

``Checkpointer`` is what users implement to keep runs anywhere (one ``Commit`` at a
time). ``StepStore`` is the one protocol the journal speaks: a ``Checkpointer`` that
also takes a run's plain steps in batches. flowgraph's own stores (memory, SQLite)
are StepStores; any other Checkpointer is made one by ``as_step_store``.
"""

from __future__ import annotations

from typing import Protocol, cast, runtime_checkable

from flowgraph._base.callables import implements
from flowgraph._store.records import Commit, RunInfo, Step, commit_of


@runtime_checkable
class Checkpointer(Protocol):
    """Where runs are committed. Implement it to keep runs anywhere else.

    ``commit`` must keep each run's commits in the order given and may write them
    later; ``flush`` returns once every commit made before it is durable.

    Example:
        >>> store = fg.MemoryCheckpointer()
        >>> result = flow.run("Hi", store=store)  # doctest: +SKIP
        >>> flow.runs(store)[0].status  # doctest: +SKIP
        'completed'
    """

    def commit(self, commit: Commit) -> None: ...

    async def flush(self) -> None: ...

    async def load(self, run_id: str, *, step: int | None = None) -> Commit | None:
        """The run folded into one commit (up to ``step``, if given), or None."""
        ...

    async def list_runs(self, flow: str | None = None, limit: int = 100) -> list[RunInfo]:
        """The newest runs first."""
        ...


class HeldSteps(Protocol):
    """A run's journal as a ``StepStore`` sees it: plain steps it holds for the store."""

    committed: float
    """When its newest step was made (``time.monotonic()``)."""
    failure: Exception | None
    """Set by the store when it could not take the steps."""

    def hand_over(self) -> None:
        """Give the store the steps held, now (``commit_steps``)."""
        ...


@runtime_checkable
class StepStore(Checkpointer, Protocol):
    """A ``Checkpointer`` that also takes a run's plain steps in batches: the one
    protocol the journal writes through."""

    def commit_steps(
        self, run_id: str, flow: str, parent: str | None, started: float, steps: list[Step]
    ) -> None:
        """Commit the run's ``steps``, in order (they follow its earlier commits)."""
        ...

    def announce(self, journal: HeldSteps) -> None:
        """``journal`` holds steps for this store: take them (``journal.hand_over()``)
        when it suits the store, and no later than a ``flush``."""
        ...


@runtime_checkable
class FailsRuns(Protocol):
    """A store that can fail to write one run's commits and still write the others'
    (SQLite, when a value in them cannot be stored): the run learns it at its next
    commit or flush."""

    def take_failure(self, run_id: str) -> Exception | None:
        """Why the run's commits could not be written, if they could not; told once."""
        ...


@runtime_checkable
class FindsRuns(Protocol):
    """A store that finds runs by the start of their id, as the pictures and the CLI
    show them (``3f2a9c41``), without reading every run (``find_runs``)."""

    async def runs_starting(self, prefix: str, limit: int) -> list[str]:
        """The ids that begin with ``prefix``, sorted, at most ``limit`` of them."""
        ...


async def find_runs(store: Checkpointer, prefix: str, limit: int = 10) -> list[str]:
    """The ids of ``store``'s runs that begin with ``prefix``: the run itself when one
    has exactly that id; otherwise sorted, at most ``limit``. A store that cannot look
    them up by prefix (``FindsRuns``) is read in full."""
    if await store.load(prefix) is not None:
        return [prefix]
    if implements(store, FindsRuns):
        return await cast(FindsRuns, store).runs_starting(prefix, limit)
    runs = await store.list_runs(None, limit=2**31 - 1)
    return sorted(info.run_id for info in runs if info.run_id.startswith(prefix))[:limit]


class CommitEach:
    """A ``Checkpointer`` made a ``StepStore``: each step it is handed becomes a
    ``Commit``, at once."""

    def __init__(self, store: Checkpointer) -> None:
        self.store = store

    def __repr__(self) -> str:
        return repr(self.store)

    def commit(self, commit: Commit) -> None:
        self.store.commit(commit)

    def commit_steps(
        self, run_id: str, flow: str, parent: str | None, started: float, steps: list[Step]
    ) -> None:
        for step in steps:
            self.store.commit(commit_of(run_id, flow, parent, started, step))

    def announce(self, journal: HeldSteps) -> None:
        journal.hand_over()

    async def flush(self) -> None:
        await self.store.flush()

    async def load(self, run_id: str, *, step: int | None = None) -> Commit | None:
        return await self.store.load(run_id, step=step)

    async def list_runs(self, flow: str | None = None, limit: int = 100) -> list[RunInfo]:
        return await self.store.list_runs(flow, limit)


def as_step_store(store: Checkpointer) -> StepStore:
    """``store`` itself if it takes steps in batches, else wrapped to take them."""
    return cast(StepStore, store) if implements(store, StepStore) else CommitEach(store)
