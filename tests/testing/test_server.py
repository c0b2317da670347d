"""ScriptedServer through the real openai client over real HTTP."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import openai
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionMessageFunctionToolCall

from flowgraph.testing import ChatRequest, Reply, ScriptedServer, error, tool_call

Scripted = Callable[..., tuple[ScriptedServer, openai.OpenAI]]
USER: list[Any] = [{"role": "user", "content": "Hi"}]

TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "Find an order by id.",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}},
                "required": ["order_id"],
            },
        },
    }
]


def ask(client: openai.OpenAI, **options: Any) -> ChatCompletion:
    options.setdefault("messages", USER)
    options.setdefault("model", "scripted")
    reply: ChatCompletion = client.chat.completions.create(**options)
    return reply


def calls_of(reply: ChatCompletion) -> list[ChatCompletionMessageFunctionToolCall]:
    calls = reply.choices[0].message.tool_calls
    assert calls is not None
    assert all(isinstance(call, ChatCompletionMessageFunctionToolCall) for call in calls)
    return [call for call in calls if isinstance(call, ChatCompletionMessageFunctionToolCall)]


def test_text_reply(scripted: Scripted) -> None:
    _, client = scripted(["Hello there!"])
    reply = ask(client, model="gpt-test")
    assert reply.object == "chat.completion"
    assert reply.model == "gpt-test"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == "Hello there!"
    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].finish_reason == "stop"


def test_usage_counts_words_of_prompt_and_reply(scripted: Scripted) -> None:
    _, client = scripted(["one two three", Reply("fixed", usage=(11, 7))])
    counted = ask(client).usage
    assert counted is not None
    assert counted.prompt_tokens > 0
    assert counted.completion_tokens == 3
    assert counted.total_tokens == counted.prompt_tokens + 3
    fixed = ask(client).usage
    assert fixed is not None
    assert (fixed.prompt_tokens, fixed.completion_tokens, fixed.total_tokens) == (11, 7, 18)


def test_tool_call_arguments_arrive_as_json(scripted: Scripted) -> None:
    _, client = scripted([tool_call("lookup_order", {"order_id": "A-1"})])
    reply = ask(client, tools=TOOLS)
    assert reply.choices[0].finish_reason == "tool_calls"
    assert reply.choices[0].message.content is None
    [call] = calls_of(reply)
    assert call.type == "function"
    assert call.id == "call_1"
    assert call.function.name == "lookup_order"
    assert json.loads(call.function.arguments) == {"order_id": "A-1"}


def test_parallel_tool_calls_get_unique_ids(scripted: Scripted) -> None:
    _, client = scripted([[tool_call("a"), tool_call("b", {"x": 1})], tool_call("a")])
    first = calls_of(ask(client))
    second = calls_of(ask(client))
    assert [call.function.name for call in first] == ["a", "b"]
    assert [call.function.arguments for call in first] == ["{}", '{"x": 1}']
    assert [call.id for call in [*first, *second]] == ["call_1", "call_2", "call_3"]


def test_broken_arguments_pass_through_raw(scripted: Scripted) -> None:
    _, client = scripted([tool_call("lookup_order", '{"order_id": "A-')])
    calls = calls_of(ask(client))
    assert calls[0].function.arguments == '{"order_id": "A-'


def test_reply_with_content_and_tool_calls(scripted: Scripted) -> None:
    script = [Reply("Let me check.", [tool_call("a", id="call_mine")], finish_reason="length")]
    _, client = scripted(script)
    choice = ask(client).choices[0]
    assert choice.message.content == "Let me check."
    assert choice.message.tool_calls is not None
    assert choice.message.tool_calls[0].id == "call_mine"
    assert choice.finish_reason == "length"


def test_empty_reply_has_empty_content(scripted: Scripted) -> None:
    _, client = scripted([Reply()])
    choice = ask(client).choices[0]
    assert choice.message.content == ""
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"


def test_error_500_reaches_the_client(scripted: Scripted) -> None:
    _, client = scripted([error(500, "boom")])
    with pytest.raises(openai.InternalServerError, match="Error code: 500 - boom") as caught:
        ask(client)
    assert caught.value.status_code == 500
    assert caught.value.body == {
        "message": "boom",
        "type": "server_error",
        "param": None,
        "code": None,
    }


def test_client_retries_use_up_script_items(scripted: Scripted) -> None:
    server, _ = scripted([error(503, headers={"retry-after-ms": "1"}), "recovered"])
    client = openai.OpenAI(base_url=server.url, api_key="test", max_retries=1)
    with client:
        assert ask(client).choices[0].message.content == "recovered"
    assert [request.headers["x-stainless-retry-count"] for request in server.requests] == [
        "0",
        "1",
    ]


def test_error_429_with_headers(scripted: Scripted) -> None:
    _, client = scripted([error(429, headers={"retry-after": "7"})])
    with pytest.raises(openai.RateLimitError, match="Rate limit reached") as caught:
        ask(client)
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "7"
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "requests"


def test_exhausted_script_is_a_400_naming_the_request(scripted: Scripted) -> None:
    server, client = scripted(["only one"])
    ask(client)
    with pytest.raises(
        openai.BadRequestError,
        match=r"the script has no reply left for request #2 \(it held 1 reply\)\. Add replies to",
    ):
        ask(client)
    assert len(server.errors) == 1
    assert "no reply left" in str(server.errors[0])


def test_added_items_extend_a_running_script(scripted: Scripted) -> None:
    server, client = scripted(["first"])
    server.add("second", tool_call("a"))
    assert ask(client).choices[0].message.content == "first"
    assert ask(client).choices[0].message.content == "second"
    assert ask(client).choices[0].finish_reason == "tool_calls"


def test_callable_item_sees_the_request(scripted: Scripted) -> None:
    seen: list[ChatRequest] = []

    def answer(request: ChatRequest) -> Any:
        seen.append(request)
        return tool_call(request.tool_names[0], {"order_id": request.last_message["content"]})

    _, client = scripted(["first", answer])
    ask(client)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "A-9"}]
    calls = calls_of(ask(client, messages=messages, tools=TOOLS))
    assert json.loads(calls[0].function.arguments) == {"order_id": "A-9"}
    [request] = seen
    assert request.index == 1
    assert request.messages == messages
    assert request.system == "Be brief."
    assert request.tools == TOOLS
    assert request.tool_names == ["lookup_order"]
    assert request.model == "scripted"
    assert request.stream is False
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer test"


def test_async_callable_item_is_awaited(scripted: Scripted) -> None:
    async def answer(request: ChatRequest) -> str:
        await asyncio.sleep(0)
        return f"async reply to #{request.index}"

    _, client = scripted([answer])
    assert ask(client).choices[0].message.content == "async reply to #0"


def test_function_script_answers_every_request(scripted: Scripted) -> None:
    _, client = scripted(lambda request: f"reply {request.index}")
    replies = [ask(client).choices[0].message.content for _ in range(3)]
    assert replies == ["reply 0", "reply 1", "reply 2"]


def test_raising_callable_is_a_400_and_kept_in_errors(scripted: Scripted) -> None:
    def answer(request: ChatRequest) -> str:
        raise ValueError("no such order")

    server, client = scripted([answer])
    with pytest.raises(
        openai.BadRequestError,
        match=r"script item for request #1 \(server.requests\[0\]\) raised ValueError: no such",
    ):
        ask(client)
    [problem] = server.errors
    assert isinstance(problem, ValueError)
    assert str(problem) == "no such order"


def test_callable_returning_a_wrong_item_is_reported(scripted: Scripted) -> None:
    server, client = scripted([lambda request: 42])
    with pytest.raises(openai.BadRequestError, match="raised TypeError: A script item must be"):
        ask(client)
    assert isinstance(server.errors[0], TypeError)


def test_requests_are_recorded_rejected_ones_too(scripted: Scripted) -> None:
    server, client = scripted(["first", "second"])
    ask(client)
    with pytest.raises(openai.BadRequestError):
        ask(client, tool_choice="auto")
    assert ask(client).choices[0].message.content == "second"  # the rejection used no item
    assert [request.index for request in server.requests] == [0, 1, 2]
    assert server.requests[1].rejection == (
        "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified."
    )
    assert server.requests[0].rejection is None
    assert server.requests[1].body["tool_choice"] == "auto"


def test_n_choices(scripted: Scripted) -> None:
    _, client = scripted(["same"])
    reply = ask(client, n=2)
    assert [(choice.index, choice.message.content) for choice in reply.choices] == [
        (0, "same"),
        (1, "same"),
    ]


# -- streaming -------------------------------------------------------------------------------


def test_stream_reconstructs_text(scripted: Scripted) -> None:
    text = "Your order A-1 shipped on Monday and should arrive by Thursday."
    _, client = scripted([text])
    with client.chat.completions.stream(model="scripted", messages=USER) as stream:
        deltas = [event.delta for event in stream if event.type == "content.delta"]
        final = stream.get_final_completion()
    assert len(deltas) > 1
    assert "".join(deltas) == text
    assert final.choices[0].message.content == text
    assert final.choices[0].finish_reason == "stop"


def test_stream_reconstructs_tool_calls(scripted: Scripted) -> None:
    calls = [
        tool_call("lookup_order", {"order_id": "A-1", "note": "x" * 40}),
        tool_call("b", "{bro"),
    ]
    _, client = scripted([Reply("Checking.", calls)])
    state = ChatCompletionStreamState()
    for chunk in ask_stream(client, tools=TOOLS):
        state.handle_chunk(chunk)
    final = state.get_final_completion().choices[0]
    assert final.message.content == "Checking."
    assert final.finish_reason == "tool_calls"
    assert final.message.tool_calls is not None
    rebuilt = [(c.id, c.function.name, c.function.arguments) for c in final.message.tool_calls]
    assert rebuilt == [
        ("call_1", "lookup_order", calls[0].arguments),
        ("call_2", "b", "{bro"),
    ]


def test_stream_with_strict_tools_parses_arguments(scripted: Scripted) -> None:
    strict_tool = json.loads(json.dumps(TOOLS[0]))
    strict_tool["function"]["strict"] = True
    strict_tool["function"]["parameters"]["additionalProperties"] = False
    _, client = scripted([tool_call("lookup_order", {"order_id": "A-1"})])
    with client.chat.completions.stream(
        model="scripted", messages=USER, tools=[strict_tool]
    ) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert calls is not None
    assert calls[0].function.parsed_arguments == {"order_id": "A-1"}


def test_stream_usage_only_when_asked(scripted: Scripted) -> None:
    _, client = scripted(["one two", "one two"])
    plain = list(ask_stream(client))
    assert all(chunk.usage is None for chunk in plain)
    with_usage = list(ask_stream(client, stream_options={"include_usage": True}))
    last = with_usage[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.completion_tokens == 2
    assert all(chunk.usage is None for chunk in with_usage[:-1])


def test_stream_delay_spaces_the_events(scripted: Scripted) -> None:
    _, client = scripted(["a b c d e f g h"], stream_delay=0.05)
    arrivals = [time.monotonic() for _ in ask_stream(client)]
    assert arrivals[-1] - arrivals[0] >= 0.05 * (len(arrivals) - 2)


def ask_stream(client: openai.OpenAI, **options: Any) -> Any:
    return client.chat.completions.create(model="scripted", messages=USER, stream=True, **options)


# -- other endpoints and the wire ------------------------------------------------------------


def test_models_endpoint(scripted: Scripted) -> None:
    _, client = scripted([])
    assert [model.id for model in client.models.list()] == ["scripted"]
    assert client.models.retrieve("gpt-anything").id == "gpt-anything"


def test_unknown_path_is_an_openai_404(scripted: Scripted) -> None:
    _, client = scripted([])
    with pytest.raises(openai.NotFoundError, match=r"Invalid URL \(GET /v1/nope\)"):
        client.get("/nope", cast_to=object)


def test_malformed_json_body_is_a_400(scripted: Scripted) -> None:
    server, _ = scripted(["unused"])
    request = urllib.request.Request(
        server.url + "/chat/completions",
        data=b'{"model": "m", "messages": [',
        headers={"content-type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 400
    body = json.loads(caught.value.read())
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith("We could not parse the JSON body")
    assert server.requests == []


def test_latency_is_applied(scripted: Scripted) -> None:
    _, client = scripted(["slow"], latency=0.3)
    started = time.monotonic()
    ask(client)
    assert time.monotonic() - started >= 0.3


def test_200_concurrent_requests_from_an_async_client() -> None:
    async def main() -> list[str | None]:
        async with ScriptedServer(lambda request: f"#{request.index}", latency=0.2) as server:
            client = openai.AsyncOpenAI(base_url=server.url, api_key="test", max_retries=0)
            async with client:
                replies = await asyncio.gather(
                    *(
                        client.chat.completions.create(model="scripted", messages=USER)
                        for _ in range(200)
                    )
                )
            return [reply.choices[0].message.content for reply in replies]

    started = time.monotonic()
    contents = asyncio.run(main())
    assert sorted(contents, key=lambda text: int(str(text)[1:])) == [f"#{i}" for i in range(200)]
    assert time.monotonic() - started < 10  # served concurrently, not 200 x 0.2 s in a row


def test_server_survives_clients_dropping_connections(scripted: Scripted) -> None:
    server, client = scripted(lambda request: "still serving", latency=0.2)
    head = "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n"
    body = json.dumps({"model": "m", "messages": USER}).encode()
    with socket.create_connection(("127.0.0.1", server.port)) as half_sent:
        half_sent.sendall(head.format(len(body)).encode() + body[:10])
    with socket.create_connection(("127.0.0.1", server.port)) as impatient:
        impatient.sendall(head.format(len(body)).encode() + body)
        # gone before the 0.2 s latency ends: the server's write will fail
    assert ask(client).choices[0].message.content == "still serving"
    assert len(server.requests) == 2  # the impatient one, then ours
    assert server.errors == []


def test_start_and_stop() -> None:
    server = ScriptedServer(["hi"])
    with pytest.raises(RuntimeError, match="has not started"):
        _ = server.url
    with server:
        assert server.url == f"http://127.0.0.1:{server.port}/v1"
        with pytest.raises(RuntimeError, match="already running"):
            server.start()
    server.stop()  # idempotent
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
