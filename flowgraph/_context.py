"""What user code sees of a run: the context variables and the conversation so far."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from flowgraph._messages import Message

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
    """

    context: ContextT
    messages: list[Message]
    run_id: str
    node: str = ""
    step: int = 0
    usage: Usage = field(default_factory=Usage)
    path: list[str] = field(default_factory=list)

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
