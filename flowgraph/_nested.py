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

import asyncio
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from flowgraph._callables import MaybeAwaitable, call_inline, call_user, check_arity
from flowgraph._context import AnyContext
from flowgraph._edges import TRANSFER_PREFIX
from flowgraph._errors import FlowValidationError, RunError
from flowgraph._messages import Message, as_text
from flowgraph._models import Model
from flowgraph._nodes import Agent, Node

if TYPE_CHECKING:
    from flowgraph._run import Run, Visit

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


class ChatResult(BaseModel):
    """One nested chat as it ran: its opening message, its messages, its summary."""

    node: str
    step: int
    index: int
    recipient: str
    sender: str | None = None
    message: str
    messages: list[Message] = Field(default_factory=list)
    summary: str | None = None


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
        self.chats = list(chats)
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

    async def visit(self, run: Run) -> Visit:
        from flowgraph._run import Visit

        if self.concurrent:
            results = await self._run_concurrently(run)
        else:
            results = []
            for index, chat in enumerate(self.chats):
                earlier = [result.summary for result in results if result.summary]
                results.append(await self._run_chat(run, index, chat, earlier))
        output: Any = results[-1].summary
        if self.reply is not None:
            output = await self._guard(
                -1, call_user(self.reply, list(self.chats), run.ctx, results)
            )
        if output is not None:
            run.append({"role": "assistant", "name": self.name, "content": as_text(output)})
        return Visit(output=output)

    async def _run_concurrently(self, run: Run) -> list[ChatResult]:
        """Run every chat at once; if one fails, cancel the others before raising."""
        start = len(run.chats)
        tasks = [
            asyncio.ensure_future(self._run_chat(run, index, chat, []))
            for index, chat in enumerate(self.chats)
        ]
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # A chat's record lands once its opening message is built, which may take
            # a request (a reflection carryover): keep the records in queue order.
            run.chats[start:] = sorted(run.chats[start:], key=lambda record: record.index)

    async def _run_chat(self, run: Run, index: int, chat: Chat, earlier: list[str]) -> ChatResult:
        assert chat.recipient is not None  # validated
        opening = await self._opening(run, index, chat, earlier)
        record = ChatResult(
            node=self.name,
            step=run.step,
            index=index,
            recipient=chat.recipient.name,
            sender=chat.sender.name if chat.sender else None,
            message=opening,
        )
        run.chats.append(record)
        await self._converse(run, chat, record.messages, opening)
        record.summary = await self._guard(index, self._summarize(run, chat, record.messages))
        return record

    async def _opening(self, run: Run, index: int, chat: Chat, earlier: list[str]) -> str:
        message = chat.message
        text = (
            message
            if isinstance(message, str)
            else await self._guard(index, call_inline(message, run.ctx))
        )
        if index == 0 and chat.carryover is not None:
            context = await self._guard(index, self._carryover(run, chat))
            return f"{text}\nContext:\n{context}"
        if earlier:
            return f"{text}\nContext:\n" + "\n".join(earlier)
        return str(text)

    async def _converse(self, run: Run, chat: Chat, messages: list[Message], opening: str) -> None:
        from flowgraph._tool_loop import agent_turn

        assert chat.recipient is not None
        speaker = chat.sender.name if chat.sender else self.name
        messages.append({"role": "user", "name": speaker, "content": opening})
        sender_view: list[Message] = [{"role": "assistant", "content": opening}]
        for turn in range(chat.max_turns):
            answer = await agent_turn(run, chat.recipient, messages, self.name)
            if chat.sender is None or turn + 1 == chat.max_turns:
                return
            sender_view.append({"role": "user", "content": answer or NO_REPLY})
            said = await agent_turn(run, chat.sender, sender_view, self.name)
            messages.append({"role": "user", "name": speaker, "content": said or NO_REPLY})

    async def _summarize(self, run: Run, chat: Chat, messages: list[Message]) -> str:
        assert chat.recipient is not None
        if chat.summary == "last_msg":
            return _last_text(messages)
        if chat.summary == "reflection":
            return await self._reflect(run, chat.recipient, messages, chat.summary_prompt)
        summarizer: Summarizer = chat.summary  # type: ignore[assignment]
        args = {"summary_prompt": chat.summary_prompt}
        return as_text(await call_user(summarizer, chat.recipient, list(messages), args))

    async def _carryover(self, run: Run, chat: Chat) -> str:
        assert chat.recipient is not None
        outer = without_handoffs(run.messages)
        if chat.carryover == "last_msg":
            return _last_text(outer, roles=None)
        if chat.carryover == "all":
            return "\n".join(m["content"] for m in outer if isinstance(m.get("content"), str))
        if chat.carryover == "reflection":
            return await self._reflect(run, chat.recipient, outer, chat.carryover_prompt)
        summarizer: Summarizer = chat.carryover  # type: ignore[assignment]
        args = {"summary_prompt": chat.carryover_prompt}
        return as_text(await call_user(summarizer, chat.recipient, outer, args))

    async def _reflect(self, run: Run, agent: Agent, messages: list[Message], prompt: str) -> str:
        request = [*messages, {"role": "system", "content": prompt}]
        completion = await run.complete(self.name, request, model=run.model_of(agent))
        return str(completion.message.get("content") or "")

    async def _guard(self, index: int, work: Any) -> Any:
        """Await ``work``; a user callback's exception names this node and the chat."""
        try:
            return await work
        except RunError:
            raise
        except Exception as exc:
            what = "the reply function" if index < 0 else f"chat {index}"
            raise RunError(
                f"nested chat {self.name!r}, {what}: {type(exc).__name__}: {exc}", node=self.name
            ) from exc


def without_handoffs(messages: list[Message]) -> list[Message]:
    """The conversation without hand-off plumbing: transfer calls and their answers."""
    transfers: set[str] = set()
    kept: list[Message] = []
    for message in messages:
        if message.get("role") == "tool" and message.get("tool_call_id") in transfers:
            continue
        calls = message.get("tool_calls") or []
        plumbing = [c for c in calls if c["function"]["name"].startswith(TRANSFER_PREFIX)]
        if not plumbing:
            kept.append(message)
            continue
        transfers.update(call["id"] for call in plumbing)
        rest = [call for call in calls if call not in plumbing]
        trimmed = {key: value for key, value in message.items() if key != "tool_calls"}
        if rest:
            trimmed["tool_calls"] = rest
        if rest or message.get("content"):
            kept.append(trimmed)
    return kept


def _last_text(messages: list[Message], roles: tuple[str, ...] | None = ("assistant",)) -> str:
    for message in reversed(messages):
        content = message.get("content")
        if isinstance(content, str) and content and (roles is None or message["role"] in roles):
            return content
    return ""


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
