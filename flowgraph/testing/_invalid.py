"""`InvalidRequest` and the OpenAI wordings shared by the request checks.

OpenAI phrases the same kind of problem the same way whatever the parameter
("Missing required parameter: 'messages[0].role'."), so each wording is built
here once, named for the condition.
"""

from __future__ import annotations

from collections.abc import Sequence


class InvalidRequest(Exception):
    """A request OpenAI would refuse: answered as HTTP 400 ``invalid_request_error``.

    Attributes:
        message: The error message, in OpenAI's wording where we know it.
        param: The offending parameter (``"messages[2].content"``), if one is to blame.
        code: OpenAI's machine-readable code (``"missing_required_parameter"``), if any.

    Example:
        >>> InvalidRequest("Missing required parameter: 'messages'.", "messages").param
        'messages'
    """

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


def describe(value: object) -> str:
    """Name a JSON value's type the way OpenAI does: ``"an integer"``, ``"null"``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def missing(param: str) -> InvalidRequest:
    """Example: ``Missing required parameter: 'messages[0].role'.``"""
    return InvalidRequest(
        f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
    )


def wrong_type(param: str, expected: str, value: object) -> InvalidRequest:
    """Example: ``Invalid type for 'model': expected a string, but got an integer instead.``"""
    return InvalidRequest(
        f"Invalid type for '{param}': expected {expected}, but got {describe(value)} instead.",
        param,
        "invalid_type",
    )


def not_supported(param: str, value: object, supported: Sequence[str]) -> InvalidRequest:
    """Example: ``Invalid value: 'bot'. Supported values are: 'system' and 'user'.``"""
    quoted = [f"'{item}'" for item in supported]
    listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + f", and {quoted[-1]}"
    if len(quoted) == 2:
        listed = f"{quoted[0]} and {quoted[1]}"
    return InvalidRequest(
        f"Invalid value: '{value}'. Supported values are: {listed}.", param, "invalid_value"
    )


def empty_array(param: str) -> InvalidRequest:
    """Example: ``Invalid 'tools': empty array. Expected an array with minimum length 1, ...``"""
    return InvalidRequest(
        f"Invalid '{param}': empty array. Expected an array with minimum length 1, "
        "but got an empty array instead.",
        param,
        "empty_array",
    )


def unknown_parameter(param: str) -> InvalidRequest:
    """Example: ``Unknown parameter: 'messages[1].id'.``"""
    return InvalidRequest(f"Unknown parameter: '{param}'.", param, "unknown_parameter")
