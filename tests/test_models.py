"""Models: OpenAIModel over any compatible server, the default model, no secrets leak."""

from __future__ import annotations

import asyncio

import openai
import pytest

import flowgraph as fg
from flowgraph._llm import default as _models
from flowgraph._llm import local as _local

from .conftest import Serve


def test_the_api_key_never_shows_in_repr() -> None:
    model = fg.OpenAIModel(
        "gpt-4.1-mini", base_url="http://127.0.0.1:1/v1", api_key="sk-secret-123"
    )
    assert repr(model) == "OpenAIModel('gpt-4.1-mini', base_url='http://127.0.0.1:1/v1')"
    assert "sk-secret" not in str(vars(model).get("settings"))


def test_complete_returns_an_openai_format_message_and_usage(serve: Serve) -> None:
    server, model = serve(["hello there"])

    completion = asyncio.run(model.complete([{"role": "user", "content": "hi"}]))

    assert completion.message == {"role": "assistant", "content": "hello there"}
    assert completion.usage.requests == 1
    assert completion.usage.prompt_tokens > 0
    assert server.requests[0].headers["authorization"] == "Bearer test"


def test_one_client_per_event_loop() -> None:
    model = fg.OpenAIModel("m", base_url="http://127.0.0.1:1/v1", api_key="k")

    async def client_id() -> int:
        return id(model.client())

    async def twice() -> tuple[int, int]:
        return await client_id(), await client_id()

    first, again = asyncio.run(twice())
    assert first == again
    assert len(model._clients) <= 1


@pytest.fixture
def fresh_defaults(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setattr(_models, "_defaults", {})
    return monkeypatch


def test_the_default_is_openai_when_a_key_is_set(fresh_defaults: pytest.MonkeyPatch) -> None:
    fresh_defaults.setenv("OPENAI_API_KEY", "sk-test")
    fresh_defaults.setenv("FLOWGRAPH_MODEL", "gpt-4.1-nano")

    model = _models.default_model()

    assert isinstance(model, fg.OpenAIModel) and not isinstance(model, fg.LocalModel)
    assert model.name == "gpt-4.1-nano"
    assert _models.default_model() is model  # one client pool for the process


def test_the_default_is_the_local_model_without_a_key(
    fresh_defaults: pytest.MonkeyPatch,
) -> None:
    fresh_defaults.delenv("OPENAI_API_KEY", raising=False)
    if not _local.available():
        pytest.fail("the bundled local model should be installed by `make test`")

    model = _models.default_model()

    assert isinstance(model, fg.LocalModel)
    assert model.name == "SmolLM2-135M-Instruct"


def test_without_key_or_local_model_the_error_says_how_to_configure(
    fresh_defaults: pytest.MonkeyPatch,
) -> None:
    fresh_defaults.delenv("OPENAI_API_KEY", raising=False)
    fresh_defaults.setattr(_local, "gguf_path", lambda: None)

    with pytest.raises(
        fg.ConfigurationError,
        match=r"no model is configured\. Pass "
        r"model=fg\.OpenAIModel\('gpt-4\.1-mini'\).*OPENAI_API_KEY.*"
        r"pip install 'flowgraph\[local\]'",
    ):
        _models.default_model()


class Echo:
    """A model in plain Python: the Model protocol is all flowgraph needs."""

    name = "echo"

    async def complete(
        self,
        messages: list[dict[str, object]],
        *,
        tools: object = None,
        response_format: object = None,
    ) -> fg.Completion:
        return fg.Completion(
            {"role": "assistant", "content": f"echo: {messages[-1]['content']}"},
            fg.Usage(requests=1),
        )


def test_any_object_with_complete_is_a_model() -> None:
    assert isinstance(Echo(), fg.Model)
    flow = fg.Flow("echo", model=Echo())
    flow.edge(fg.START, fg.Agent("parrot"))

    assert flow.run("hi").output == "echo: hi"


def test_a_flow_runs_on_a_client_of_your_own(serve: Serve) -> None:
    server, _ = serve(["hello from your client"])

    async def run() -> fg.RunResult:
        async with openai.AsyncOpenAI(
            base_url=server.url,
            api_key="x",
            max_retries=0,
            default_headers={"x-caller": "my-client"},
        ) as client:
            flow = fg.Flow("own", model=fg.OpenAIModel("scripted", client=client))
            flow.edge(fg.START, fg.Agent("greeter", "Greet."))
            return await flow.arun("hi")

    result = asyncio.run(run())

    assert result.output == "hello from your client"
    (request,) = server.requests
    assert request.headers["x-caller"] == "my-client"  # this client, not one flowgraph made
    assert request.headers["authorization"] == "Bearer x"
    assert request.body["model"] == "scripted"
    assert request.messages == [
        {"role": "system", "content": "Greet."},
        {"role": "user", "content": "hi"},
    ]


def test_a_new_flow_model_is_used_by_the_next_run(serve: Serve) -> None:
    first, model_a = serve(["from a"])
    second, model_b = serve(["from b"])
    agent = fg.Agent("helper")
    flow = fg.Flow("swap", model=model_a)
    flow.edge(fg.START, agent)
    flow.edge(agent, fg.END)

    assert flow.run("hi").output == "from a"
    flow.model = model_b
    assert flow.run("hi").output == "from b"
    assert (len(first.requests), len(second.requests)) == (1, 1)


def test_settings_go_where_create_would_send_them(serve: Serve) -> None:
    """Issue 18: requests go through the client's post(), not create(): the body
    settings, extra_headers/extra_query/extra_body and the auth still arrive."""
    server, _ = serve(["ok"])
    model = fg.OpenAIModel(
        "m",
        base_url=server.url,
        api_key="sk-test",
        temperature=0,
        seed=7,
        extra_headers={"X-Team": "refunds"},
        extra_query={"api-version": "2024-10-21"},
        extra_body={"user": "ada"},
        timeout=30,
    )
    flow = fg.Flow("settings", model=model)
    flow.edge(fg.START, fg.Agent("a", "Be brief."))
    flow.edge("a", fg.END)

    assert flow.run("hi").output == "ok"

    (request,) = server.requests
    body = request.body
    assert (body["temperature"], body["seed"], body["user"]) == (0, 7, "ada")
    assert "extra_headers" not in request.body and "timeout" not in request.body
    assert request.headers["x-team"] == "refunds"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.path.endswith("/chat/completions")
