"""Messages in OpenAI chat format, and the history check run before every request.

Providers reject a conversation in which an assistant's tool call is not answered
by exactly one tool message before anything else is said. flowgraph checks the
history itself before each request, so a broken one is reported against the node
that broke it instead of as a provider's 400.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from flowgraph._base.errors import FlowgraphError, UsageError

Message = dict[str, Any]

INJECTABLE_ROLES = frozenset({"system", "developer", "user", "assistant"})


class HistoryError(FlowgraphError, ValueError):
    """The conversation breaks the tool-call pairing rule, or a message would; the
    message says where. Becomes a ``RunError`` naming the node before it can leave
    a run."""


def check_history(messages: Sequence[Mapping[str, Any]], start: int = 0) -> None:
    """Raise ``HistoryError`` unless every tool call has exactly one answer, in place.

    Each assistant message with ``tool_calls`` must be followed directly by one tool
    message per call id (in any order), and a tool message may only answer a call
    of the assistant message just before its block. ``start`` skips a prefix already
    found valid: a valid history leaves no call unanswered, so nothing carries over.
    """
    pending: set[str] = set()
    for index in range(start, len(messages)):
        message = messages[index]
        role = message.get("role")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in pending:
                raise HistoryError(
                    f"message {index} answers tool call {call_id!r}, which is not an "
                    "unanswered call of the assistant message before it"
                )
            pending.discard(call_id)
            continue
        if pending:
            raise HistoryError(
                f"message {index} ({role}) comes before the tool calls "
                f"{sorted(pending)} were answered"
            )
        for call in message.get("tool_calls") or ():
            pending.add(call["id"])
    if pending:
        raise HistoryError(f"the tool calls {sorted(pending)} are not answered")


class _Reader:
    """Reads one conversation that grows, a message once: ``_unread`` says where the
    messages not read yet begin. Conversations are append-only (users add messages
    through hooks); if what was read is no longer in place (its last message is not
    where it was), everything is read again."""

    __slots__ = ("_count", "_last")

    def __init__(self) -> None:
        self._count = 0
        self._last: Mapping[str, Any] | None = None

    def _unread(self, messages: Sequence[Mapping[str, Any]]) -> int:
        count = self._count
        if count and (len(messages) < count or messages[count - 1] is not self._last):
            return 0
        return count

    def _read(self, messages: Sequence[Mapping[str, Any]]) -> None:
        self._count = len(messages)
        self._last = messages[-1] if messages else None


class HistoryCheck(_Reader):
    """``check_history`` for one conversation that grows between requests: each check
    reads only the messages added since the last one found valid."""

    __slots__ = ()

    def check(self, messages: Sequence[Mapping[str, Any]]) -> None:
        check_history(messages, self._unread(messages))
        self._read(messages)


class CallIds(_Reader):
    """The tool call ids of one conversation that grows, read incrementally, to give a
    reply's calls ids of their own."""

    __slots__ = ("_ids",)

    def __init__(self) -> None:
        super().__init__()
        self._ids: set[str] | None = None  # made at the first reply with tool calls

    def make_unique(self, message: Message, messages: Sequence[Mapping[str, Any]]) -> None:
        """Rename the calls of ``message`` whose id is taken (earlier in ``messages``,
        or by another call of it): a call's id names its idempotency key, and its
        answer. A provider may reuse ids across turns, or repeat one in a reply."""
        start = self._unread(messages)
        if start == 0 or self._ids is None:
            start, self._ids = 0, set()
        ids = self._ids
        for earlier in messages[start:]:
            ids.update(call["id"] for call in earlier.get("tool_calls") or ())
        self._read(messages)
        for call in message.get("tool_calls") or ():
            unique, number = call["id"], 1
            while unique in ids:
                number += 1
                unique = f"{call['id']}_{number}"
            call["id"] = unique
            ids.add(unique)


def check_injectable(message: object) -> Message:
    """Return ``message`` as a dict if it may be injected into the conversation.

    Injected messages may not be tool messages nor carry tool calls: either would
    break the pairing of tool calls and answers.
    """
    if not isinstance(message, Mapping):
        raise HistoryError(
            f"a message is a dict like {{'role': 'user', 'content': '...'}}, "
            f"got {type(message).__name__}"
        )
    role = message.get("role")
    if role not in INJECTABLE_ROLES:
        raise HistoryError(
            f"cannot inject a message with role {role!r}: use one of "
            f"{sorted(INJECTABLE_ROLES)} (tool messages only answer tool calls)"
        )
    if message.get("tool_calls"):
        raise HistoryError(
            "cannot inject an assistant message with tool_calls: nothing would answer them"
        )
    if not isinstance(message.get("content"), (str, list)):
        raise HistoryError("an injected message needs 'content' (a string)")
    return dict(message)


def as_text(value: object) -> str:
    """Render a tool's or node's return value as message content."""
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    try:
        return json.dumps(value, default=_jsonable)
    except (TypeError, ValueError):
        return str(value)


def _jsonable(value: object) -> object:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError


Input = str | Sequence[Mapping[str, Any]]
"""What a run starts from: a user message, or messages in OpenAI chat format."""


def user_messages(input: Input) -> list[Message]:
    """The opening messages of a run: a string becomes one user message."""
    if isinstance(input, str):
        return [{"role": "user", "content": input}]
    if isinstance(input, Sequence):
        messages = [dict(message) for message in input if isinstance(message, Mapping)]
        if len(messages) == len(input) and all(isinstance(m.get("role"), str) for m in messages):
            return messages
    raise UsageError(
        "a run's input is the user's message as text, or a list of messages in OpenAI "
        f'chat format ({{"role": "user", "content": "..."}}), got {input!r}'[:300]
    )
