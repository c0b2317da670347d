"""The history check run before every request: each tool call answered once, in place."""

from __future__ import annotations

from typing import Any

import pytest

from flowgraph._base.messages import HistoryCheck, HistoryError, check_history


def calls(*ids: str) -> dict[str, Any]:
    """An assistant message asking for one tool call per id."""
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": id_, "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
            for id_ in ids
        ],
    }


def answer(call_id: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": "found"}


USER = {"role": "user", "content": "Where is A-1?"}
DONE = {"role": "assistant", "content": "Shipped."}


def test_parallel_calls_answered_in_any_order_pass() -> None:
    check_history([USER, calls("a", "b", "c"), answer("c"), answer("a"), answer("b"), DONE, USER])


def test_a_history_without_tool_calls_passes() -> None:
    check_history([USER, DONE])
    check_history([])


def test_an_orphan_tool_message_is_refused() -> None:
    with pytest.raises(
        HistoryError,
        match=r"^message 1 answers tool call 'x', which is not an unanswered call of the "
        r"assistant message before it$",
    ):
        check_history([USER, answer("x"), DONE])


def test_a_second_answer_to_one_call_is_refused() -> None:
    with pytest.raises(
        HistoryError, match=r"^message 3 answers tool call 'a', which is not an unanswered"
    ):
        check_history([USER, calls("a"), answer("a"), answer("a")])


def test_an_answer_to_a_call_of_an_earlier_block_is_refused() -> None:
    history = [USER, calls("a"), answer("a"), DONE, USER, calls("b"), answer("a")]
    with pytest.raises(HistoryError, match=r"^message 6 answers tool call 'a'"):
        check_history(history)


def test_calls_left_unanswered_at_the_end_are_refused() -> None:
    with pytest.raises(HistoryError, match=r"^the tool calls \['b', 'c'\] are not answered$"):
        check_history([USER, calls("a", "b", "c"), answer("a")])


def test_a_message_between_a_call_and_its_answer_is_refused() -> None:
    with pytest.raises(
        HistoryError,
        match=r"^message 3 \(system\) comes before the tool calls \['b'\] were answered$",
    ):
        check_history(
            [USER, calls("a", "b"), answer("a"), {"role": "system", "content": "x"}, answer("b")]
        )


def test_an_incremental_check_reads_only_new_messages_and_still_catches_a_break() -> None:
    history: list[dict[str, Any]] = [USER, calls("a"), answer("a"), DONE]
    check = HistoryCheck()
    check.check(history)
    history.extend([USER, calls("b")])
    with pytest.raises(HistoryError, match=r"^the tool calls \['b'\] are not answered$"):
        check.check(history)
    history.append(answer("b"))
    check.check(history)  # the failed check kept the old prefix: 'b' is found answered
    history.append(answer("b"))
    with pytest.raises(HistoryError, match=r"^message 7 answers tool call 'b'"):
        check.check(history)


def test_an_incremental_check_starts_over_when_the_checked_prefix_was_rewritten() -> None:
    history: list[dict[str, Any]] = [USER, calls("a"), answer("a"), DONE]
    check = HistoryCheck()
    check.check(history)
    # Against the rules, someone rewrote the conversation: the prefix is checked again.
    history[:] = [USER, calls("a"), USER, answer("a"), DONE, USER]
    with pytest.raises(HistoryError, match=r"^message 2 \(user\) comes before"):
        check.check(history)
    check.check([USER])  # shorter than the checked prefix: checked from the start
