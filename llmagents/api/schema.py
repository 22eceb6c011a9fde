"""Turn a pydantic model's JSON schema into a Kubernetes structural OpenAPI v3 schema.

The API server only accepts "structural" schemas: every node typed, no ``$ref``, no
``anyOf`` except the int-or-string idiom, no ``additionalProperties: false`` beside
``properties``. Pydantic writes JSON Schema 2020-12, so this module inlines references,
drops the ``null`` branch of optional fields (optional = not required), turns numeric
``exclusiveMinimum`` into OpenAPI 3.0's boolean form, renders defaults the way the API
server stores them (durations as "30s"), and appends each enum member's docstring to the
description so that ``kubectl explain`` lists what every value means.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import textwrap
from datetime import timedelta
from enum import Enum
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from llmagents.api.base import DURATION_PATTERN, format_duration

DURATION_MAX_LENGTH = 64
"""Bound on duration strings, so that CEL's cost estimate of ``duration()`` stays small."""

_KEEP = {
    "type",
    "format",
    "description",
    "default",
    "enum",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "required",
    "nullable",
}


class _KubeJsonSchema(GenerateJsonSchema):
    """Pydantic's generator with defaults written the way Kubernetes users write them."""

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, timedelta):
            return format_duration(dft)
        return super().encode_default(dft)

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        # A nested model built by default_factory gets its whole default value, so that the
        # API server fills it in when the user leaves the object out (and CEL rules on it
        # see every field, as they do on a user's value after defaulting).
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            json_schema = self.generate_inner(schema["schema"])
            if isinstance(factory, type) and issubclass(factory, BaseModel):
                json_schema["default"] = factory().model_dump(
                    mode="json", by_alias=True, exclude_none=True
                )
            return json_schema
        return super().default_schema(schema)


def structural_schema(
    model: type[BaseModel], enums: dict[str, type[Enum]], *, defaults: bool = True
) -> dict[str, Any]:
    """The structural schema of ``model``; ``enums`` maps enum names to their classes.

    ``defaults=False`` leaves defaults out, for status: the API server would otherwise fill
    them in on every read, and a controller's status means what it wrote, nothing more.
    """
    raw = model.model_json_schema(by_alias=True, schema_generator=_KubeJsonSchema)
    defs = raw.pop("$defs", {})
    schema = _convert(raw, defs, enums)
    return schema if defaults else _without_defaults(schema)


def _without_defaults(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_defaults(v) for k, v in node.items() if k != "default"}
    if isinstance(node, list):
        return [_without_defaults(v) for v in node]
    return node


def enum_classes(*models: type[BaseModel]) -> dict[str, type[Enum]]:
    """Every enum class reachable from ``models``, by name, for member documentation."""
    found: dict[str, type[Enum]] = {}
    seen: set[type[BaseModel]] = set()

    def visit(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, Enum):
            found[annotation.__name__] = annotation
        elif (
            isinstance(annotation, type)
            and issubclass(annotation, BaseModel)
            and annotation not in seen
        ):
            seen.add(annotation)
            for field in annotation.model_fields.values():
                visit(field.annotation)
        for arg in getattr(annotation, "__args__", ()) or ():
            visit(arg)
        for arg in getattr(annotation, "__metadata__", ()) or ():
            visit(arg)
        origin = getattr(annotation, "__origin__", None)
        if origin is not None and origin is not annotation:
            visit(origin)

    for model in models:
        visit(model)
    return found


def member_docs(enum_cls: type[Enum]) -> dict[str, str]:
    """Docstrings written under enum members (attribute docstrings), by member value."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(enum_cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for stmt, following in itertools.pairwise(body):
        if (
            isinstance(stmt, ast.Assign)
            and isinstance(stmt.targets[0], ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            member = enum_cls.__members__.get(stmt.targets[0].id)
            if member is not None:
                text = " ".join(following.value.value.split()).replace("``", "")
                docs[str(member.value)] = text.rstrip(".")
    return docs


def _convert(
    node: dict[str, Any], defs: dict[str, Any], enums: dict[str, type[Enum]]
) -> dict[str, Any]:
    node = dict(node)
    ref_name: str | None = None
    if "$ref" in node:
        ref_name = node.pop("$ref").rsplit("/", 1)[-1]
        target = dict(defs[ref_name])
        # The field's own description and extras win over the referenced type's docstring.
        node = {**target, **node}
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        branches = [b for b in node.pop("anyOf") if b.get("type") != "null"]
        if len(branches) != 1:
            raise ValueError(f"cannot express a union of {len(branches)} types structurally")
        if node.get("default", "") is None:
            del node["default"]
        return _convert({**branches[0], **node}, defs, enums)

    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _KEEP or key.startswith("x-kubernetes-"):
            out[key] = value
        elif key == "anyOf":  # int-or-string: the API server wants the bare branches
            out[key] = [{"type": b["type"]} for b in value]
        elif key == "properties":
            out[key] = {name: _convert(sub, defs, enums) for name, sub in value.items()}
        elif key == "items" or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = _convert(value, defs, enums)
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
    if "properties" in out:
        out["type"] = "object"
    if (
        out.get("type") == "object"
        and "properties" not in out
        and "additionalProperties" not in out
    ):
        out["x-kubernetes-preserve-unknown-fields"] = True
    if out.get("pattern") == DURATION_PATTERN:
        out.setdefault("maxLength", DURATION_MAX_LENGTH)
    if out.get("default") is None:
        out.pop("default", None)
    if "enum" in out and ref_name in enums:
        docs = member_docs(enums[ref_name])
        if docs:
            values = "; ".join(f"{v}: {docs[v]}" if v in docs else str(v) for v in out["enum"])
            out["description"] = f"{out.get('description', '').rstrip()} Values: {values}.".strip()
    if not out.get("required"):
        out.pop("required", None)
    return _ordered(out)


_ORDER = ["description", "type", "format"]


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    """Stable key order that reads well in the generated YAML."""
    head = {k: node[k] for k in _ORDER if k in node}
    return {**head, **{k: v for k, v in sorted(node.items()) if k not in head}}
