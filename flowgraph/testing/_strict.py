"""Reject a chat completions request the way the OpenAI API does.

`check_chat_request` raises `InvalidRequest` (answered as HTTP 400,
``invalid_request_error``) for the first problem found, with OpenAI's wording
where we know it. The checks run in this order: the body and its parameters,
each message, the tool-call history, the tools, ``tool_choice`` and
``response_format``. JSON Schema checks live in `_schema`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flowgraph.testing._invalid import (
    InvalidRequest,
    describe,
    empty_array,
    missing,
    not_supported,
    unknown_parameter,
    wrong_type,
)
from flowgraph.testing._schema import check_schema

_ROLES = ("system", "assistant", "user", "tool", "developer")
_TEXT_ROLE_KEYS = frozenset({"role", "content", "name"})
_ASSISTANT_KEYS = frozenset(
    {"role", "content", "name", "tool_calls", "refusal", "audio", "function_call", "annotations"}
)
_ROLE_KEYS = {
    "system": _TEXT_ROLE_KEYS,
    "developer": _TEXT_ROLE_KEYS,
    "user": _TEXT_ROLE_KEYS,
    "assistant": _ASSISTANT_KEYS,
    "tool": frozenset({"role", "content", "tool_call_id"}),
}
_USER_PARTS = ("text", "image_url", "input_audio", "file")
_MESSAGE_NAME = re.compile(r"^[^\s<|\\/>]+$")
_NAME = re.compile("^[a-zA-Z0-9_-]+$")
_TOOL_CHOICES = ("none", "auto", "required")
_FORMATS = ("text", "json_object", "json_schema")


def check_chat_request(body: object) -> None:
    """Raise `InvalidRequest` if OpenAI would reject this chat completions body.

    Example:
        >>> check_chat_request({"model": "m", "messages": [{"role": "user", "content": "Hi"}]})
    """
    if not isinstance(body, dict):
        raise InvalidRequest(f"Invalid body: expected an object, but got {describe(body)} instead.")
    _check_parameters(body)
    messages = _check_messages(body)
    _check_history(messages)
    names = _check_tools(body.get("tools"))
    _check_tool_choice(body, names)
    _check_response_format(body.get("response_format"), messages)


# -- parameters ------------------------------------------------------------------------------


def _check_parameters(body: dict[str, Any]) -> None:
    unknown = [key for key in body if key not in _PARAMS]
    if len(unknown) == 1:
        raise InvalidRequest(f"Unrecognized request argument supplied: {unknown[0]}")
    if unknown:
        raise InvalidRequest(f"Unrecognized request arguments supplied: {', '.join(unknown)}")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise wrong_type("model", "a string", model)
    if not model:
        raise InvalidRequest("you must provide a model parameter")
    for name, value in body.items():
        if value is not None:  # null stands for "not given", as OpenAI takes it
            _PARAMS[name](name, value)
    if body.get("stream_options") is not None and body.get("stream") is not True:
        raise InvalidRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        )


ParamCheck = Callable[[str, Any], None]


def _decimal(low: float, high: float) -> ParamCheck:
    def check(name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong_type(name, "a decimal", value)
        _check_range(name, "decimal", value, low, high)

    return check


def _integer(low: int | None, high: int | None) -> ParamCheck:
    def check(name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong_type(name, "an integer", value)
        _check_range(name, "integer", value, low, high)

    return check


def _typed(kind: type, expected: str) -> ParamCheck:
    def check(name: str, value: Any) -> None:
        if not isinstance(value, kind):
            raise wrong_type(name, expected, value)

    return check


def _check_range(name: str, kind: str, value: float, low: float | None, high: float | None) -> None:
    if low is not None and value < low:
        raise InvalidRequest(
            f"Invalid '{name}': {kind} below minimum value. "
            f"Expected a value >= {low}, but got {value} instead.",
            name,
            f"{kind}_below_min_value",
        )
    if high is not None and value > high:
        raise InvalidRequest(
            f"Invalid '{name}': {kind} above maximum value. "
            f"Expected a value <= {high}, but got {value} instead.",
            name,
            f"{kind}_above_max_value",
        )


def _check_stop(name: str, stop: Any) -> None:
    if isinstance(stop, str):
        return
    if not isinstance(stop, list) or not all(isinstance(item, str) for item in stop):
        raise wrong_type(name, "one of a string or array of strings", stop)
    if len(stop) > 4:
        raise InvalidRequest(
            f"Invalid 'stop': array too long. Expected an array with maximum length 4, "
            f"but got an array with length {len(stop)} instead.",
            name,
            "array_above_max_length",
        )


def _check_stream_options(name: str, options: Any) -> None:
    if not isinstance(options, dict):
        raise wrong_type(name, "an object", options)
    for key, value in options.items():
        if key not in ("include_usage", "include_obfuscation"):
            raise unknown_parameter(f"{name}.{key}")
        if not isinstance(value, bool):
            raise wrong_type(f"{name}.{key}", "a boolean", value)


def _checked_apart(name: str, value: Any) -> None:
    """model, messages, tools, tool_choice, response_format: each has its own section."""


_BOOLEAN = _typed(bool, "a boolean")
_STRING = _typed(str, "a string")
_OBJECT = _typed(dict, "an object")
# Every chat completions parameter OpenAI knows, with the check of a non-null value
_PARAMS: dict[str, ParamCheck] = {
    **dict.fromkeys(("model", "messages", "tools", "tool_choice"), _checked_apart),
    "response_format": _checked_apart,
    "temperature": _decimal(0, 2),
    "top_p": _decimal(0, 1),
    "presence_penalty": _decimal(-2, 2),
    "frequency_penalty": _decimal(-2, 2),
    "n": _integer(1, 128),
    "max_tokens": _integer(1, None),
    "max_completion_tokens": _integer(1, None),
    "top_logprobs": _integer(0, 20),
    "seed": _integer(None, None),
    **dict.fromkeys(("stream", "logprobs", "parallel_tool_calls", "store"), _BOOLEAN),
    **dict.fromkeys(("user", "service_tier", "reasoning_effort", "verbosity"), _STRING),
    **dict.fromkeys(("prompt_cache_key", "safety_identifier"), _STRING),
    **dict.fromkeys(("metadata", "logit_bias", "audio", "prediction"), _OBJECT),
    "web_search_options": _OBJECT,
    "modalities": _typed(list, "an array"),
    "stop": _check_stop,
    "stream_options": _check_stream_options,
}


# -- messages --------------------------------------------------------------------------------


def _check_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    if "messages" not in body:
        raise missing("messages")
    messages = body["messages"]
    if not isinstance(messages, list):
        raise wrong_type("messages", "an array of objects", messages)
    if not messages:
        raise empty_array("messages")
    for index, message in enumerate(messages):
        _check_message(f"messages[{index}]", message)
    return messages


def _check_message(param: str, message: object) -> None:
    if not isinstance(message, dict):
        raise wrong_type(param, "an object", message)
    if "role" not in message:
        raise missing(f"{param}.role")
    role = message["role"]
    if role not in _ROLE_KEYS:
        raise not_supported(f"{param}.role", role, _ROLES)
    for key in message:
        if key not in _ROLE_KEYS[role]:
            raise unknown_parameter(f"{param}.{key}")
    name = message.get("name")
    if name is not None:
        _check_pattern(f"{param}.name", name, _MESSAGE_NAME)
    _ROLE_CHECKS[role](param, message)


def _check_pattern(param: str, name: object, pattern: re.Pattern[str]) -> str:
    if not isinstance(name, str):
        raise wrong_type(param, "a string", name)
    if not pattern.match(name):
        raise InvalidRequest(
            f"Invalid '{param}': string does not match pattern. "
            f"Expected a string that matches the pattern '{pattern.pattern}'.",
            param,
            "invalid_value",
        )
    return name


def _check_instruction(param: str, message: dict[str, Any]) -> None:
    _check_required_content(param, message, ("text",))


def _check_user(param: str, message: dict[str, Any]) -> None:
    _check_required_content(param, message, _USER_PARTS)


def _check_required_content(param: str, message: dict[str, Any], parts: tuple[str, ...]) -> None:
    if "content" not in message:
        raise missing(f"{param}.content")
    content = message["content"]
    if content == "":
        raise InvalidRequest(
            f"Invalid '{param}.content': string too short. Expected a string with minimum "
            "length 1, but got an empty string instead.",
            f"{param}.content",
            "string_below_min_length",
        )
    _check_content(f"{param}.content", content, parts)


def _check_content(param: str, content: object, parts: tuple[str, ...]) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise wrong_type(param, "one of a string or array of objects", content)
    if not content:
        raise empty_array(param)
    for index, part in enumerate(content):
        _check_part(f"{param}[{index}]", part, parts)


def _check_part(param: str, part: object, parts: tuple[str, ...]) -> None:
    if not isinstance(part, dict):
        raise wrong_type(param, "an object", part)
    if "type" not in part:
        raise missing(f"{param}.type")
    kind = part["type"]
    if kind not in parts:
        raise not_supported(f"{param}.type", kind, parts)
    # every content part carries its payload under a key named like its type
    if kind not in part:
        raise missing(f"{param}.{kind}")
    textual = kind in ("text", "refusal")
    if textual and not isinstance(part[kind], str):
        raise wrong_type(f"{param}.{kind}", "a string", part[kind])
    if not textual and not isinstance(part[kind], dict):
        raise wrong_type(f"{param}.{kind}", "an object", part[kind])


def _check_assistant(param: str, message: dict[str, Any]) -> None:
    content = message.get("content")
    if content is not None:
        _check_content(f"{param}.content", content, ("text", "refusal"))
    calls = message.get("tool_calls")
    if calls is not None:
        _check_tool_calls(f"{param}.tool_calls", calls)
    if content is None and not calls:
        raise InvalidRequest(
            "Invalid value for 'content': expected a string, got null.", f"{param}.content"
        )


def _check_tool_calls(param: str, calls: object) -> None:
    if not isinstance(calls, list):
        raise wrong_type(param, "an array of objects", calls)
    if not calls:
        raise empty_array(param)
    for index, call in enumerate(calls):
        _check_tool_call(f"{param}[{index}]", call)


def _check_tool_call(param: str, call: object) -> None:
    _check_object(param, call, required=("id", "type", "function"), optional=())
    assert isinstance(call, dict)
    if not isinstance(call["id"], str):
        raise wrong_type(f"{param}.id", "a string", call["id"])
    if call["type"] != "function":
        raise not_supported(f"{param}.type", call["type"], ("function",))
    function = call["function"]
    _check_object(f"{param}.function", function, required=("name", "arguments"), optional=())
    assert isinstance(function, dict)
    # OpenAI does not parse 'arguments': a model's broken JSON goes back as it came
    for key in ("name", "arguments"):
        if not isinstance(function[key], str):
            raise wrong_type(f"{param}.function.{key}", "a string", function[key])


def _check_tool_message(param: str, message: dict[str, Any]) -> None:
    if "tool_call_id" not in message:
        raise missing(f"{param}.tool_call_id")
    if not isinstance(message["tool_call_id"], str):
        raise wrong_type(f"{param}.tool_call_id", "a string", message["tool_call_id"])
    if "content" not in message:
        raise missing(f"{param}.content")
    _check_content(f"{param}.content", message["content"], ("text",))


_ROLE_CHECKS: dict[str, Callable[[str, dict[str, Any]], None]] = {
    "system": _check_instruction,
    "developer": _check_instruction,
    "user": _check_user,
    "assistant": _check_assistant,
    "tool": _check_tool_message,
}


def _check_object(
    param: str, value: object, *, required: tuple[str, ...], optional: tuple[str, ...]
) -> None:
    """Check ``value`` is an object holding ``required`` keys and no keys but these."""
    if not isinstance(value, dict):
        raise wrong_type(param, "an object", value)
    for key in required:
        if key not in value:
            raise missing(f"{param}.{key}")
    for key in value:
        if key not in required and key not in optional:
            raise unknown_parameter(f"{param}.{key}")


# -- history ---------------------------------------------------------------------------------


def _check_history(messages: list[dict[str, Any]]) -> None:
    """Each assistant tool-call block must be answered, id by id, before anything else."""
    pending: dict[str, None] = {}  # ids still to answer, in call order
    answered: set[str] = set()
    block = -1  # index of the assistant message that opened the current block
    for index, message in enumerate(messages):
        if message["role"] == "tool":
            _answer(index, message["tool_call_id"], pending, answered)
            continue
        if pending:
            raise _unanswered(block, pending)
        answered.clear()
        block = index
        pending = dict.fromkeys(call["id"] for call in message.get("tool_calls") or ())
    if pending:
        raise _unanswered(block, pending)


def _answer(index: int, call_id: str, pending: dict[str, None], answered: set[str]) -> None:
    if call_id in pending:
        del pending[call_id]
        answered.add(call_id)
        return
    if call_id in answered:
        raise InvalidRequest(
            f"Invalid parameter: messages[{index}] answers tool_call_id '{call_id}' a second "
            "time; each tool call takes exactly one message with role 'tool'.",
            f"messages[{index}].tool_call_id",
        )
    raise InvalidRequest(
        "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
        "message with 'tool_calls'.",
        f"messages[{index}].role",
    )


def _unanswered(block: int, pending: dict[str, None]) -> InvalidRequest:
    return InvalidRequest(
        "An assistant message with 'tool_calls' must be followed by tool messages responding "
        "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
        + ", ".join(pending),
        f"messages[{block}].role",
    )


# -- tools -----------------------------------------------------------------------------------


def _check_tools(tools: object) -> list[str]:
    """Check the tool list; return the declared function names."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise wrong_type("tools", "an array of objects", tools)
    if not tools:
        raise empty_array("tools")
    names: list[str] = []
    for index, tool in enumerate(tools):
        names.append(_check_tool(f"tools[{index}]", tool, names))
    return names


