"""What user code sees of a run: the context variables and the conversation so far."""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from flowgraph._base.errors import UsageError
from flowgraph._base.messages import Message

ContextT = TypeVar("ContextT")


class Usage(BaseModel):
    """Requests and tokens spent, summed per node and per run.

    Example:
        >>> u = Usage(requests=1, prompt_tokens=10, completion_tokens=5)
        >>> (u + u).total_tokens
        30
    """

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: Usage) -> None:
        """Add ``other`` into this total, in place."""
        self.requests += other.requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        total = self.model_copy()
        total.add(other)
        return total

    def __sub__(self, other: Usage) -> Usage:
        return Usage(
            requests=self.requests - other.requests,
            prompt_tokens=self.prompt_tokens - other.prompt_tokens,
            completion_tokens=self.completion_tokens - other.completion_tokens,
        )


@dataclass
class CallKey:
    """The tool call (or tool step) running in this task: for idempotency keys and
    interrupts, which must name the same call when a resumed run repeats it."""

    key: str
    can_pause: bool = True
    interrupts: int = 0


CURRENT_CALL: contextvars.ContextVar[CallKey | None] = contextvars.ContextVar(
    "flowgraph_call", default=None
)

HOOK_FLOWS: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "flowgraph_hook_flows", default=None
)
"""While an ``after_completion`` hook runs: the names of the flows it runs (each run
adds its own, and hides the list from the flows it runs in turn)."""


class Interrupts(Protocol):
    """What a ``RunContext`` asks of its run: a reply, or a pause until one comes."""

    def interrupt(self, prompt: str) -> Any: ...


@dataclass
class RunContext(Generic[ContextT]):
    """The run as tools, tool steps, instructions and predicates see it.

    A tool asks for it by annotating a parameter with ``RunContext``; that
    parameter is injected and left out of the tool's JSON schema.

    Example:
        >>> def issue_refund(order_id: str, ctx: RunContext[dict]) -> str:
        ...     ctx.context["refunded"] = True
        ...     return "refunded"

    Attributes:
        context: the context variables: the dict or pydantic model given to ``run``.
            Read and write it freely; it is the same object across the run.
        messages: the conversation so far, OpenAI chat format. Read it; do not edit
            it (use a hook's ``inject`` to add messages).
        run_id: the run's id.
        node: the name of the node now running.
        step: how many node visits the run has made, this one included.
        usage: requests and tokens so far in the run.
        path: the names of the nodes visited so far, in order.
        idempotency_key: names the tool call (or tool step) now running, the same
            when a resumed run repeats it: key side effects on it to do them once.
    """

    context: ContextT
    messages: list[Message]
    run_id: str
    node: str = ""
    step: int = 0
    usage: Usage = field(default_factory=Usage)
    path: list[str] = field(default_factory=list)
    _run: Interrupts | None = field(default=None, repr=False, compare=False)

    @property
    def idempotency_key(self) -> str:
        """``run_id:step:call_id`` inside a tool call, ``run_id:step:node`` in a tool step.

        Example:
            >>> def charge(amount: int, ctx: RunContext) -> str:
            ...     return payments.charge(amount, idempotency_key=ctx.idempotency_key)
        """
        call = CURRENT_CALL.get()
        if call is not None:
            return call.key
        return f"{self.run_id}:{self.step}:{self.node}"

    def interrupt(self, prompt: str) -> Any:
        """Pause the run until a human replies to ``prompt``, and return the reply.

        Call it from a tool or a tool step. The run stops with status ``"waiting"``
        (committed to its store); ``flow.resume(run_id, reply=...)`` runs the tool call
        again, and this time ``interrupt`` returns the reply. Do side effects after
        it, or key them on ``idempotency_key``.

        Example:
            >>> def issue_refund(order_id: str, ctx: RunContext) -> str:
            ...     if ctx.interrupt(f"Refund {order_id}?") != "yes":
            ...         return "not refunded: a human declined"
            ...     return "refunded"
        """
        if self._run is None:
            raise UsageError(
                "this RunContext belongs to no run: ctx.interrupt() works in the tools and "
                "tool steps of a running flow"
            )
        return self._run.interrupt(prompt)

    @property
    def last_message(self) -> Message | None:
        """The newest message of the conversation, or None if it is empty."""
        return self.messages[-1] if self.messages else None

    def last_text(self, roles: Sequence[str] = ("assistant", "user", "tool")) -> str | None:
        """The content of the newest message with text among ``roles``."""
        for message in reversed(self.messages):
            content = message.get("content")
            if message.get("role") in roles and isinstance(content, str) and content:
                return content
        return None


AnyContext = RunContext[Any]
