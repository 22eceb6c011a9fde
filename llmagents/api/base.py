"""Shared building blocks of the API models: camelCase wire names and Kubernetes durations.

Every spec and status model derives from ``ApiModel`` so that Python code reads snake_case
while the resources, the CRD schema and the rendered configuration use camelCase.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, WithJsonSchema
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """Base of the API models: camelCase aliases, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_default=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The model as the API server stores it: camelCase keys, unset optionals left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
MAX_DURATION_TEXT = "87600h"
MAX_DURATION = timedelta(hours=87600)
"""Bound on every duration of the API (ten years; unset means no limit where that is
meaningful). A Go or CEL duration holds about 292 years and Python's timedelta more, so
without it ``99999999999h`` would pass the schema's pattern and then fail CEL's
conversion, or an ``OverflowError`` would escape the models."""
_TOO_LONG = f"a duration must be at most {MAX_DURATION_TEXT} (10 years)"


def parse_duration(value: object) -> timedelta:
    """Read a Go-style duration ("500ms", "1m30s"), a number of seconds, or a timedelta."""
    if isinstance(value, timedelta):
        return _bounded(value.total_seconds())
    if isinstance(value, bool):
        raise ValueError("a duration is a string like '30s' or a number of seconds")
    if isinstance(value, int | float):
        return _bounded(float(value))
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(DURATION_PATTERN, text):
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
            return _bounded(seconds)
    raise ValueError(
        f"invalid duration {value!r}: use a number with a unit, like '500ms', '30s', '5m' or '1h30m'"
    )


def _bounded(seconds: float) -> timedelta:
    if not math.isfinite(seconds) or seconds > MAX_DURATION.total_seconds():
        raise ValueError(_TOO_LONG)
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """Write a duration the way Go and CEL's ``duration()`` read it."""
    total_ms = round(value.total_seconds() * 1000)
    if total_ms == 0:
        return "0s"
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    out = ""
    if hours:
        out += f"{hours}h"
    if minutes:
        out += f"{minutes}m"
    if millis and not (hours or minutes or seconds):
        return f"{millis}ms"
    if seconds or millis:
        out += f"{seconds}.{millis:03d}".rstrip("0") + "s" if millis else f"{seconds}s"
    return out


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DURATION_PATTERN,
            # A value too large for a CEL duration fails this rule's conversion, which the
            # API server reports on this field, with this message, and refuses.
            "x-kubernetes-validations": [
                {"rule": f"duration(self) <= duration('{MAX_DURATION_TEXT}')", "message": _TOO_LONG}
            ],
        }
    ),
]
"""A length of time written as in Kubernetes and Go: "30s", "5m", "1h30m", "250ms"."""


def cel(*rules: tuple[str, str]) -> dict[str, Any]:
    """JSON-schema extras carrying CEL rules ``(rule, message)`` into the CRD.

    For what an OpenAPI schema cannot say (one field depending on another); the API server
    evaluates them on every write, and the message is what the user reads on rejection.
    """
    return {"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in rules]}


def list_map(*keys: str) -> dict[str, Any]:
    """JSON-schema extras that make a list a map keyed by ``keys``: unique keys, and
    server-side apply merges items by key instead of replacing the whole list."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}
