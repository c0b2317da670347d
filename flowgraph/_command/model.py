"""The model options that ``run``, ``validate`` and ``runs resume`` share (``--model``,
``--base-url``, ``--api-key``, ``--api-key-file``), and the check that a flow is ready
to run: its structure (exit 3), then a model for what needs one (exit 4)."""

from __future__ import annotations

import argparse
from pathlib import Path

import flowgraph as fg
from flowgraph._command.common import CliError
from flowgraph._graph.validate import needs_model, no_model, validate

MODEL_HELP = """\
--model replaces the flow's model (flow.model) with an OpenAI-compatible one;
agents and tool steps that set their own model keep it. Without --model the
flow's own model is used, else OpenAI when OPENAI_API_KEY is set, else the
bundled local model."""


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="NAME", help="the model of the flow, e.g. gpt-4.1-mini")
    parser.add_argument(
        "--base-url", metavar="URL", help="an OpenAI-compatible server (with --model)"
    )
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        help="the server's API key (with --model; default: $OPENAI_API_KEY). A key on the "
        "command line shows in process listings: prefer $OPENAI_API_KEY or --api-key-file",
    )
    parser.add_argument(
        "--api-key-file",
        metavar="PATH",
        help="read the server's API key from this file (with --model)",
    )


def check_model_options(args: argparse.Namespace) -> None:
    """Refuse a server or a key without a model to ask there."""
    if args.model is None and (args.base_url or args.api_key or args.api_key_file):
        option = "--base-url" if args.base_url else "--api-key"
        raise CliError(
            f"{option} needs --model, the model to ask there, e.g. "
            "--model llama3.1 --base-url http://localhost:11434/v1"
        )


def apply_model(flow: fg.Flow, args: argparse.Namespace) -> None:
    """Give ``flow`` the model the options name, if they name one."""
    if args.model is not None:
        api_key = args.api_key or read_key(args.api_key_file)
        flow.model = fg.OpenAIModel(args.model, base_url=args.base_url, api_key=api_key)


def check_ready(flow: fg.Flow, *, said: str = "") -> None:
    """Raise ``FlowValidationError`` (exit 3) for a broken structure, then
    ``ConfigurationError`` (exit 4) when what needs a model has none. ``said``: printed
    between the two, once the structure holds."""
    validate(flow, models=False)
    if said:
        print(said, flush=True)
    if missing := needs_model(flow):
        raise fg.ConfigurationError(
            f"flow {flow.name!r} has no model to run on: {no_model(missing)}; or name one "
            "here with --model NAME (and --base-url URL for a server other than OpenAI)"
        )


def read_key(path: str | None) -> str | None:
    """The API key in the file at ``path`` (None: no file given)."""
    if path is None:
        return None
    try:
        key = Path(path).read_text().strip()
    except OSError as exc:
        raise CliError(f"--api-key-file {path}: cannot read it ({exc.strerror})") from exc
    if not key:
        raise CliError(f"--api-key-file {path}: the file is empty")
    return key
