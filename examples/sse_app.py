"""A flow served as Server-Sent Events: a chat UI shows each answer as it is written.

    pip install starlette uvicorn        # any ASGI framework and server will do
    uvicorn examples.sse_app:app         # then POST {"message": "..."} to /chat

Each event of the run is one SSE event: its ``type`` as the event name, its JSON as
the data (``flowgraph.events.EVENTS.validate_json(data)`` reads it back). A browser's
``EventSource`` or any SSE client reads them. When the client goes away, the server
stops the response's generator, and that cancels the run (its commits are kept).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

import flowgraph as fg
from examples.support import build_flow
from flowgraph.events import StreamEvent


def make_app(flow: fg.Flow) -> Starlette:
    """An ASGI app that streams a run of ``flow`` for each POST to ``/chat``."""

    async def chat(request: Request) -> Response:
        body = await request.json()
        message = body.get("message") if isinstance(body, dict) else None
        if not isinstance(message, str) or not message:
            return JSONResponse({"error": 'send {"message": "..."}'}, status_code=400)
        return StreamingResponse(
            sse(flow.astream(message, context=body.get("context") or {})),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )

    return Starlette(routes=[Route("/chat", chat, methods=["POST"])])


async def sse(events: AsyncIterator[StreamEvent]) -> AsyncIterator[str]:
    """The events as SSE: ``event: <type>`` and ``data: <json>``; a failed run's
    ``run_finished`` is its last event (its error is in ``result.reason``)."""
    try:
        async for event in events:
            yield f"event: {event.type}\ndata: {event.model_dump_json()}\n\n"
    except fg.RunError:
        return  # run_finished (status "failed") was sent: the client knows


app = make_app(build_flow())
