"""Visits of the nodes that make no model request of their own: a tool step calls
its function, a Human node asks and pauses the run until the reply comes."""

from __future__ import annotations

import asyncio
from typing import Any

from flowgraph._base.callables import call_inline, call_user
from flowgraph._base.failures import RunError
from flowgraph._base.messages import as_text
from flowgraph._base.retry import NO_RETRY, DeadlinePassed, retrying_on_named
from flowgraph._engine.run import Run, Visit
from flowgraph._graph.human import Human
from flowgraph._graph.nodes import ToolStep


async def run_tool_step(run: Run, node: ToolStep) -> Visit:
    """Call the step's function (retried and timed as it says); a value it returns
    joins the conversation as an assistant message named after the node."""
    args = (run.ctx,) if node.takes_context else ()
    try:
        value: Any = await retrying_on_named(
            lambda: call_user(node.fn, *args),
            node.retry,
            timeout=node.timeout,
            deadline=run.deadline,
        )
    except DeadlinePassed as exc:
        raise run.deadline_passed(node.name) from exc.__cause__
    except (TimeoutError, asyncio.TimeoutError) as exc:
        policy = node.retry or NO_RETRY
        raise RunError(
            f"tool step {node.name!r} did not finish within {node.timeout:g} s "
            f"({policy.attempts} attempt{'s' * (policy.attempts > 1)})",
            node=node.name,
        ) from exc
    if value is not None:
        run.append({"role": "assistant", "name": node.name, "content": as_text(value)})
    return Visit(output=value)


async def ask_human(run: Run, node: Human) -> Visit:
    """Ask the node's prompt and pause; resumed with the reply, go on with it."""
    prompt = node.prompt
    text: str = await call_inline(prompt, run.ctx) if callable(prompt) else prompt
    key = run.call_key(node.name)
    if not run.replied(key):  # first time here: ask
        run.append({"role": "assistant", "name": node.name, "content": text})
    reply: Any = run.interrupt(text, "human", key)
    run.append({"role": "user", "content": as_text(reply)})
    return Visit(output=reply)
