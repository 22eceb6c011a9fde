"""The neutral chat request in Gemini's shape: contents, tools, tool config, generation config.

- Assistant turns are role ``model``; system messages become ``systemInstruction``;
  consecutive turns of one role are merged (Gemini wants them alternating).
- Images: a ``data:`` URL becomes ``inlineData``; any other URL ``fileData`` with its URI
  (Gemini reads only URIs it can reach, such as its Files API's; a data URL always works).
- An assistant's tool calls become ``functionCall`` parts; a tool result a
  ``functionResponse`` part in a user turn, named after the call it answers (OpenAI's tool
  messages carry only the call's id, so the name is looked up in the history). Gemini's
  API matches calls and responses by name and order, so ids are not sent.
- Tools become ``functionDeclarations``; ``tool_choice`` ``functionCallingConfig`` (auto /
  required → ANY / none, a named function → ANY limited to it). Gemini has no switch for
  parallel calls.
- Thought signatures: Gemini 3 refuses a history whose function calls lack the
  ``thoughtSignature`` it attached to them. The adapter remembers the signatures of the
  calls it received (by the tool-call ids it gave them) and puts them back; a call it never
  saw (made by another provider, or before a restart) gets Google's documented stand-in
  that skips the check, for Gemini 3 models only.
- A reasoning effort: ``generationConfig.thinkingConfig`` (``thinking_config``).
- Structured output: ``responseMimeType: application/json`` with ``responseSchema``.
  Gemini's schemas are an OpenAPI subset: ``$ref`` into ``$defs`` is inlined, a
  ``["string", "null"]`` type becomes ``nullable``, and keywords it does not know
  (``additionalProperties``, ``$schema``, ``strict``...) are left out, for tool parameters
  and response schemas alike.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import re
from collections.abc import Mapping
from typing import Any

from llmagents.chat import (
    ChatRequest,
    ImagePart,
    Message,
    ReasoningEffort,
    ResponseFormatType,
    Role,
    ToolChoiceMode,
)
from llmagents.errors import RequestRefused
from llmagents.providers import tool_arguments
from llmagents.wire import gemini as wire

_SCHEMA_KEYS = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems",
    "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength",
    "pattern", "example", "anyOf", "propertyOrdering", "default", "items", "minimum", "maximum",
})  # fmt: skip
_MAX_DEPTH = 32


def payload(
    request: ChatRequest,
    *,
    signatures: Mapping[str, str] | None = None,
    strict: bool = False,
    model: str = "",
) -> dict[str, Any]:
    """The request body; ``signatures`` are known thought signatures by tool-call id,
    ``strict`` (Gemini 3) puts the stand-in on calls whose signature is unknown, ``model``
    (without ``models/``) decides how a reasoning effort is said."""
    body: dict[str, Any] = {
        "contents": _contents(request.messages, signatures or {}, strict=strict)
    }
    system = [m.text for m in request.messages if m.role is Role.SYSTEM]
    if system:
        body["systemInstruction"] = {"parts": [{"text": text} for text in system]}
    if request.tools:
        body["tools"] = [{"functionDeclarations": [_declaration(t.name, t.description,
                                                                t.parameters)
                                                   for t in request.tools]}]  # fmt: skip
    if request.tool_choice is not None and request.tools:  # nothing to choose from otherwise
        body["toolConfig"] = {"functionCallingConfig": _calling_config(request)}
    config: dict[str, Any] = {}
    if request.max_tokens is not None:
        config["maxOutputTokens"] = request.max_tokens
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.top_p is not None:
        config["topP"] = request.top_p
    if request.stop:
        config["stopSequences"] = request.stop
    if request.seed is not None:
        config["seed"] = request.seed
    fmt = request.response_format
    if fmt is not None and fmt.type is not ResponseFormatType.TEXT:
        config["responseMimeType"] = "application/json"
        if fmt.type is ResponseFormatType.JSON_SCHEMA and fmt.schema:
            config["responseSchema"] = gemini_schema(fmt.schema)
    if request.reasoning_effort is not None:
        thinking = thinking_config(request.reasoning_effort, model)
        if thinking is not None:
            config["thinkingConfig"] = thinking
    if config:
        body["generationConfig"] = config
    return body


_THINKING_MODEL = re.compile(r"^gemini-(\d+)(?:\.(\d+))?")
MAX_THINKING_BUDGET = 24576
"""The largest ``thinkingBudget`` Gemini 2.5 Flash and Flash-Lite take."""
MAX_PRO_THINKING_BUDGET = 32768
"""The largest ``thinkingBudget`` Gemini 2.5 Pro takes."""
MIN_PRO_THINKING_BUDGET = 128
"""The least ``thinkingBudget`` Gemini 2.5 Pro takes: it cannot stop thinking."""


def thinking_config(effort: ReasoningEffort, model: str) -> dict[str, Any] | None:
    """``generationConfig.thinkingConfig`` for ``effort``: Gemini 3 takes a
    ``thinkingLevel`` (``low`` or ``high``), Gemini 2.5 a ``thinkingBudget`` in tokens (the
    effort's, within the model's range); thought summaries are asked for (``includeThoughts``)
    unless the effort is ``none``. Older models do not think: ``None``, nothing is sent."""
    found = _THINKING_MODEL.match(model)
    version = (int(found[1]), int(found[2] or 0)) if found else (0, 0)
    shown = effort is not ReasoningEffort.NONE
    if version >= (3, 0):
        low = effort in (ReasoningEffort.NONE, ReasoningEffort.MINIMAL, ReasoningEffort.LOW)
        return {"thinkingLevel": "low" if low else "high", "includeThoughts": shown}
    if version < (2, 5):
        return None
    pro = "-pro" in model
    budget = min(effort.budget_tokens, MAX_PRO_THINKING_BUDGET if pro else MAX_THINKING_BUDGET)
    if pro:
        budget = max(budget, MIN_PRO_THINKING_BUDGET)
    return {"thinkingBudget": budget, "includeThoughts": shown}


def _calling_config(request: ChatRequest) -> dict[str, Any]:
    choice = request.tool_choice
    assert choice is not None
    if choice.name:
        return {"mode": "ANY", "allowedFunctionNames": [choice.name]}
    mode = {ToolChoiceMode.AUTO: "AUTO", ToolChoiceMode.REQUIRED: "ANY",
            ToolChoiceMode.NONE: "NONE"}[choice.mode]  # fmt: skip
    return {"mode": mode}


def _declaration(name: str, description: str | None, parameters: dict[str, Any]) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": name}
    if description:
        declaration["description"] = description
    schema = gemini_schema(parameters)
    if schema.get("properties"):  # Gemini refuses an object schema without properties
        declaration["parameters"] = schema
    return declaration


def _image(part: ImagePart) -> dict[str, Any]:
    inline = part.data_url_parts()
    if inline is not None:
        media_type, data = inline
        return {"inlineData": {"mimeType": media_type, "data": base64.b64encode(data).decode()}}
    guessed = mimetypes.guess_type(part.url.split("?", 1)[0])[0] or "image/jpeg"
    return {"fileData": {"mimeType": guessed, "fileUri": part.url}}


def _parts(
    message: Message, names: dict[str, str], signatures: Mapping[str, str], *, strict: bool
) -> list[dict[str, Any]]:
    if message.role is Role.TOOL:
        if message.images:
            # functionResponse.response is a JSON object: the images would be dropped, and
            # the model would answer as if the tool had shown nothing. Another provider may
            # take the call; this refusal counts nothing against Gemini.
            raise RequestRefused(
                "Gemini takes no images in a tool's result (a functionResponse holds JSON only)"
            )
        name = names.get(message.tool_call_id or "", "tool")
        return [{"functionResponse": {"name": name, "response": _result(message.text)}}]
    parts: list[dict[str, Any]] = []
    if isinstance(message.content, str):
        if message.content:
            parts.append({"text": message.content})
    else:
        for part in message.content:
            if isinstance(part, ImagePart):
                parts.append(_image(part))
            elif part.text:
                parts.append({"text": part.text})
    calls: list[dict[str, Any]] = []
    for call in message.tool_calls:
        call_part: dict[str, Any] = {
            "functionCall": {"name": call.name, "args": tool_arguments.as_object(call.arguments)}
        }
        signature = signatures.get(call.id)
        if signature is not None:
            call_part["thoughtSignature"] = signature
        calls.append(call_part)
    if strict and calls and not any("thoughtSignature" in p for p in calls):
        # Gemini signs the first call of a turn; a turn it did not make (another provider's,
        # or one from before a restart) carries the stand-in there.
        calls[0]["thoughtSignature"] = wire.SKIP_SIGNATURE
    return parts + calls


def _contents(
    messages: list[Message], signatures: Mapping[str, str], *, strict: bool
) -> list[dict[str, Any]]:
    names = {c.id: c.name for m in messages for c in m.tool_calls}
    contents: list[dict[str, Any]] = []
    for message in messages:
        if message.role is Role.SYSTEM:
            continue
        role = "model" if message.role is Role.ASSISTANT else "user"
        parts = _parts(message, names, signatures, strict=strict)
        if not parts:
            continue
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return contents


def _result(text: str) -> dict[str, Any]:
    """A tool's result as the object ``functionResponse.response`` must be."""
    try:
        value = json.loads(text)
    except ValueError:
        return {"result": text}
    return value if isinstance(value, dict) else {"result": value}


