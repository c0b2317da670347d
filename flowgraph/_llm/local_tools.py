"""Tool calling for the bundled local model, through JSON-constrained output.

llama-cpp-python's server, with SmolLM2's own chat template, neither offers tools
to the model nor parses tool calls; its ``chatml-function-calling`` format drops
tool results from the prompt and, when tools are offered, returns empty text
answers. So the local model is asked for one JSON object, constrained by a schema
(llama.cpp turns it into a grammar): ``{"answer": "..."}`` or
``{"tool": "<name>", "arguments": {...}}``. Earlier tool calls and results are
written into the prompt in the same terms. The flow still sees standard
OpenAI-format assistant messages and tool calls.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from flowgraph._base.messages import Message

PROTOCOL = (
    "\n\nYou can call these tools:\n{tools}\n"
    'Reply with one JSON object: "answer" holding your reply, or "tool" naming a tool '
    'with its "arguments".'
)


def local_request(
    messages: list[Message],
    tools: list[dict[str, Any]] | None,
    response_format: dict[str, Any] | None,
) -> tuple[list[Message], dict[str, Any] | None]:
    """The messages and response format to send the local server instead."""
    plain = _plain_history(messages)
    if response_format is not None and response_format.get("type") == "json_schema":
        schema = response_format["json_schema"]["schema"]
        return plain, {"type": "json_object", "schema": schema}
    if not tools:
        return plain, response_format
    functions = [tool["function"] for tool in tools]
    listing = "\n".join(
        f"- {fn['name']}: {fn.get('description', '')} Arguments: "
        f"{json.dumps(fn.get('parameters', {}).get('properties', {}))}"
        for fn in functions
    )
    if plain and plain[0]["role"] == "system":
        plain[0] = {
            "role": "system",
            "content": plain[0]["content"] + PROTOCOL.format(tools=listing),
        }
    else:
        plain.insert(0, {"role": "system", "content": PROTOCOL.format(tools=listing).strip()})
    return plain, {"type": "json_object", "schema": _reply_schema(functions)}


def local_reply(message: Message, tools: list[dict[str, Any]] | None) -> Message:
    """The local model's JSON reply, as a standard assistant message."""
    text = message.get("content") or ""
    if not tools:
        return message
    try:
        data = json.loads(text)
    except ValueError:
        return {"role": "assistant", "content": text}
    if isinstance(data, dict) and isinstance(data.get("tool"), str):
        call = {
            "id": f"call_{uuid.uuid4().hex[:12]}",
            "type": "function",
            "function": {
                "name": data["tool"],
                "arguments": json.dumps(data.get("arguments") or {}),
            },
        }
        return {"role": "assistant", "content": None, "tool_calls": [call]}
    answer = data.get("answer") if isinstance(data, dict) else None
    return {"role": "assistant", "content": answer if isinstance(answer, str) else text}


def _reply_schema(functions: list[dict[str, Any]]) -> dict[str, Any]:
    options: list[dict[str, Any]] = [_object({"answer": {"type": "string"}})]
    for fn in functions:
        parameters = fn.get("parameters") or {"type": "object", "properties": {}}
        options.append(_object({"tool": {"const": fn["name"]}, "arguments": parameters}))
    return {"anyOf": options}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _plain_history(messages: list[Message]) -> list[Message]:
    """Tool calls and results rewritten as plain text, as the local model speaks."""
    names: dict[str, str] = {}
    plain: list[Message] = []
    for message in messages:
        role = message["role"]
        if role == "assistant" and message.get("tool_calls"):
            for call in message["tool_calls"]:
                names[call["id"]] = call["function"]["name"]
            text = " ".join(_call_text(call) for call in message["tool_calls"])
            plain.append({"role": "assistant", "content": text})
        elif role == "tool":
            name = names.get(message.get("tool_call_id", ""), "the tool")
            plain.append({"role": "user", "content": f"Result of {name}: {message['content']}"})
        else:
            role = "system" if role == "developer" else role
            plain.append({"role": role, "content": message.get("content") or ""})
    return plain


def _call_text(call: dict[str, Any]) -> str:
    try:
        arguments = json.loads(call["function"].get("arguments") or "{}")
    except ValueError:
        arguments = call["function"].get("arguments")
    return json.dumps({"tool": call["function"]["name"], "arguments": arguments})
