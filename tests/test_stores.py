"""A store of one's own, written against `flowgraph.stores` only: the public names are
enough to keep runs anywhere, and flowgraph's guarantees hold through it."""

from __future__ import annotations

import flowgraph as fg
from flowgraph.stores import Checkpointer, Commit, RunInfo, fold, run_info, upto


class ListStore:
    """Each run's commits in a list, as a table keyed on the run would hold them."""

    def __init__(self) -> None:
        self.rows: dict[str, list[Commit]] = {}
        self.flushes = 0

    def commit(self, commit: Commit) -> None:
        self.rows.setdefault(commit.run_id, []).append(commit)

    async def flush(self) -> None:
        self.flushes += 1

    async def load(self, run_id: str, *, step: int | None = None) -> Commit | None:
        commits = upto(self.rows.get(run_id, []), step)
        return fold(commits) if commits else None

    async def list_runs(self, flow: str | None = None, limit: int = 100) -> list[RunInfo]:
        runs = [run_info(fold(commits)) for commits in self.rows.values()]
        return [info for info in runs if flow in (None, info.flow)][:limit]


def counting_flow() -> fg.Flow:
    def count(ctx: fg.RunContext) -> int:
        ctx.context["n"] += 1
        return int(ctx.context["n"])

    flow = fg.Flow("counting")
    ask = fg.Human("ask", prompt="Go on?")
    flow.edge(fg.START, fg.ToolStep("count", count))
    flow.edge("count", ask, when=lambda ctx: ctx.context["n"] == 3)
    flow.edge("count", fg.END, when=lambda ctx: ctx.context["n"] >= 5)
    flow.edge("count", "count")
    flow.edge(ask, "count")
    return flow


def test_a_store_written_against_the_public_names_pauses_resumes_lists_and_forks() -> None:
    store = ListStore()
    assert isinstance(store, Checkpointer)
    flow = counting_flow()

    paused = flow.run("go", context={"n": 0}, store=store)
    assert paused.status == "waiting" and store.flushes > 0
    assert [info.status for info in flow.runs(store)] == ["waiting"]

    done = flow.resume(paused.run_id, store=store, reply="yes")
    assert done.status == "completed"
    assert done.path == ["count", "count", "count", "ask", "count", "count"]
    assert done.context == {"n": 5}
    assert [m["content"] for m in done.messages if m["role"] == "user"] == ["go", "yes"]

    forked = flow.fork(paused.run_id, step=2, store=store, context={"n": 3})
    again = flow.resume(forked, store=store)  # n was 2 after step 2: 4, then 5 ends it
    assert again.path == ["count", "count", "count", "count"]
    assert {info.run_id for info in flow.runs(store)} == {paused.run_id, forked}