def gemini_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (JSON Schema) in the OpenAPI subset Gemini's ``Schema`` reads."""
    return _convert(schema, schema.get("$defs") or schema.get("definitions") or {}, 0)


def _convert(schema: Any, defs: dict[str, Any], depth: int) -> dict[str, Any]:
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return {}
    if "$ref" in schema:
        target = defs.get(str(schema["$ref"]).rsplit("/", 1)[-1], {})
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return _convert(merged, defs, depth + 1)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in _SCHEMA_KEYS:
            continue
        if key == "type":
            kinds = value if isinstance(value, list) else [value]
            real = [k for k in kinds if k != "null"]
            if len(real) < len(kinds):
                out["nullable"] = True
            if real:
                out["type"] = str(real[0]).upper()
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: _convert(sub, defs, depth + 1) for name, sub in value.items()}
        elif key == "items":
            out[key] = _convert(value, defs, depth + 1)
        elif key == "anyOf" and isinstance(value, list):
            options = [o for o in value if not (isinstance(o, dict) and o.get("type") == "null")]
            if len(options) < len(value):
                out["nullable"] = True
            if len(options) == 1:
                out.update(_convert(options[0], defs, depth + 1))
            else:
                out[key] = [_convert(o, defs, depth + 1) for o in options]
        else:
            out[key] = value
    if "properties" in out and "type" not in out:
        out["type"] = "OBJECT"
    return out
