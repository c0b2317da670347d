"""Nested chats (AG2 parity): summaries, carryover, reply, hand-offs in and out."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import flowgraph as fg
from flowgraph.testing import ChatRequest, error, tool_call

from .conftest import Serve, roles

PROMPT = "Summarize the takeaway from the conversation. Do not add any introductory phrases."


def by_system(replies: dict[str, Any]) -> Any:
    """A script that answers by the agent asking (its system message), or by the
    reflection prompt at the end of the request."""

    def script(request: ChatRequest) -> Any:
        last = request.last_message
        if last["role"] == "system" and last["content"] in replies:
            return replies[last["content"]]
        return replies[request.system or ""]

    return script


critic = fg.Agent("critic", "You are a critic.")
poet = fg.Agent("poet", "You are a poet.")


def nested_flow(model: fg.Model, nested: fg.NestedChat) -> fg.Flow:
    flow = fg.Flow("nested", model=model)
    flow.edge(fg.START, nested)
    flow.edge(nested, fg.END)
    return flow


def test_ag2_parity_hand_off_into_a_nested_chat_and_back_out(serve: Serve) -> None:
    server, model = serve(
        by_system(
            {
                "Route the customer.": tool_call("transfer_to_verify"),
                "You are a critic.": "refund, broken kettle",
                "You are a poet.": "A kettle broke; a refund awoke.",
                "You are the refund specialist.": "Refund approved.",
            }
        )
    )
    triage = fg.Agent("triage", "Route the customer.")
    refund = fg.Agent("refund", "You are the refund specialist.")
    verify = fg.NestedChat(
        "verify",
        chats=[
            fg.Chat(
                critic,
                "Summarise the conversation into a few key words",
                summary="last_msg",
                carryover="all",
            ),
            fg.Chat(poet, "Write a poem about it.", max_turns=1),
        ],
    )
    flow = fg.Flow("support", model=model)
    flow.edge(fg.START, triage)
    flow.edge(triage, verify, when="After customer verification, check the refund.")
    flow.edge(triage, fg.END)
    flow.edge(verify, refund)
    flow.edge(refund, fg.END)

    result = flow.run("My kettle broke, I want a refund.")

    assert result.path == ["triage", "verify", "refund"]
    assert result.output == "Refund approved."
    triage_request, critic_request, poet_request, refund_request = server.requests
    assert triage_request.tools[0]["function"]["description"] == (
        "Hand the conversation to verify. Use when: After customer verification, check the refund."
    )
    assert critic_request.messages == [
        {"role": "system", "content": "You are a critic."},
        {
            "role": "user",
            "name": "verify",
            "content": "Summarise the conversation into a few "
            "key words\nContext:\nMy kettle broke, I want a refund.",
        },
    ]
    assert poet_request.messages[1]["content"] == (
        "Write a poem about it.\nContext:\nrefund, broken kettle"
    )
    assert "tools" not in critic_request.body  # no hand-offs inside a nested chat
    assert roles(result.messages) == ["user", "assistant", "tool", "assistant", "assistant"]
    assert result.messages[3] == {
        "role": "assistant",
        "name": "verify",
        "content": "A kettle broke; a refund awoke.",
    }
    assert refund_request.messages[-1] == result.messages[3]
    first, second = result.chats
    assert (first.node, first.index, first.recipient, first.summary) == (
        "verify",
        0,
        "critic",
        "refund, broken kettle",
    )
    assert second.messages[-1]["content"] == "A kettle broke; a refund awoke."
    assert result.usage_by_node["verify"].requests == 2


@pytest.mark.parametrize(
    ("carryover", "expected"),
    [
        ("last_msg", "the newest"),
        ("all", "first\nthe newest"),
    ],
)
def test_carryover_from_the_outer_conversation(serve: Serve, carryover: str, expected: str) -> None:
    server, model = serve(["ok"])
    nested = fg.NestedChat("n", [fg.Chat(critic, "Review.", carryover=carryover)])
    history = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "the newest"}]

    nested_flow(model, nested).run(history)

    assert server.requests[0].messages[-1]["content"] == f"Review.\nContext:\n{expected}"


def test_carryover_by_reflection_costs_one_request_with_the_prompt(serve: Serve) -> None:
    server, model = serve(["the gist", "reviewed"])
    nested = fg.NestedChat(
        "n", [fg.Chat(critic, "Review.", carryover="reflection", carryover_prompt="Give the gist.")]
    )

    result = nested_flow(model, nested).run("a long story")

    reflection, chat = server.requests
    assert reflection.messages == [
        {"role": "user", "content": "a long story"},
        {"role": "system", "content": "Give the gist."},
    ]
    assert chat.messages[-1]["content"] == "Review.\nContext:\nthe gist"
    assert result.output == "reviewed"


def test_carryover_by_a_callable_sees_the_outer_conversation(serve: Serve) -> None:
    seen: list[Any] = []

    def keywords(agent: fg.Agent, messages: list[dict[str, Any]], args: dict[str, Any]) -> str:
        seen.append((agent.name, [m["content"] for m in messages], args))
        return "kettle; refund"

    server, model = serve(["ok"])
    nested = fg.NestedChat("n", [fg.Chat(critic, "Review.", carryover=keywords)])

    nested_flow(model, nested).run("my kettle, my refund")

    assert seen == [("critic", ["my kettle, my refund"], {"summary_prompt": PROMPT})]
    assert server.requests[0].messages[-1]["content"] == "Review.\nContext:\nkettle; refund"


def test_no_carryover_leaks_nothing_from_the_outer_conversation(serve: Serve) -> None:
    server, model = serve(["ok"])
    nested_flow(model, fg.NestedChat("n", [fg.Chat(critic, "Review.")])).run("secret stuff")

    assert server.requests[0].messages == [
        {"role": "system", "content": "You are a critic."},
        {"role": "user", "name": "n", "content": "Review."},
    ]


def test_summary_by_reflection_and_by_callable(serve: Serve) -> None:
    def shout(agent: fg.Agent, messages: list[dict[str, Any]], args: dict[str, Any]) -> str:
        return f"{agent.name}: {messages[-1]['content'].upper()}"

    server, model = serve(
        by_system(
            {
                "You are a critic.": "too long",
                "Be brief.": "brevity",
                "You are a poet.": "short poem",
            }
        )
    )
    nested = fg.NestedChat(
        "n",
        [
            fg.Chat(critic, "Review it.", summary="reflection", summary_prompt="Be brief."),
            fg.Chat(poet, "Write.", summary=shout),
        ],
    )

    result = nested_flow(model, nested).run("go")

    assert len(server.requests) == 3  # two chats and one reflection, nothing else
    reflection = server.requests[1]
    assert reflection.messages == [
        {"role": "user", "name": "n", "content": "Review it."},
        {"role": "assistant", "name": "critic", "content": "too long"},
        {"role": "system", "content": "Be brief."},
    ]
    assert server.requests[2].messages[-1]["content"] == "Write.\nContext:\nbrevity"
    assert [chat.summary for chat in result.chats] == ["brevity", "poet: SHORT POEM"]
    assert result.output == "poet: SHORT POEM"


def test_the_reply_function_replaces_the_result(serve: Serve) -> None:
    received: list[Any] = []

    async def reply(
        chats: list[fg.Chat], ctx: fg.RunContext[dict[str, str]], results: list[fg.ChatResult]
    ) -> str:
        received.append((len(chats), ctx.context["who"], [r.summary for r in results]))
        return " / ".join(r.summary or "" for r in results)

    _, model = serve(by_system({"You are a critic.": "fine", "You are a poet.": "a poem"}))
    nested = fg.NestedChat("n", [fg.Chat(critic, "Review."), fg.Chat(poet, "Write.")], reply=reply)

    result = nested_flow(model, nested).run("go", context={"who": "ada"})

    assert received == [(2, "ada", ["fine", "a poem"])]
    assert result.output == "fine / a poem"
    assert result.messages[-1] == {"role": "assistant", "name": "n", "content": "fine / a poem"}


def test_a_sender_converses_with_the_recipient_for_max_turns(serve: Serve) -> None:
    student = fg.Agent("student", "You are a student.")
    server, model = serve(
        by_system(
            {
                "You are a critic.": "What do you mean?",
                "You are a student.": "I mean the kettle.",
            }
        )
    )
    nested = fg.NestedChat(
        "n", [fg.Chat(critic, "Discuss the kettle.", max_turns=2, sender=student)]
    )

    result = nested_flow(model, nested).run("go")

    assert [r.system for r in server.requests] == [
        "You are a critic.",
        "You are a student.",
        "You are a critic.",
    ]
    assert server.requests[1].messages[1:] == [
        {"role": "assistant", "content": "Discuss the kettle."},
        {"role": "user", "content": "What do you mean?"},
    ]
    assert roles(result.chats[0].messages) == ["user", "assistant", "user", "assistant"]
    assert result.chats[0].messages[2] == {
        "role": "user",
        "name": "student",
        "content": "I mean the kettle.",
    }


def test_nested_agents_use_their_tools_and_dynamic_instructions(serve: Serve) -> None:
    def lookup(order_id: str) -> str:
        """Look an order up."""
        return f"{order_id} shipped"

    clerk = fg.Agent("clerk", lambda ctx: f"Clerk for {ctx.context['shop']}.", tools=[lookup])
    server, model = serve([tool_call("lookup", {"order_id": "A-1"}), "A-1 has shipped."])
    nested = fg.NestedChat("n", [fg.Chat(clerk, lambda ctx: f"Check {ctx.context['order']}.")])

    result = nested_flow(model, nested).run("go", context={"shop": "Kettles", "order": "A-1"})

    assert server.requests[0].system == "Clerk for Kettles."
    assert server.requests[0].messages[-1]["content"] == "Check A-1."
    assert roles(result.chats[0].messages) == ["user", "assistant", "tool", "assistant"]
    assert result.output == "A-1 has shipped."


def test_concurrent_chats_run_at_once_and_keep_their_order(serve: Serve) -> None:
    arrived: list[str] = []
    both = asyncio.Event()

    async def script(request: ChatRequest) -> str:
        arrived.append(request.system or "")
        if len(arrived) == 2:
            both.set()
        await asyncio.wait_for(both.wait(), timeout=5)  # a timeout if run one by one
        return f"answer of {request.system}"

    server, model = serve(script)
    nested = fg.NestedChat("n", [fg.Chat(critic, "A."), fg.Chat(poet, "B.")], concurrent=True)

    result = nested_flow(model, nested).run("go")

    assert [chat.summary for chat in result.chats] == [
        "answer of You are a critic.",
        "answer of You are a poet.",
    ]
    assert server.requests[1].messages[-1]["content"] in ("A.", "B.")  # no summaries carried
    assert result.output == "answer of You are a poet."


def test_a_failing_summary_request_keeps_the_chats_so_far(serve: Serve) -> None:
    _, model = serve(["first answer", error(500, "down")])
    nested = fg.NestedChat("n", [fg.Chat(critic, "Review.", summary="reflection")])

    with pytest.raises(fg.ModelError, match="the model request of node 'n' failed") as caught:
        nested_flow(model, nested).run("go")

    assert caught.value.result is not None
    (chat,) = caught.value.result.chats
    assert chat.messages[-1]["content"] == "first answer"
    assert chat.summary is None


def test_a_summary_callable_that_raises_names_the_node_and_chat(serve: Serve) -> None:
    def broken(agent: fg.Agent, messages: list[dict[str, Any]], args: dict[str, Any]) -> str:
        raise KeyError("nope")

    _, model = serve(["x", "y"])
    nested = fg.NestedChat("n", [fg.Chat(critic, "A."), fg.Chat(poet, "B.", summary=broken)])

    with pytest.raises(fg.RunError, match="nested chat 'n', chat 1: KeyError: 'nope'"):
        nested_flow(model, nested).run("go")


def test_a_nested_chat_routes_its_llm_conditions_with_one_router_request(serve: Serve) -> None:
    server, model = serve(["a poem", '{"choice": "publish"}'])
    nested = fg.NestedChat("n", [fg.Chat(poet, "Write.")])
    flow = fg.Flow("routed", model=model)
    flow.edge(fg.START, nested)
    flow.edge(nested, fg.ToolStep("publish", lambda: "published"), when="The poem is good.")
    flow.edge(nested, fg.END)

    result = flow.run("go")

    assert result.path == ["n", "publish"]
    assert server.requests[1].response_format is not None
    assert result.usage_by_node["n"].requests == 2


def mute(agent: fg.Agent, messages: list[dict[str, Any]]) -> str:
    return ""


@pytest.mark.parametrize(
    ("chats", "problem"),
    [
        ([], "nested chat 'n' has no chats: give it at least one fg.Chat"),
        (
            [fg.Chat(message="hi")],
            "nested chat 'n', chat 0 has no recipient: pass the fg.Agent "
            "that answers as its first argument",
        ),
        (
            [fg.Chat(critic, "hi", max_turns=3)],
            "nested chat 'n', chat 0 has max_turns=3 but no "
            "sender: pass sender=fg.Agent(...) to answer the recipient, or use max_turns=1",
        ),
        (
            [fg.Chat(critic, "hi"), fg.Chat(poet, "x", summary="shortest")],
            "nested chat 'n', chat 1: unknown summary method 'shortest': use 'last_msg', "
            "'reflection' or a callable (agent, messages, summary_args) -> str",
        ),
        (
            [fg.Chat(critic, "hi", summary=mute)],
            "nested chat 'n', chat 0: the summary function must accept 3 positional "
            "argument(s) (agent, messages, summary_args), but its signature is mute(agent",
        ),
        (
            [fg.Chat(critic, "hi", carryover="everything")],
            "nested chat 'n', chat 0: unknown "
            "carryover method 'everything': use 'last_msg', 'all', 'reflection' or a callable",
        ),
        (
            [fg.Chat(critic, "hi"), fg.Chat(poet, "x", carryover="all")],
            "nested chat 'n', chat 1: carryover applies to the first chat only",
        ),
        (["not a chat"], "nested chat 'n', chat 0 is str, not an fg.Chat"),
    ],
)
def test_bad_chat_queues_fail_at_validate(chats: list[Any], problem: str) -> None:
    flow = nested_flow(
        fg.OpenAIModel("m", base_url="http://127.0.0.1:9/v1", api_key="k"),
        fg.NestedChat("n", chats),
    )
    with pytest.raises(fg.FlowValidationError) as caught:
        flow.validate()
    assert any(line.startswith(problem) for line in caught.value.problems), caught.value.problems


def test_a_reply_with_the_wrong_signature_fails_at_validate() -> None:
    flow = nested_flow(
        fg.OpenAIModel("m", base_url="http://127.0.0.1:9/v1", api_key="k"),
        fg.NestedChat("n", [fg.Chat(critic, "hi")], reply=lambda results: ""),
    )
    with pytest.raises(
        fg.FlowValidationError,
        match=r"nested chat 'n': the reply function must accept 3 positional "
        r"argument\(s\) \(chats, ctx, results\), but its signature is <lambda>\(results\)",
    ):
        flow.validate()


def test_summary_prompts_default_to_ag2s_in_the_exact_requests(serve: Serve) -> None:
    server, model = serve(by_system({PROMPT: "the gist", "You are a critic.": "long review"}))
    nested = fg.NestedChat(
        "n", [fg.Chat(critic, "Review.", summary="reflection", carryover="reflection")]
    )

    result = nested_flow(model, nested).run("a long story")

    carryover, chat, summary = server.requests
    assert carryover.messages == [
        {"role": "user", "content": "a long story"},
        {
            "role": "system",
            "content": "Summarize the takeaway from the conversation. "
            "Do not add any introductory phrases.",
        },
    ]
    assert chat.messages[-1]["content"] == "Review.\nContext:\nthe gist"
    assert summary.messages == [
        {"role": "user", "name": "n", "content": "Review.\nContext:\nthe gist"},
        {"role": "assistant", "name": "critic", "content": "long review"},
        {"role": "system", "content": PROMPT},
    ]
    assert result.output == "the gist"


def test_a_third_chat_gets_every_earlier_summary_in_order(serve: Serve) -> None:
    judge = fg.Agent("judge", "You are a judge.")
    server, model = serve(
        by_system(
            {"You are a critic.": "dull", "You are a poet.": "a rhyme", "You are a judge.": "8"}
        )
    )
    nested = fg.NestedChat(
        "n", [fg.Chat(critic, "Review."), fg.Chat(poet, "Write."), fg.Chat(judge, "Score it.")]
    )

    result = nested_flow(model, nested).run("go")

    assert [r.messages[-1]["content"] for r in server.requests] == [
        "Review.",
        "Write.\nContext:\ndull",
        "Score it.\nContext:\ndull\na rhyme",
    ]
    assert [chat.message for chat in result.chats] == [
        "Review.",
        "Write.\nContext:\ndull",
        "Score it.\nContext:\ndull\na rhyme",
    ]
    assert result.output == "8"


def test_a_summary_callable_gets_its_args_and_its_summary_is_carried_on(serve: Serve) -> None:
    seen: list[Any] = []

    async def keywords(
        agent: fg.Agent, messages: list[dict[str, Any]], args: dict[str, Any]
    ) -> str:
        seen.append((agent.name, messages, args))
        return "kettle; refund"

    server, model = serve(
        by_system({"You are a critic.": "A broken kettle.", "You are a poet.": "ok"})
    )
    nested = fg.NestedChat(
        "n",
        [
            fg.Chat(critic, "Review.", summary=keywords, summary_prompt="Key words only."),
            fg.Chat(poet, "Write."),
        ],
    )

    result = nested_flow(model, nested).run("go")

    assert seen == [
        (
            "critic",
            [
                {"role": "user", "name": "n", "content": "Review."},
                {"role": "assistant", "name": "critic", "content": "A broken kettle."},
            ],
            {"summary_prompt": "Key words only."},
        )
    ]
    assert len(server.requests) == 2  # a callable summary costs no request
    assert server.requests[1].messages[-1]["content"] == "Write.\nContext:\nkettle; refund"
    assert result.chats[0].summary == "kettle; refund"


def test_a_predicate_edge_leads_into_a_nested_chat(serve: Serve) -> None:
    server, model = serve(["reviewed"])
    flow = fg.Flow("f", model=model)
    flow.edge(fg.START, fg.ToolStep("intake", lambda: "taken in"))
    flow.edge("intake", fg.END, when=lambda ctx: not ctx.context["review"])
    flow.edge(
        "intake",
        fg.NestedChat("n", [fg.Chat(critic, "Review.", carryover="last_msg")]),
        when=lambda ctx: ctx.context["review"],
    )
    flow.edge("n", fg.END)

    result = flow.run("go", context={"review": True})

    assert result.path == ["intake", "n"]
    (request,) = server.requests
    assert request.messages[-1]["content"] == "Review.\nContext:\ntaken in"
    assert result.output == "reviewed"


def test_a_fallback_edge_leads_from_an_agent_into_a_nested_chat(serve: Serve) -> None:
    server, model = serve(
        by_system({"Route the customer.": "Let me check.", "You are a critic.": "checked"})
    )
    triage = fg.Agent("triage", "Route the customer.")
    flow = fg.Flow("f", model=model)
    flow.edge(fg.START, triage)
    flow.edge(triage, fg.END, when="The customer said goodbye.")
    flow.edge(triage, fg.NestedChat("n", [fg.Chat(critic, "Review.", carryover="last_msg")]))
    flow.edge("n", fg.END)

    result = flow.run("hello")

    assert result.path == ["triage", "n"]
    assert len(server.requests) == 2  # the fallback costs no router request
    assert server.requests[1].messages[-1]["content"] == "Review.\nContext:\nLet me check."
    assert result.output == "checked"


def test_concurrent_chats_keep_queue_order_when_the_first_is_slower(serve: Serve) -> None:
    server, model = serve(
        by_system({PROMPT: "the gist", "You are a critic.": "critique", "You are a poet.": "poem"})
    )
    nested = fg.NestedChat(
        "n",
        [fg.Chat(critic, "A.", carryover="reflection"), fg.Chat(poet, "B.")],
        concurrent=True,
    )

    result = nested_flow(model, nested).run("a story")

    # The poet's chat starts while the critic's opening awaits its reflection (which of
    # those two requests reaches the server first is up to the connections).
    first, second, last = [r.system for r in server.requests]
    assert {first, second} == {None, "You are a poet."}
    assert last == "You are a critic."
    assert [(chat.index, chat.recipient) for chat in result.chats] == [(0, "critic"), (1, "poet")]
    assert [chat.message for chat in result.chats] == ["A.\nContext:\nthe gist", "B."]
    assert result.output == "poem"


def test_concurrent_chats_keep_queue_order_behind_a_slow_message_function(serve: Serve) -> None:
    async def slow(ctx: fg.RunContext[dict[str, Any]]) -> str:
        await asyncio.sleep(0.2)
        return "A, slowly."

    server, model = serve(by_system({"You are a critic.": "critique", "You are a poet.": "poem"}))
    nested = fg.NestedChat("n", [fg.Chat(critic, slow), fg.Chat(poet, "B.")], concurrent=True)

    result = nested_flow(model, nested).run("go")

    assert [r.system for r in server.requests] == ["You are a poet.", "You are a critic."]
    assert [chat.recipient for chat in result.chats] == ["critic", "poet"]
    assert [chat.summary for chat in result.chats] == ["critique", "poem"]


def test_a_failing_concurrent_chat_cancels_the_others(serve: Serve) -> None:
    cancelled = asyncio.Event()

    async def stalls(ctx: fg.RunContext[dict[str, Any]]) -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    def fails(ctx: fg.RunContext[dict[str, Any]]) -> str:
        raise ValueError("no message")

    _, model = serve(["unused"])
    nested = fg.NestedChat("n", [fg.Chat(critic, stalls), fg.Chat(poet, fails)], concurrent=True)

    async def run() -> bool:
        with pytest.raises(fg.RunError, match="nested chat 'n', chat 1: ValueError: no message"):
            await nested_flow(model, nested).arun("go")
        return cancelled.is_set()  # before this loop ends, which would cancel it anyway

    assert asyncio.run(run())


@pytest.mark.parametrize(
    ("chats", "match"),
    [
        (
            [fg.Chat(poet, "first"), fg.Chat(critic, lambda: "hi")],
            r"nested chat 'n', chat 1: the message function must accept 1 positional "
            r"argument\(s\) \(the run context\), but its signature is <lambda>\(\)$",
        ),
        (
            [fg.Chat(critic, "hi", carryover=mute)],
            r"nested chat 'n', chat 0: the carryover function must accept 3 positional "
            r"argument\(s\) \(agent, messages, summary_args\), but its signature is mute\(",
        ),
        (
            [fg.Chat(poet, "first"), fg.Chat(critic, "hi", summary=lambda agent, messages: "")],
            r"nested chat 'n', chat 1: the summary function must accept 3 positional "
            r"argument\(s\) \(agent, messages, summary_args\), but its signature is "
            r"<lambda>\(agent, messages\)$",
        ),
    ],
)
def test_callables_with_the_wrong_signature_say_what_they_take(
    chats: list[fg.Chat], match: str
) -> None:
    flow = nested_flow(
        fg.OpenAIModel("m", base_url="http://127.0.0.1:9/v1", api_key="k"),
        fg.NestedChat("n", chats),
    )
    with pytest.raises(fg.FlowValidationError, match=match) as caught:
        flow.validate()
    assert len(caught.value.problems) == 1
