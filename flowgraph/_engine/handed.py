"""What an agent sees of the conversation it was handed (an edge's ``history``): the
whole of it, the whole without the transfer calls, or the part before the hand-off
folded into one message. Views only: ``run.messages`` keeps the full record, and a
view of a valid history is valid (every tool call it keeps is answered)."""

from __future__ import annotations

import json
from typing import Any

from flowgraph._base.messages import Message
from flowgraph._graph.edges import TRANSFER_PREFIX, Edge

SUMMARY_HEAD = "The conversation so far, handed to you by {source}:"


def seen(messages: list[Message], policy: str, edge: Edge, boundary: int) -> list[Message]:
    """``messages`` as the agent ``edge`` leads to sees them, under ``policy``;
    ``boundary``: where the conversation stood when the run took ``edge``."""
    if policy == "without_transfer":
        return without_transfers(messages)
    if policy == "summary" and boundary > 0:
        return [summary(messages[:boundary], edge.source), *messages[boundary:]]
    return messages


def without_transfers(messages: list[Message]) -> list[Message]:
    """The messages without ``transfer_to_*`` calls and the tool messages answering
    them; an assistant message left with neither text nor calls goes too."""
    dropped: set[str] = set()
    kept: list[Message] = []
    for message in messages:
        calls = message.get("tool_calls")
        if message.get("role") == "tool" and message.get("tool_call_id") in dropped:
            continue
        if calls:
            transfers = [c for c in calls if _name(c).startswith(TRANSFER_PREFIX)]
            if transfers:
                dropped.update(str(c.get("id")) for c in transfers)
                rest = [c for c in calls if c not in transfers]
                if not rest and not message.get("content"):
                    continue
                message = {**message, "tool_calls": rest} if rest else _text_only(message)
        kept.append(message)
    return kept


def summary(messages: list[Message], source: str) -> Message:
    """The messages as one user message: who said what, each tool call with its answer."""
    answers = {m.get("tool_call_id"): m.get("content") for m in messages if m.get("role") == "tool"}
    lines = [SUMMARY_HEAD.format(source=source)]
    for message in messages:
        role = str(message.get("role"))
        speaker = str(message.get("name") or role)
        if role == "tool":
            continue
        if message.get("content"):
            lines.append(f"{speaker}: {_text(message['content'])}")
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            answer = _text(answers.get(call.get("id"), ""))
            lines.append(
                f"{speaker} called {_name(call)}({function.get('arguments') or ''}) -> {answer}"
            )
    return {"role": "user", "content": "\n".join(lines)}


def _name(call: dict[str, Any]) -> str:
    return str((call.get("function") or {}).get("name") or "")


def _text(content: Any) -> str:
    return content if isinstance(content, str) else json.dumps(content, default=str)


def _text_only(message: Message) -> Message:
    return {key: value for key, value in message.items() if key != "tool_calls"}


def visit_start(messages: list[Message], agent: str) -> int:
    """Where the visit of ``agent`` now under way began in ``messages`` (for a run
    resumed inside it): before its own replies, the tool messages answering them and
    the system messages said during it; after the answer to a transfer to it."""
    calls = {
        str(call.get("id")): _name(call)
        for message in messages
        for call in message.get("tool_calls") or ()
    }
    start = len(messages)
    while start > 0:
        message = messages[start - 1]
        role = message.get("role")
        if (
            role == "tool"
            and calls.get(str(message.get("tool_call_id"))) == TRANSFER_PREFIX + agent
        ):
            break
        if (role == "assistant" and message.get("name") == agent) or role in ("tool", "system"):
            start -= 1
            continue
        break
    return start
