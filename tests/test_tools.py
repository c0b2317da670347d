"""Tools: JSON schemas from typed signatures, validation, calling conventions."""

from __future__ import annotations

import asyncio
import enum
from typing import Literal

import pytest
from pydantic import BaseModel

import flowgraph as fg
from flowgraph._graph.tools import ToolArgumentsError


class Size(enum.Enum):
    SMALL = "small"
    LARGE = "large"


class Address(BaseModel):
    street: str
    city: str


def ship(
    order_id: str,
    address: Address,
    size: Size = Size.SMALL,
    speed: Literal["slow", "fast"] = "slow",
    gift: bool = False,
    ctx: fg.RunContext[dict[str, str]] | None = None,
) -> str:
    """Ship an order.

    Ships it to the address given.

    Args:
        order_id: the order's id.
        address: where to send it.
        size: the box size; larger boxes
            cost more.

    Returns:
        A tracking number.
    """
    assert ctx is not None
    ctx.context["shipped"] = order_id
    return f"{order_id} to {address.city} ({size.value}, {speed}, gift={gift})"


def context() -> fg.RunContext[dict[str, str]]:
    return fg.RunContext(context={}, messages=[], run_id="r")


def test_the_schema_comes_from_the_signature_and_the_docstring() -> None:
    schema = fg.Tool(ship).openai_schema()

    function = schema["function"]
    assert function["name"] == "ship"
    assert function["description"] == "Ship an order.\n\nShips it to the address given."
    parameters = function["parameters"]
    assert parameters["required"] == ["order_id", "address"]
    assert parameters["additionalProperties"] is False
    assert list(parameters["properties"]) == ["order_id", "address", "size", "speed", "gift"]
    assert parameters["properties"]["order_id"] == {
        "type": "string",
        "description": "the order's id.",
    }
    assert parameters["properties"]["size"]["description"] == (
        "the box size; larger boxes cost more."
    )
    assert parameters["properties"]["speed"]["enum"] == ["slow", "fast"]
    assert parameters["$defs"]["Address"]["required"] == ["street", "city"]
    assert "title" not in parameters["$defs"]["Address"]


def test_arguments_are_validated_into_typed_values() -> None:
    ctx = context()
    text = asyncio.run(
        fg.Tool(ship).call(
            '{"order_id": "A-1", "address": {"street": "1 Main", "city": "Oslo"}, "size": "large"}',
            ctx,
        )
    )

    assert text == "A-1 to Oslo (large, slow, gift=False)"
    assert ctx.context == {"shipped": "A-1"}


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ("{broken", "arguments: Invalid JSON"),
        (
            '{"order_id": 5, "address": {"street": "x", "city": "y"}}',
            "order_id: Input should be a valid string",
        ),
        ('{"order_id": "A", "address": {"street": "x"}}', "address.city: Field required"),
        (
            '{"order_id": "A", "address": {"street": "x", "city": "y"}, "size": "huge"}',
            "size: Input should be 'small' or 'large'",
        ),
    ],
)
def test_bad_arguments_explain_themselves(arguments: str, problem: str) -> None:
    with pytest.raises(ToolArgumentsError, match="invalid arguments for tool 'ship': ") as caught:
        asyncio.run(fg.Tool(ship).call(arguments, context()))
    assert problem in str(caught.value)


def test_no_argument_tools_accept_an_empty_string() -> None:
    def ping() -> str:
        return "pong"

    assert asyncio.run(fg.Tool(ping).call("", context())) == "pong"
    assert fg.Tool(ping).openai_schema()["function"]["parameters"] == {
        "type": "object",
        "properties": {},
        "additionalProperties": False,
    }


def test_return_values_become_text() -> None:
    def model_value() -> Address:
        return Address(street="1 Main", city="Oslo")

    def set_value() -> dict[str, object]:
        return {"tags": ("a",), "where": Address(street="s", city="c")}

    assert asyncio.run(fg.Tool(model_value).call("{}", context())) == (
        '{"street":"1 Main","city":"Oslo"}'
    )
    assert asyncio.run(fg.Tool(set_value).call("{}", context())) == (
        '{"tags": ["a"], "where": {"street": "s", "city": "c"}}'
    )


def test_name_and_description_can_be_overridden() -> None:
    tool = fg.Tool(lambda order_id: order_id, name="echo", description="Echo the id.")
    function = tool.openai_schema()["function"]
    assert (function["name"], function["description"]) == ("echo", "Echo the id.")
    assert function["parameters"]["properties"]["order_id"] == {}  # unannotated: any value


def test_unresolvable_annotations_are_reported() -> None:
    def later(thing: NotDefinedYet) -> str:  # type: ignore[name-defined]  # noqa: F821
        return ""

    with pytest.raises(
        fg.FlowValidationError,
        match="tool 'later': an annotation does not resolve: name 'NotDefinedYet' is not defined",
    ):
        fg.Tool(later).openai_schema()
