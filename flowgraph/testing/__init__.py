"""flowgraph.testing: a scripted OpenAI-compatible server for testing flows.

`ScriptedServer` listens on 127.0.0.1 and answers chat completions requests
from a script, through real HTTP and the real ``openai`` client, with nothing
patched. It is as strict as the OpenAI API: a broken history (a tool call left
unanswered) or an invalid tool schema gets the same HTTP 400 OpenAI would send.

Script items, consumed one per request:

- ``"text"``: an assistant text reply;
- ``tool_call(name, {...})``: one tool call; a list of them: parallel calls;
- ``Reply(content=..., tool_calls=[...])``: both at once, or an empty ``Reply()``;
- ``streamed("Hel", "lo", call_delta(0, name="f", arguments="{}"))``: a reply
  streamed in exactly these chunks (the plain answer is what they make up);
- ``error(500, "boom")``: an HTTP error with an OpenAI-shaped body;
  ``rate_limited(retry_after=0.1)``: a 429 with ``retry-after`` headers;
- a function of the `ChatRequest` (sync or async) returning any of the above.

Faults below HTTP, for a client's timeouts, retries and failures:

- ``delay(0.2, then="late")``: answer ``then`` (any item) after 0.2 s;
- ``drop()``: close the connection without answering;
  ``drop(after_headers=True)``: close it after the headers of a 200;
- ``malformed()``: a 200 whose body is not JSON (or any ``body=``);
- ``truncated(after=2)``: a stream cut after 2 events, without ``[DONE]``
  (a plain answer: cut halfway through its JSON); ``clean=True`` ends the
  response properly at the cut instead of dropping the connection.

Each uses up one item per request, so ``[drop(), "ok"]`` drops the first
attempt and answers the client's retry with "ok".

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

from flowgraph.testing._faults import (
    Answer,
    Delay,
    Drop,
    Malformed,
    ScriptItem,
    Truncated,
    delay,
    drop,
    malformed,
    truncated,
)
from flowgraph.testing._items import (
    CallDelta,
    ChatRequest,
    Fault,
    Reply,
    ToolCall,
    call_delta,
    error,
    rate_limited,
    streamed,
    tool_call,
)
from flowgraph.testing._server import ScriptedServer

__all__ = [
    "Answer",
    "CallDelta",
    "ChatRequest",
    "Delay",
    "Drop",
    "Fault",
    "Malformed",
    "Reply",
    "ScriptItem",
    "ScriptedServer",
    "ToolCall",
    "Truncated",
    "call_delta",
    "delay",
    "drop",
    "error",
    "malformed",
    "rate_limited",
    "streamed",
    "tool_call",
    "truncated",
]