def _check_tool(param: str, tool: object, declared: list[str]) -> str:
    _check_object(param, tool, required=("type", "function"), optional=())
    assert isinstance(tool, dict)
    if tool["type"] != "function":
        raise not_supported(f"{param}.type", tool["type"], ("function",))
    function = tool["function"]
    optional = ("description", "parameters", "strict")
    _check_object(f"{param}.function", function, required=("name",), optional=optional)
    assert isinstance(function, dict)
    name = _check_name(f"{param}.function.name", function["name"])
    if name in declared:
        raise InvalidRequest(
            f"Invalid '{param}.function.name': duplicate function name '{name}'. "
            "Each tool needs a unique name.",
            f"{param}.function.name",
            "invalid_value",
        )
    _check_optional(f"{param}.function.description", function.get("description"), str)
    strict = _check_optional(f"{param}.function.strict", function.get("strict"), bool)
    parameters = function.get("parameters")
    if parameters is not None:
        owner = f"function '{name}'"
        check_schema(parameters, owner, strict=strict is True, param=f"{param}.function.parameters")
    return name


def _check_name(param: str, name: object) -> str:
    """Check a function or schema name: ``^[a-zA-Z0-9_-]+$``, at most 64 characters."""
    name = _check_pattern(param, name, _NAME)
    if len(name) > 64:
        raise InvalidRequest(
            f"Invalid '{param}': string too long. Expected a string with maximum length 64, "
            f"but got a string with length {len(name)} instead.",
            param,
            "string_above_max_length",
        )
    return name


