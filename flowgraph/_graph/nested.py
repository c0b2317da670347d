"""Nested chats: a queue of chats run in sequence as one node, as AG2's nested chats.

Each chat sends a message to a recipient agent, which answers with its own tool
loop; with ``max_turns`` > 1 a sender agent answers back, turn by turn. A chat's
summary (its last message, an LLM reflection, or a callable) is carried into the
next chat's message, and the last summary (or what ``reply`` makes of the results)
joins the outer conversation as the node's output. The chats' own messages stay
in ``result.chats``, out of the outer conversation.

The first chat may carry context over from the outer conversation (``carryover``):
its message becomes exactly ``"<message>\\nContext:\\n<carryover>"``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from flowgraph._base.callables import MaybeAwaitable, check_arity
from flowgraph._base.context import AnyContext
from flowgraph._base.errors import FlowValidationError
from flowgraph._base.messages import Message
from flowgraph._base.result import ChatResult
from flowgraph._graph.nodes import Agent, Node
from flowgraph._llm.models import Model

DEFAULT_SUMMARY_PROMPT = (
    "Summarize the takeaway from the conversation. Do not add any introductory phrases."
)
SUMMARIES = ("last_msg", "reflection")
CARRYOVERS = ("last_msg", "all", "reflection")
NO_REPLY = "(no reply)"
SUMMARIZER_ARGS = "agent, messages, summary_args"
REPLY_ARGS = "chats, ctx, results"

Summarizer = Callable[[Agent, list[Message], dict[str, Any]], MaybeAwaitable[str]]
Method = str | Summarizer


@dataclass(frozen=True)
class Chat:
    """One chat of a nested-chat queue: ``message`` to ``recipient``.

    Args:
        recipient: the agent that answers (with its own tools and instructions).
        message: the opening message: text, or a function of the run context.
        summary: how the chat is summed up: ``"last_msg"`` (the recipient's last
            answer), ``"reflection"`` (one more request, with ``summary_prompt``), or
            a callable ``(agent, messages, summary_args) -> str``.
        carryover: first chat only: context from the outer conversation, appended to
            the message: ``"last_msg"``, ``"all"``, ``"reflection"`` (with
            ``carryover_prompt``) or a callable ``(agent, messages, summary_args)``.
        max_turns: how many times the recipient answers; above 1, ``sender`` answers
            back in between.
        sender: the agent that converses with the recipient when ``max_turns`` > 1.

    Example:
        >>> critic = Agent("critic", "You are a critic.")
        >>> chat = Chat(critic, "Summarise the conversation into a few key words",
        ...             summary="last_msg", carryover="all")
    """

    recipient: Agent | None = None
    message: str | Callable[[AnyContext], MaybeAwaitable[str]] = ""
    summary: Method = "last_msg"
    carryover: Method | None = None
    max_turns: int = 1
    sender: Agent | None = None
    summary_prompt: str = DEFAULT_SUMMARY_PROMPT
    carryover_prompt: str = DEFAULT_SUMMARY_PROMPT


Reply = Callable[[list[Chat], AnyContext, list[ChatResult]], MaybeAwaitable[Any]]


class NestedChat(Node):
    """A queue of chats run as one node; a valid target of any edge, LLM ones included.

    Args:
        name: unique in the flow.
        chats: the ``Chat`` queue, run in order.
        reply: optional ``reply(chats, ctx, results)``: its return value replaces the
            default result, the last chat's summary.
        concurrent: run the chats at once (they then carry no summaries to each
            other); results stay in order.
        model: the model for this node's router request, if it has LLM conditions.

    Example:
        >>> critic, poet = Agent("critic"), Agent("poet")
        >>> verify = NestedChat("verify", chats=[
        ...     Chat(critic, "Summarise the conversation into a few key words",
        ...          summary="last_msg", carryover="all"),
        ...     Chat(poet, "Write a poem about it.", max_turns=1),
        ... ])
    """

    kind = "nested"

    def __init__(
        self,
        name: str,
        chats: Sequence[Chat],
        *,
        reply: Reply | None = None,
        concurrent: bool = False,
        model: Model | None = None,
    ) -> None:
        super().__init__(name, model=model)
        if isinstance(chats, (str, Chat)) or not isinstance(chats, Iterable):
            raise FlowValidationError(
                f"nested chat {name!r}: chats= takes a list of fg.Chat, got {chats!r}"
            )
        self.chats = list(chats)  # each is checked with the flow (validate names them all)
        self.reply = reply
        self.concurrent = concurrent

    def agents(self) -> Iterator[Agent]:
        """The recipients and senders of the chats."""
        for chat in self.chats:
            for agent in (getattr(chat, "recipient", None), getattr(chat, "sender", None)):
                if isinstance(agent, Agent):
                    yield agent

    def problems(self) -> Iterator[str]:
        """What is wrong with the chat queue, each naming the node and the chat index."""
        where = f"nested chat {self.name!r}"
        if not self.chats:
            yield f"{where} has no chats: give it at least one fg.Chat"
        for index, chat in enumerate(self.chats):
            yield from _chat_problems(f"{where}, chat {index}", index, chat)
        if self.reply is not None:
            yield from _arity(self.reply, 3, f"{where}: the reply function", REPLY_ARGS)


def _chat_problems(at: str, index: int, chat: object) -> Iterator[str]:
    if not isinstance(chat, Chat):
        yield f"{at} is {type(chat).__name__}, not an fg.Chat"
        return
    if not isinstance(chat.recipient, Agent):
        yield f"{at} has no recipient: pass the fg.Agent that answers as its first argument"
    if chat.max_turns < 1:
        yield f"{at}: max_turns must be at least 1"
    if chat.max_turns > 1 and not isinstance(chat.sender, Agent):
        yield (
            f"{at} has max_turns={chat.max_turns} but no sender: pass sender=fg.Agent(...) "
            "to answer the recipient, or use max_turns=1"
        )
    if callable(chat.message):
        yield from _arity(chat.message, 1, f"{at}: the message function", "the run context")
    yield from _method(at, "summary", chat.summary, SUMMARIES)
    if chat.carryover is not None and index > 0:
        yield f"{at}: carryover applies to the first chat only; later chats get the summaries"
    elif chat.carryover is not None:
        yield from _method(at, "carryover", chat.carryover, CARRYOVERS)


def _method(at: str, what: str, method: object, names: tuple[str, ...]) -> Iterator[str]:
    if callable(method):
        yield from _arity(method, 3, f"{at}: the {what} function", SUMMARIZER_ARGS)
    elif method not in names:
        yield (
            f"{at}: unknown {what} method {method!r}: use "
            f"{', '.join(repr(name) for name in names)} or a callable "
            f"({SUMMARIZER_ARGS}) -> str"
        )


def _arity(fn: Callable[..., Any], count: int, what: str, arguments: str) -> Iterator[str]:
    try:
        check_arity(fn, count, what, arguments)
    except FlowValidationError as exc:
        yield str(exc)
