"""The server refuses what OpenAI refuses (HTTP 400) and accepts what OpenAI accepts.

Each rule has rejected bodies, each pinned to its message and ``param``, and valid
counterparts that must get a reply. Bodies go out through the real openai client.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletion
from pydantic import BaseModel, ConfigDict

from flowgraph.testing import ScriptedServer

USER = {"role": "user", "content": "Hi"}
DROP = object()  # marks a key to leave out of the body


@pytest.fixture(scope="module")
def client() -> Iterator[openai.OpenAI]:
    with (
        ScriptedServer(lambda request: "ok") as server,
        openai.OpenAI(base_url=server.url, api_key="test", max_retries=0) as client,
    ):
        yield client


def chat(**fields: Any) -> dict[str, Any]:
    """A valid body with ``fields`` replaced (or left out, for DROP)."""
    body = {"model": "scripted", "messages": [USER], **fields}
    return {key: value for key, value in body.items() if value is not DROP}


def send(client: openai.OpenAI, body: object) -> ChatCompletion:
    return client.post("/chat/completions", body=body, cast_to=ChatCompletion)


def assert_rejected(
    client: openai.OpenAI, body: object, match: str, param: str | None = None
) -> None:
    with pytest.raises(openai.BadRequestError, match=match) as caught:
        send(client, body)
    assert caught.value.status_code == 400
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "invalid_request_error"
    assert caught.value.body["param"] == param


def assert_accepted(client: openai.OpenAI, body: object) -> None:
    assert send(client, body).choices[0].message.content == "ok"


def function(name: str, parameters: Any = DROP, **extra: Any) -> dict[str, Any]:
    body = {"name": name, "parameters": parameters, **extra}
    return {"type": "function", "function": {k: v for k, v in body.items() if v is not DROP}}


def assistant_calls(*ids: str, name: str = "lookup") -> dict[str, Any]:
    calls = [
        {"id": id, "type": "function", "function": {"name": name, "arguments": "{}"}} for id in ids
    ]
    return {"role": "assistant", "content": None, "tool_calls": calls}


def answer(id: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": id, "content": "done"}


def messages(*items: dict[str, Any]) -> dict[str, Any]:
    return chat(messages=[USER, *items])


# -- 1. the body and its parameters ----------------------------------------------------------

BODY_REJECTED = [
    ([USER], r"^Error code: 400 - Invalid body: expected an object, but got an array", None),
    (chat(model=DROP), "you must provide a model parameter", None),
    (chat(model=""), "you must provide a model parameter", None),
    (chat(model=4), "Invalid type for 'model': expected a string, but got an integer", "model"),
    (chat(messages=DROP), r"Missing required parameter: 'messages'\.", "messages"),
    (
        chat(messages="Hi"),
        "Invalid type for 'messages': expected an array of objects, but got a string",
        "messages",
    ),
    (
        chat(messages=[]),
        r"Invalid 'messages': empty array\. Expected an array with minimum length 1",
        "messages",
    ),
    (
        chat(max_retries=0),
        "^Error code: 400 - Unrecognized request argument supplied: max_retries$",
        None,
    ),
    (chat(a=1, b=2), "Unrecognized request arguments supplied: a, b", None),
    (
        chat(temperature=3),
        r"Invalid 'temperature': decimal above maximum value\. Expected a value <= 2, but got 3",
        "temperature",
    ),
    (chat(temperature="hot"), "Invalid type for 'temperature': expected a decimal", "temperature"),
    (chat(n=0), "Invalid 'n': integer below minimum value. Expected a value >= 1", "n"),
    (chat(max_tokens=1.5), "Invalid type for 'max_tokens': expected an integer", "max_tokens"),
    (
        chat(stream="yes"),
        "Invalid type for 'stream': expected a boolean, but got a string",
        "stream",
    ),
    (chat(stop=["a", "b", "c", "d", "e"]), "Invalid 'stop': array too long", "stop"),
    (
        chat(stream_options={"include_usage": True}),
        "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        "stream_options",
    ),
]


@pytest.mark.parametrize(("body", "match", "param"), BODY_REJECTED)
def test_body_rejected(client: openai.OpenAI, body: Any, match: str, param: str | None) -> None:
    assert_rejected(client, body, match, param)


def test_body_with_every_known_parameter_accepted(client: openai.OpenAI) -> None:
    body = chat(
        temperature=0,
        top_p=1,
        n=1,
        stream=False,
        stop=["\n"],
        max_tokens=100,
        max_completion_tokens=100,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        logit_bias={"50256": -100},
        logprobs=False,
        seed=7,
        user="tester",
        metadata={"run": "1"},
        store=False,
        service_tier="auto",
        reasoning_effort=None,  # null stands for "not given", as OpenAI takes it
        modalities=["text"],
        verbosity="low",
        prompt_cache_key="k",
        safety_identifier=None,
        prediction=None,
    )
    assert_accepted(client, body)


# -- 2. each message -------------------------------------------------------------------------

MESSAGE_REJECTED = [
    (
        chat(messages=["Hi"]),
        "Invalid type for 'messages\\[0\\]': expected an object, but got a string",
        "messages[0]",
    ),
    (
        chat(messages=[{"content": "Hi"}]),
        r"Missing required parameter: 'messages\[0\]\.role'\.",
        "messages[0].role",
    ),
    (
        chat(messages=[{"role": "bot", "content": "Hi"}]),
        r"Invalid value: 'bot'\. Supported values are: 'system', 'assistant', 'user', 'tool', "
        r"and 'developer'\.",
        "messages[0].role",
    ),
    (
        chat(messages=[{"role": "user", "content": "Hi", "name": "Ann Lee"}]),
        r"Invalid 'messages\[0\]\.name': string does not match pattern",
        "messages[0].name",
    ),
    (
        chat(messages=[{"role": "user", "content": "Hi", "id": "m1"}]),
        r"Unknown parameter: 'messages\[0\]\.id'\.",
        "messages[0].id",
    ),
    (
        chat(messages=[{"role": "system"}]),
        r"Missing required parameter: 'messages\[0\]\.content'\.",
        "messages[0].content",
    ),
    (
        chat(messages=[{"role": "user", "content": None}]),
        r"Invalid type for 'messages\[0\]\.content': expected one of a string or array of "
        "objects, but got null instead",
        "messages[0].content",
    ),
    (
        chat(messages=[{"role": "user", "content": ""}]),
        r"Invalid 'messages\[0\]\.content': string too short",
        "messages[0].content",
    ),
    (
        chat(messages=[{"role": "developer", "content": []}]),
        r"Invalid 'messages\[0\]\.content': empty array",
        "messages[0].content",
    ),
    (
        chat(messages=[{"role": "user", "content": [{"type": "video", "video": {}}]}]),
        r"Invalid value: 'video'\. Supported values are: 'text', 'image_url', 'input_audio', "
        "and 'file'",
        "messages[0].content[0].type",
    ),
    (
        chat(messages=[{"role": "user", "content": [{"type": "text"}]}]),
        r"Missing required parameter: 'messages\[0\]\.content\[0\]\.text'",
        "messages[0].content[0].text",
    ),
    (
        chat(messages=[{"role": "system", "content": [{"type": "image_url", "image_url": {}}]}]),
        r"Invalid value: 'image_url'\. Supported values are: 'text'\.",
        "messages[0].content[0].type",
    ),
    (
        messages({"role": "assistant", "content": None}),
        r"Invalid value for 'content': expected a string, got null\.",
        "messages[1].content",
    ),
    (
        messages({"role": "assistant", "content": "Hm.", "tool_calls": []}),
        r"Invalid 'messages\[1\]\.tool_calls': empty array\. Expected an array with minimum "
        "length 1, but got an empty array instead",
        "messages[1].tool_calls",
    ),
    (
        messages(
            {"role": "assistant", "tool_calls": [{"type": "function", "function": {}}]},
        ),
        r"Missing required parameter: 'messages\[1\]\.tool_calls\[0\]\.id'",
        "messages[1].tool_calls[0].id",
    ),
    (
        messages(
            {
                **assistant_calls("c1"),
                "tool_calls": [{"id": "c1", "type": "custom", "function": {}}],
            }
        ),
        r"Invalid value: 'custom'\. Supported values are: 'function'\.",
        "messages[1].tool_calls[0].type",
    ),
    (
        messages(
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {}}}
                ],
            },
            answer("c1"),
        ),
        r"Invalid type for 'messages\[1\]\.tool_calls\[0\]\.function\.arguments': expected a "
        "string, but got an object instead",
        "messages[1].tool_calls[0].function.arguments",
    ),
    (
        messages(assistant_calls("c1"), {"role": "tool", "content": "done"}),
        r"Missing required parameter: 'messages\[2\]\.tool_call_id'",
        "messages[2].tool_call_id",
    ),
    (
        messages(assistant_calls("c1"), {"role": "tool", "tool_call_id": "c1", "content": 42}),
        r"Invalid type for 'messages\[2\]\.content': expected one of a string or array of "
        "objects, but got an integer",
        "messages[2].content",
    ),
]


@pytest.mark.parametrize(("body", "match", "param"), MESSAGE_REJECTED)
def test_message_rejected(client: openai.OpenAI, body: Any, match: str, param: str) -> None:
    assert_rejected(client, body, match, param)


def test_every_message_shape_accepted(client: openai.OpenAI) -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    history = [
        {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
        {
            "role": "user",
            "name": "ann_lee-2",
            "content": [{"type": "text", "text": "Look:"}, image],
        },
        {"role": "assistant", "content": ""},  # an empty answer is still an answer
        {"role": "user", "content": "And order A-1?"},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "Checking."}],
            "refusal": None,
            "tool_calls": [
                # OpenAI leaves arguments unparsed: a model's broken JSON goes back as it came
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{bro"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "done"}]},
    ]
    assert_accepted(client, chat(messages=history))


def test_assistant_message_dumped_from_a_response_accepted(client: openai.OpenAI) -> None:
    reply = send(client, chat())
    dumped = reply.choices[0].message.model_dump()  # carries audio/function_call/... as null
    assert_accepted(client, chat(messages=[USER, dumped, USER]))


# -- 3. the tool-call history ----------------------------------------------------------------

HISTORY_REJECTED = [
    (
        messages(assistant_calls("c1", "c2"), answer("c1"), USER),
        r"An assistant message with 'tool_calls' must be followed by tool messages responding "
        r"to each 'tool_call_id'\. The following tool_call_ids did not have response messages: "
        "c2$",
        "messages[1].role",
    ),
    (
        messages(assistant_calls("c1", "c2")),
        "The following tool_call_ids did not have response messages: c1, c2$",
        "messages[1].role",
    ),
    (
        messages(assistant_calls("c1"), USER, answer("c1")),
        "The following tool_call_ids did not have response messages: c1$",
        "messages[1].role",
    ),
    (
        messages(answer("c1")),
        r"Invalid parameter: messages with role 'tool' must be a response to a preceeding "
        r"message with 'tool_calls'\.",
        "messages[1].role",
    ),
    (
        messages(
            assistant_calls("c1"),
            answer("c1"),
            {"role": "assistant", "content": "Hm."},
            answer("c1"),
        ),
        "must be a response to a preceeding message with 'tool_calls'",
        "messages[4].role",
    ),
    (
        messages(assistant_calls("c1", "c2"), answer("c1"), answer("c1"), answer("c2")),
        r"messages\[3\] answers tool_call_id 'c1' a second time",
        "messages[3].tool_call_id",
    ),
]


@pytest.mark.parametrize(("body", "match", "param"), HISTORY_REJECTED)
def test_history_rejected(client: openai.OpenAI, body: Any, match: str, param: str) -> None:
    assert_rejected(client, body, match, param)


def test_multi_agent_history_accepted(client: openai.OpenAI) -> None:
    """A conversation handed over from another agent, whose tools this agent lacks."""
    history = [
        {"role": "system", "content": "You are the refund agent."},
        USER,
        assistant_calls("t1", "t2", name="triage_lookup"),
        answer("t2"),  # answers may come in any order within their block
        answer("t1"),
        assistant_calls("t3", name="transfer_to_refund"),
        answer("t3"),
        {"role": "assistant", "content": "Handing you over to refunds."},
        {"role": "user", "content": "Thanks."},
    ]
    tools = [function("issue_refund", {"type": "object", "properties": {}})]
    assert_accepted(client, chat(messages=history, tools=tools))


# -- 4. tools and tool_choice ----------------------------------------------------------------

TOOLS_REJECTED = [
    (chat(tools={}), "Invalid type for 'tools': expected an array of objects", "tools"),
    (chat(tools=[]), r"Invalid 'tools': empty array\.", "tools"),
    (
        chat(tools=[{"type": "retrieval", "function": {"name": "f"}}]),
        r"Invalid value: 'retrieval'\. Supported values are: 'function'\.",
        "tools[0].type",
    ),
    (
        chat(tools=[{"type": "function"}]),
        r"Missing required parameter: 'tools\[0\]\.function'\.",
        "tools[0].function",
    ),
    (
        chat(tools=[function("look up")]),
        r"Invalid 'tools\[0\]\.function\.name': string does not match pattern\. Expected a "
        r"string that matches the pattern '\^\[a-zA-Z0-9_-\]\+\$'\.",
        "tools[0].function.name",
    ),
    (
        chat(tools=[function("f" * 65)]),
        r"string too long\. Expected a string with maximum length 64, but got a string with "
        "length 65 instead",
        "tools[0].function.name",
    ),
    (
        chat(tools=[function("f"), function("g"), function("f")]),
        r"Invalid 'tools\[2\]\.function\.name': duplicate function name 'f'",
        "tools[2].function.name",
    ),
    (
        chat(tools=[function("f", {"type": "string"})]),
        r"""Invalid schema for function 'f': schema must be a JSON Schema of 'type: "object"', """
        r"""got 'type: "string"'\.""",
        "tools[0].function.parameters",
    ),
    (
        chat(tools=[function("f", {"properties": {}})]),
        r"""got 'type: "None"'\.""",
        "tools[0].function.parameters",
    ),
    (
        chat(tools=[function("f", {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}})]),
        r"Invalid schema for function 'f': In context=\('properties', 'a'\), reference to "
        r"component '#/\$defs/A' which was not found in the schema\.",
        "tools[0].function.parameters",
    ),
    (
        chat(tools=[function("f", {"type": "object", "properties": {"tags": {"type": "array"}}})]),
        r"In context=\('properties', 'tags'\), array schema missing items\.",
        "tools[0].function.parameters",
    ),
    (
        chat(tools=[function("f", {"type": "object", "properties": {"a": {"type": "strng"}}})]),
        r"In context=\('properties', 'a'\), 'strng' is not a valid JSON Schema type: use one "
        r"of string, number, integer, boolean, object, array, null\.",
        "tools[0].function.parameters",
    ),
    (
        chat(tools=[function("f", {"type": "object", "properties": ["a"]})]),
        r"In context=\(\), 'properties' must be an object, got an array\.",
        "tools[0].function.parameters",
    ),
    (
        chat(tools=[function("f", {"type": "object", "properties": {}, "required": ["b"]})]),
        r"In context=\(\), 'required' is required to be supplied and to be an array including "
        r"every key in properties\. Extra required key 'b' supplied\.",
        "tools[0].function.parameters",
    ),
    (
        chat(tools=[function("f", {"type": "object", "properties": {}}, strict=True)]),
        r"Invalid schema for function 'f': In context=\(\), 'additionalProperties' is required "
        r"to be supplied and to be false\.",
        "tools[0].function.parameters",
    ),
    (
        chat(
            tools=[
                function(
                    "f",
                    {
                        "type": "object",
                        "properties": {"to": {"type": "object", "properties": {}}},
                        "required": ["to"],
                        "additionalProperties": False,
                    },
                    strict=True,
                )
            ]
        ),
        r"In context=\('properties', 'to'\), 'additionalProperties' is required",
        "tools[0].function.parameters",
    ),
    (
        chat(
            tools=[
                function(
                    "f",
                    {
                        "type": "object",
                        "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                        "required": ["a"],
                        "additionalProperties": False,
                    },
                    strict=True,
                )
            ]
        ),
        r"'required' is required to be supplied and to be an array including every key in "
        r"properties\. Missing 'b'\.",
        "tools[0].function.parameters",
    ),
    (
        chat(tool_choice="auto"),
        r"Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are "
        r"specified\.",
        "tool_choice",
    ),
    (
        chat(parallel_tool_calls=False),
        "'parallel_tool_calls' is only allowed when 'tools' are specified",
        "parallel_tool_calls",
    ),
    (
        chat(tools=[function("f")], tool_choice="any"),
        r"Invalid value: 'any'\. Supported values are: 'none', 'auto', and 'required'\.",
        "tool_choice",
    ),
    (
        chat(tools=[function("f")], tool_choice={"type": "function", "function": {"name": "g"}}),
        r"Invalid 'tool_choice': function 'g' is not one of the declared tools \(f\)\.",
        "tool_choice.function.name",
    ),
]


@pytest.mark.parametrize(("body", "match", "param"), TOOLS_REJECTED)
def test_tools_rejected(client: openai.OpenAI, body: Any, match: str, param: str) -> None:
    assert_rejected(client, body, match, param)


class Address(BaseModel):
    street: str
    city: str


class Customer(BaseModel):
    name: str
    address: Address
    previous: list[Address] = []


class StrictAddress(BaseModel):
    model_config = ConfigDict(extra="forbid")
    street: str
    city: str


class StrictCustomer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    address: StrictAddress
    nickname: str | None


def test_pydantic_nested_schema_accepted(client: openai.OpenAI) -> None:
    schema = Customer.model_json_schema()
    assert schema["properties"]["address"] == {"$ref": "#/$defs/Address"}
    tools = [function("save_customer", schema, description="Save a customer.")]
    assert_accepted(client, chat(tools=tools, tool_choice="required"))


def test_pydantic_nested_schema_without_defs_rejected(client: openai.OpenAI) -> None:
    schema = Customer.model_json_schema()
    del schema["$defs"]
    assert_rejected(
        client,
        chat(tools=[function("save_customer", schema)]),
        r"In context=\('properties', 'address'\), reference to component '#/\$defs/Address' "
        "which was not found",
        "tools[0].function.parameters",
    )


def test_strict_schema_accepted(client: openai.OpenAI) -> None:
    schema = StrictCustomer.model_json_schema()
    assert schema["additionalProperties"] is False
    tools = [function("save_customer", schema, strict=True)]
    choice = {"type": "function", "function": {"name": "save_customer"}}
    assert_accepted(client, chat(tools=tools, tool_choice=choice, parallel_tool_calls=False))


def test_non_strict_pydantic_schema_rejected_when_strict(client: openai.OpenAI) -> None:
    tools = [function("save_customer", Customer.model_json_schema(), strict=True)]
    assert_rejected(
        client,
        chat(tools=tools),
        r"In context=\(\), 'additionalProperties' is required to be supplied and to be false",
        "tools[0].function.parameters",
    )


def test_recursive_and_parameterless_tools_accepted(client: openai.OpenAI) -> None:
    tree = {
        "type": "object",
        "properties": {
            "label": {"type": "string"},
            "children": {"type": "array", "items": {"$ref": "#"}},
        },
        "required": ["label", "children"],
        "additionalProperties": False,
    }
    tools = [function("make_tree", tree, strict=True), function("now")]
    assert_accepted(client, chat(tools=tools, tool_choice="none"))


# -- 5. response_format ----------------------------------------------------------------------


def json_schema(schema: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, **extra}}


FORMAT_REJECTED = [
    (
        chat(response_format={"type": "xml"}),
        r"Invalid value: 'xml'\. Supported values are: 'text', 'json_object', and 'json_schema'\.",
        "response_format.type",
    ),
    (
        chat(response_format={"type": "json_schema"}),
        r"Missing required parameter: 'response_format\.json_schema'\.",
        "response_format.json_schema",
    ),
    (
        chat(response_format=json_schema({"type": "object"}, name="a b")),
        r"Invalid 'response_format\.json_schema\.name': string does not match pattern",
        "response_format.json_schema.name",
    ),
    (
        chat(response_format=json_schema({"type": "array", "items": {"type": "string"}})),
        r"""Invalid schema for response_format 'answer': schema must be a JSON Schema of """
        r"""'type: "object"', got 'type: "array"'\.""",
        "response_format.json_schema.schema",
    ),
    (
        chat(response_format=json_schema(Customer.model_json_schema(), strict=True)),
        r"Invalid schema for response_format 'answer': In context=\(\), 'additionalProperties' "
        "is required to be supplied and to be false",
        "response_format.json_schema.schema",
    ),
    (
        chat(response_format={"type": "json_object"}),
        r"'messages' must contain the word 'json' in some form, to use 'response_format' of "
        r"type 'json_object'\.",
        "messages",
    ),
]


@pytest.mark.parametrize(("body", "match", "param"), FORMAT_REJECTED)
def test_response_format_rejected(client: openai.OpenAI, body: Any, match: str, param: str) -> None:
    assert_rejected(client, body, match, param)


@pytest.mark.parametrize(
    "body",
    [
        chat(response_format={"type": "text"}),
        chat(
            messages=[{"role": "user", "content": "Answer in JSON."}],
            response_format={"type": "json_object"},
        ),
        chat(response_format=json_schema(StrictCustomer.model_json_schema(), strict=True)),
        chat(response_format=json_schema(Customer.model_json_schema(), description="A customer")),
    ],
)
def test_response_format_accepted(client: openai.OpenAI, body: Any) -> None:
    assert_accepted(client, body)


def test_structured_reply_is_sent_as_scripted() -> None:
    """The test author owns the reply's JSON validity: the server sends it as is."""
    with (
        ScriptedServer(["not json at all"]) as server,
        openai.OpenAI(base_url=server.url, api_key="test", max_retries=0) as client,
    ):
        body = chat(response_format=json_schema(StrictCustomer.model_json_schema(), strict=True))
        assert send(client, body).choices[0].message.content == "not json at all"
