"""Running a NestedChat node: a queue of chats, each a conversation with a recipient
agent (and a sender, for more than one turn), summed up and carried into the next;
the last summary (or the node's ``reply``) joins the outer conversation."""

from __future__ import annotations

import asyncio
from typing import Any

from flowgraph._base.callables import call_inline, call_user
from flowgraph._base.failures import RunError
from flowgraph._base.messages import Message, as_text
from flowgraph._base.result import ChatResult
from flowgraph._engine.agent import agent_turn
from flowgraph._engine.run import Run, Visit
from flowgraph._graph.edges import TRANSFER_PREFIX
from flowgraph._graph.nested import NO_REPLY, Chat, NestedChat, Summarizer
from flowgraph._graph.nodes import Agent


async def run_nested_chats(run: Run, node: NestedChat) -> Visit:
    """One visit of a NestedChat node: its chats in order (or at once), then the
    reply that joins the outer conversation."""
    if node.concurrent:
        results = await _run_concurrently(run, node)
    else:
        results = []
        for index, chat in enumerate(node.chats):
            earlier = [result.summary for result in results if result.summary]
            results.append(await _run_chat(run, node, index, chat, earlier))
    output: Any = results[-1].summary
    if node.reply is not None:
        output = await _guard(node, -1, call_user(node.reply, list(node.chats), run.ctx, results))
    if output is not None:
        run.append({"role": "assistant", "name": node.name, "content": as_text(output)})
    return Visit(output=output)


async def _run_concurrently(run: Run, node: NestedChat) -> list[ChatResult]:
    """Run every chat at once; if one fails, cancel the others before raising."""
    start = len(run.chats)
    tasks = [
        asyncio.ensure_future(_run_chat(run, node, index, chat, []))
        for index, chat in enumerate(node.chats)
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


async def _run_chat(
    run: Run, node: NestedChat, index: int, chat: Chat, earlier: list[str]
) -> ChatResult:
    assert chat.recipient is not None  # validated
    opening = await _opening(run, node, index, chat, earlier)
    record = ChatResult(
        node=node.name,
        step=run.step,
        index=index,
        recipient=chat.recipient.name,
        sender=chat.sender.name if chat.sender else None,
        message=opening,
    )
    run.chats.append(record)
    await _converse(run, node, chat, record.messages, opening)
    record.summary = await _guard(node, index, _summarize(run, node, chat, record.messages))
    return record


async def _opening(run: Run, node: NestedChat, index: int, chat: Chat, earlier: list[str]) -> str:
    message = chat.message
    text = (
        message
        if isinstance(message, str)
        else await _guard(node, index, call_inline(message, run.ctx))
    )
    if index == 0 and chat.carryover is not None:
        context = await _guard(node, index, _carryover(run, node, chat))
        return f"{text}\nContext:\n{context}"
    if earlier:
        return f"{text}\nContext:\n" + "\n".join(earlier)
    return str(text)


async def _converse(
    run: Run, node: NestedChat, chat: Chat, messages: list[Message], opening: str
) -> None:
    assert chat.recipient is not None
    speaker = chat.sender.name if chat.sender else node.name
    messages.append({"role": "user", "name": speaker, "content": opening})
    sender_view: list[Message] = [{"role": "assistant", "content": opening}]
    for turn in range(chat.max_turns):
        answer = await agent_turn(run, chat.recipient, messages, node.name)
        if chat.sender is None or turn + 1 == chat.max_turns:
            return
        sender_view.append({"role": "user", "content": answer or NO_REPLY})
        said = await agent_turn(run, chat.sender, sender_view, node.name)
        messages.append({"role": "user", "name": speaker, "content": said or NO_REPLY})


async def _summarize(run: Run, node: NestedChat, chat: Chat, messages: list[Message]) -> str:
    assert chat.recipient is not None
    if chat.summary == "last_msg":
        return _last_text(messages)
    if chat.summary == "reflection":
        return await _reflect(run, node, chat.recipient, messages, chat.summary_prompt)
    summarizer: Summarizer = chat.summary  # type: ignore[assignment]
    args = {"summary_prompt": chat.summary_prompt}
    return as_text(await call_user(summarizer, chat.recipient, list(messages), args))


async def _carryover(run: Run, node: NestedChat, chat: Chat) -> str:
    assert chat.recipient is not None
    outer = without_handoffs(run.messages)
    if chat.carryover == "last_msg":
        return _last_text(outer, roles=None)
    if chat.carryover == "all":
        return "\n".join(m["content"] for m in outer if isinstance(m.get("content"), str))
    if chat.carryover == "reflection":
        return await _reflect(run, node, chat.recipient, outer, chat.carryover_prompt)
    summarizer: Summarizer = chat.carryover  # type: ignore[assignment]
    args = {"summary_prompt": chat.carryover_prompt}
    return as_text(await call_user(summarizer, chat.recipient, outer, args))


async def _reflect(
    run: Run, node: NestedChat, agent: Agent, messages: list[Message], prompt: str
) -> str:
    request = [*messages, {"role": "system", "content": prompt}]
    completion = await run.complete(node.name, request, model=run.model_of(agent))
    return str(completion.message.get("content") or "")


async def _guard(node: NestedChat, index: int, work: Any) -> Any:
    """Await ``work``; a user callback's exception names this node and the chat."""
    try:
        return await work
    except RunError:
        raise
    except Exception as exc:
        what = "the reply function" if index < 0 else f"chat {index}"
        raise RunError(
            f"nested chat {node.name!r}, {what}: {type(exc).__name__}: {exc}", node=node.name
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
