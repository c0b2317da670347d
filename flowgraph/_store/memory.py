"""``MemoryCheckpointer``: runs kept in this process (tests, and paused runs given no
store)."""

from __future__ import annotations

from flowgraph._store.protocol import HeldSteps
from flowgraph._store.records import Commit, RunInfo, Step, commit_of, fold, run_info, upto


class MemoryCheckpointer:
    """Keeps commits in this process: for tests, and for runs given no store.

    Example:
        >>> store = MemoryCheckpointer()
        >>> store.run_ids()
        []
    """

    def __init__(self) -> None:
        self._commits: dict[str, list[Commit]] = {}
        self._updated: dict[str, float] = {}

    def commit(self, commit: Commit) -> None:
        self._commits.setdefault(commit.run_id, []).append(commit)
        self._updated[commit.run_id] = commit.created

    def commit_steps(
        self, run_id: str, flow: str, parent: str | None, started: float, steps: list[Step]
    ) -> None:
        for step in steps:
            self.commit(commit_of(run_id, flow, parent, started, step))

    def announce(self, journal: HeldSteps) -> None:
        journal.hand_over()  # nothing to wait for: take the steps now

    async def flush(self) -> None:
        return None

    async def load(self, run_id: str, *, step: int | None = None) -> Commit | None:
        commits = upto(self._commits.get(run_id, []), step)
        return fold(commits) if commits else None

    async def list_runs(self, flow: str | None = None, limit: int = 100) -> list[RunInfo]:
        newest = sorted(self._commits, key=lambda run_id: -self._updated[run_id])
        snapshots = (fold(self._commits[run_id]) for run_id in newest)
        return [run_info(s) for s in snapshots if flow is None or s.flow == flow][:limit]

    async def runs_starting(self, prefix: str, limit: int) -> list[str]:
        """The ids that begin with ``prefix``, sorted, at most ``limit`` (``FindsRuns``)."""
        return sorted(run_id for run_id in self._commits if run_id.startswith(prefix))[:limit]

    def run_ids(self) -> list[str]:
        return list(self._commits)

    def forget(self, run_id: str) -> None:
        """Drop a run's commits (the default store does so once a run completes)."""
        self._commits.pop(run_id, None)
        self._updated.pop(run_id, None)