def _check_optional(param: str, value: object, kind: type) -> object:
    if value is not None and not isinstance(value, kind):
        raise wrong_type(param, "a boolean" if kind is bool else "a string", value)
    return value


def _check_tool_choice(body: dict[str, Any], names: list[str]) -> None:
    for key in ("tool_choice", "parallel_tool_calls"):
        if body.get(key) is not None and not names:
            raise InvalidRequest(
                f"Invalid value for '{key}': '{key}' is only allowed when 'tools' are specified.",
                key,
            )
    choice = body.get("tool_choice")
    if choice is None:
        return
    if isinstance(choice, str):
        if choice not in _TOOL_CHOICES:
            raise not_supported("tool_choice", choice, _TOOL_CHOICES)
        return
    _check_object("tool_choice", choice, required=("type", "function"), optional=())
    assert isinstance(choice, dict)
    if choice["type"] != "function":
        raise not_supported("tool_choice.type", choice["type"], ("function",))
    function = choice["function"]
    _check_object("tool_choice.function", function, required=("name",), optional=())
    assert isinstance(function, dict)
    if function["name"] not in names:
        raise InvalidRequest(
            f"Invalid 'tool_choice': function '{function['name']}' is not one of the declared "
            f"tools ({', '.join(names)}).",
            "tool_choice.function.name",
            "invalid_value",
        )


