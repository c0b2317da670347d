"""Check a tool's ``parameters`` or a ``response_format`` schema the way OpenAI does.

The walk follows the schema's structure (properties, items, ``anyOf``, ``$defs``,
...) rather than its ``$ref`` links, so recursive schemas end. Every problem is
reported with OpenAI's "In context=(...)" path to the offending subschema.
With ``strict``, Structured Outputs rules apply to every object: it must close
``additionalProperties`` and list all of its properties in ``required``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flowgraph.testing._invalid import InvalidRequest, describe, wrong_type

_CHILD_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_CHILD_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_CHILD_SCHEMAS = ("items", "additionalProperties", "not", "contains")
_REF_PREFIXES = ("#/$defs/", "#/definitions/")
_JSON_TYPES = ("string", "number", "integer", "boolean", "object", "array", "null")
_EVERY_KEY = (
    "'required' is required to be supplied and to be an array including every key in properties."
)

Path = tuple[str, ...]


def check_schema(schema: object, owner: str, *, strict: bool, param: str) -> None:
    """Raise `InvalidRequest` unless ``schema`` is an object schema OpenAI accepts.

    Args:
        schema: The JSON Schema as sent.
        owner: What the schema belongs to, for messages: ``"function 'lookup'"``.
        strict: Apply the Structured Outputs rules (``"strict": true``).
        param: The request parameter holding the schema.

    Example:
        >>> check_schema({"type": "object"}, "function 'f'", strict=False, param="p")
    """
    if not isinstance(schema, dict):
        raise wrong_type(param, "an object", schema)
    code = "invalid_function_parameters" if owner.startswith("function") else "invalid_json_schema"
    if schema.get("type") != "object":
        raise InvalidRequest(
            f"Invalid schema for {owner}: schema must be a JSON Schema of 'type: \"object\"', "
            f"got 'type: \"{schema.get('type')}\"'.",
            param,
            code,
        )
    _Walk(schema, owner, strict, param, code).visit(schema, ())


@dataclass(frozen=True)
class _Walk:
    root: dict[str, Any]
    owner: str
    strict: bool
    param: str
    code: str

    def visit(self, node: object, path: Path) -> None:
        if isinstance(node, bool):
            return  # true / false are valid (if unusual) schemas
        if not isinstance(node, dict):
            raise self.fail(path, f"schema must be an object or a boolean, got {describe(node)}.")
        if "$ref" in node:
            self.check_ref(node["$ref"], path)
        types = _types(node)
        unknown = [kind for kind in types if kind not in _JSON_TYPES]
        if unknown or ("type" in node and not types):
            raise self.fail(
                path,
                f"{node.get('type')!r} is not a valid JSON Schema type: use "
                f"one of {', '.join(_JSON_TYPES)}.",
            )
        if "object" in types or "properties" in node:
            self.check_object(node, path)
        if "array" in types and "items" not in node:
            raise self.fail(path, "array schema missing items.")
        for step, child in _children(node):
            self.visit(child, path + step)

    def check_ref(self, ref: object, path: Path) -> None:
        if ref == "#":
            return  # the root itself: how recursive schemas refer to themselves
        if (
            not isinstance(ref, str)
            or not ref.startswith(_REF_PREFIXES)
            or not _resolves(self.root, ref)
        ):
            raise self.fail(
                path, f"reference to component '{ref}' which was not found in the schema."
            )

    def check_object(self, node: dict[str, Any], path: Path) -> None:
        properties = node.get("properties", {})
        if not isinstance(properties, dict):
            raise self.fail(path, f"'properties' must be an object, got {describe(properties)}.")
        required = node.get("required", [])
        if not isinstance(required, list) or not all(isinstance(key, str) for key in required):
            raise self.fail(path, f"'required' must be an array of strings, got {required!r}.")
        extra = [key for key in required if key not in properties]
        if extra:
            raise self.fail(path, f"{_EVERY_KEY} Extra required key '{extra[0]}' supplied.")
        if self.strict:
            self.check_strict_object(node, properties, required, path)

    def check_strict_object(
        self, node: dict[str, Any], properties: dict[str, Any], required: list[str], path: Path
    ) -> None:
        if node.get("additionalProperties") is not False:
            raise self.fail(
                path, "'additionalProperties' is required to be supplied and to be false."
            )
        absent = [key for key in properties if key not in required]
        if absent:
            raise self.fail(path, f"{_EVERY_KEY} Missing '{absent[0]}'.")

    def fail(self, path: Path, problem: str) -> InvalidRequest:
        message = f"Invalid schema for {self.owner}: In context={path!r}, {problem}"
        return InvalidRequest(message, self.param, self.code)


def _types(node: dict[str, Any]) -> list[str]:
    kind = node.get("type")
    if isinstance(kind, str):
        return [kind]
    return [item for item in kind if isinstance(item, str)] if isinstance(kind, list) else []


def _children(node: dict[str, Any]) -> Iterator[tuple[Path, object]]:
    """Yield each subschema of ``node`` with the path steps that lead to it."""
    for key in _CHILD_MAPS:
        group = node.get(key)
        if isinstance(group, dict):
            for name, child in group.items():
                yield (key, name), child
    for key in _CHILD_LISTS:
        group = node.get(key)
        if isinstance(group, list):
            for index, child in enumerate(group):
                yield (key, str(index)), child
    for key in _CHILD_SCHEMAS:
        if key in node:
            yield (key,), node[key]


def _resolves(root: dict[str, Any], ref: str) -> bool:
    """Whether a local JSON pointer (``#/$defs/Item``) names a subschema of ``root``."""
    node: object = root
    for raw in ref[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return isinstance(node, (dict, bool))
