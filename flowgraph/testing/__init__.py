"""flowgraph.testing: a scripted OpenAI-compatible server for testing flows.

`ScriptedServer` listens on 127.0.0.1 and answers chat completions requests
from a script, through real HTTP and the real ``openai`` client, with nothing
patched. It is as strict as the OpenAI API: a broken history (a tool call left
unanswered) or an invalid tool schema gets the same HTTP 400 OpenAI would send.

Script items, consumed one per request:

- ``"text"``: an assistant text reply;
- ``tool_call(name, {...})``: one tool call; a list of them: parallel calls;
- ``Reply(content=..., tool_calls=[...])``: both at once, or an empty ``Reply()``;
- ``error(500, "boom")``: an HTTP error with an OpenAI-shaped body;
- a function of the `ChatRequest` (sync or async) returning any of the above.

Example:
    >>> import openai
    >>> from flowgraph.testing import ScriptedServer, tool_call
    >>> script = [tool_call("lookup_order", {"order_id": "A-1"}), "Your order has shipped."]
    >>> with ScriptedServer(script) as server:
    ...     client = openai.OpenAI(base_url=server.url, api_key="test")
    ...     first = client.chat.completions.create(
    ...         model="scripted", messages=[{"role": "user", "content": "Where is A-1?"}]
    ...     )
    >>> first.choices[0].message.tool_calls[0].function.arguments
    '{"order_id": "A-1"}'
    >>> server.requests[0].last_message["content"]
    'Where is A-1?'
"""

from __future__ import annotations

from flowgraph.testing._script import (
    Answer,
    ChatRequest,
    Fault,
    Reply,
    ScriptItem,
    ToolCall,
    error,
    tool_call,
)
from flowgraph.testing._server import ScriptedServer

__all__ = [
    "Answer",
    "ChatRequest",
    "Fault",
    "Reply",
    "ScriptItem",
    "ScriptedServer",
    "ToolCall",
    "error",
    "tool_call",
]
