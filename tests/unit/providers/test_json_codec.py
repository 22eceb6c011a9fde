"""The adapters' JSON: pydantic-core's encoder and parser first, the standard library's where
they differ, so that what is sent and accepted is what ``json`` alone would send and accept."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmagents.errors import MalformedResponse, RequestNotEncodable
from llmagents.providers.base import _json
from llmagents.providers.mapping import decode_json


@pytest.mark.parametrize(
    "document",
    [
        {"model": "m", "messages": [{"role": "user", "content": "Say NaN or -Infinity, é \u2028"}]},
        {"big": 10**30, "small": 1e-300, "float": 0.1, "list": [1, (2, 3)], "none": None},
        {"nested": {"a": {"b": {"c": [True, False]}}}},
    ],
)
def test_encoded_requests_mean_what_json_would_send(document: dict[str, Any]) -> None:
    assert json.loads(_json(document)) == json.loads(json.dumps(document))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), "lone \ud800"])
def test_what_strict_json_cannot_say_is_refused(value: object) -> None:
    with pytest.raises(RequestNotEncodable, match="strict JSON"):
        _json({"x": value})


def test_answers_in_utf_16_still_parse() -> None:
    assert decode_json('{"x": "é"}'.encode("utf-16"), provider="p") == {"x": "é"}


@pytest.mark.parametrize("body", [b'{"a": 1', b"\xff", b'{"a": 1}{"b": 2}', b""])
def test_broken_answers_are_malformed_with_the_standard_library_s_reason(body: bytes) -> None:
    try:
        json.loads(body)
    except ValueError as error:
        expected = str(error)
    with pytest.raises(MalformedResponse) as raised:
        decode_json(body, provider="p")
    assert expected in str(raised.value)
