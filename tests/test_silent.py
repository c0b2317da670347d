"""Issue 17: what used to fail silently, or only sometimes."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

import flowgraph as fg


def one_step() -> fg.Flow:
    flow = fg.Flow("one")
    flow.edge(fg.START, fg.ToolStep("noop", lambda: None))
    flow.edge("noop", fg.END)
    return flow


@pytest.mark.parametrize("store", [None, "runs.db"])
def test_context_that_is_not_json_fails_at_run_start_with_or_without_a_store(
    store: str | None, tmp_path: Path
) -> None:
    """It ran without a store and failed only with one (item 4)."""
    stored = tmp_path / store if store else None
    with pytest.raises(fg.RunError, match=r"\('when' holds a value of type datetime\)"):
        one_step().run("x", context={"when": datetime.datetime.now()}, store=stored)