# -- response_format -------------------------------------------------------------------------


def _check_response_format(response_format: object, messages: list[dict[str, Any]]) -> None:
    if response_format is None:
        return
    if not isinstance(response_format, dict):
        raise wrong_type("response_format", "an object", response_format)
    if "type" not in response_format:
        raise missing("response_format.type")
    kind = response_format["type"]
    if kind not in _FORMATS:
        raise not_supported("response_format.type", kind, _FORMATS)
    extra = ("json_schema",) if kind == "json_schema" else ()
    _check_object("response_format", response_format, required=("type", *extra), optional=())
    if kind == "json_object" and not _mentions_json(messages):
        raise InvalidRequest(
            "'messages' must contain the word 'json' in some form, to use 'response_format' "
            "of type 'json_object'.",
            "messages",
        )
    if kind == "json_schema":
        _check_json_schema(response_format["json_schema"])


def _check_json_schema(json_schema: object) -> None:
    param = "response_format.json_schema"
    optional = ("description", "strict")
    _check_object(param, json_schema, required=("name", "schema"), optional=optional)
    assert isinstance(json_schema, dict)
    name = _check_name(f"{param}.name", json_schema["name"])
    _check_optional(f"{param}.description", json_schema.get("description"), str)
    strict = _check_optional(f"{param}.strict", json_schema.get("strict"), bool)
    owner = f"response_format '{name}'"
    check_schema(json_schema["schema"], owner, strict=strict is True, param=f"{param}.schema")


def _mentions_json(messages: list[dict[str, Any]]) -> bool:
    for message in messages:
        content = message.get("content")
        texts = [content] if isinstance(content, str) else content or ()
        for text in texts:
            if isinstance(text, dict):
                text = text.get("text")
            if isinstance(text, str) and "json" in text.lower():
                return True
    return False
