"""What a fake provider answers, whatever its protocol: text, tool calls, or JSON for a schema.

Each protocol's fake reads its request into a ``ReceivedCall`` and writes the ``Answer`` made
here in its own shape. The answers are deterministic and say what the fake saw, so that a
test can tell that a request crossed the gateway and an adapter intact:

- a plain prompt: ``[fake-<protocol>:<model>] answer to: <the prompt's first words>``,
  with ``(saw 1 image/png image)`` when the last user message held images;
- tools offered and the prompt naming one or more of them (or ``tool_choice`` requiring
  one): a call of each named tool, in parallel unless parallel calls are off, with
  arguments valid for the tool's parameter schema (string values taken from the prompt's
  capitalised words, so ``weather in Paris`` gives ``{"city": "Paris"}``);
- the conversation ending in tool results: ``[fake-...] tool results: <their texts>``, or,
  when ``tool_choice`` requires a call, a call of the first tool the prompt does not name;
- a JSON schema asked for (or a forced tool, as Anthropic's JSON mode): JSON valid for it.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

_ANSWER_PROMPT_WORDS = 8
_WORD = re.compile(r"\S+\s*")


@dataclass(slots=True)
class FakeTool:
    name: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ReceivedCall:
    """What a protocol parser extracted from a valid chat request."""

    model: str
    prompt: str
    input_tokens: int
    max_tokens: int | None
    stream: bool
    include_usage: bool = True
    tools: list[FakeTool] = field(default_factory=list)
    tool_choice: str = "auto"
    """``auto``, ``none`` or ``required``."""
    forced_tool: str | None = None
    parallel: bool = True
    tool_results: list[str] | None = None
    """The texts of the tool results the conversation ends with, if it ends with some."""
    schema: dict[str, Any] | None = None
    """The JSON Schema the answer must follow (``{}`` for any JSON object)."""
    images: list[str] = field(default_factory=list)
    """Media types (or ``url``) of the images in the last user message (or in the tool
    results it holds)."""
    thinking: bool = False
    """Extended thinking asked for (Anthropic's ``thinking``): the answer starts with it."""
    reasoning_asked: dict[str, Any] | None = None
    """The request's reasoning controls as its protocol names them (Anthropic's
    ``thinking``, ``reasoning_effort`` or OpenRouter's ``reasoning``, Gemini's
    ``thinkingConfig``), for tests to read (``FakeProviderServer.last_call``)."""
    reasoning_returned: int = 0
    """Blocks of earlier reasoning the history carried back (Anthropic's thinking blocks,
    OpenRouter's ``reasoning_details``)."""


@dataclass(slots=True)
class FakeToolCall:
    id: str
    name: str
    arguments: dict[str, Any]

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments, separators=(",", ":"))


@dataclass(slots=True)
class Answer:
    """The fake's deterministic answer, split into the pieces a stream sends."""

    pieces: list[str]
    output_tokens: int
    hit_max_tokens: bool
    tool_calls: list[FakeToolCall] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def count_tokens(text: str) -> int:
    """About four characters a token, the usual rule of thumb for English text."""
    return max(1, math.ceil(len(text) / 4))


def make_answer(call: ReceivedCall, *, protocol: str, id_prefix: str) -> Answer:
    label = f"[fake-{protocol}:{call.model}]"
    calls = _tool_calls(call, id_prefix)
    if calls:
        output = sum(count_tokens(c.name + c.arguments_json) for c in calls)
        return Answer([], output, False, calls)
    if call.tool_results is not None:
        text = f"{label} tool results: " + "; ".join(r.strip() for r in call.tool_results)
        if call.images:
            text += f" (saw {len(call.images)} {'/'.join(call.images)} image)"
    elif call.schema is not None:
        text = json.dumps(example_for(call.schema, _Context(call.prompt, call.schema)))
    else:
        words = call.prompt.split()[:_ANSWER_PROMPT_WORDS] or ["(empty prompt)"]
        text = " ".join([f"{label} answer to:", *words])
        if call.images:
            text += f" (saw {len(call.images)} {'/'.join(call.images)} image)"
    hit = call.max_tokens is not None and count_tokens(text) > call.max_tokens
    if hit and call.schema is None:
        assert call.max_tokens is not None
        text = text[: call.max_tokens * 4]
    # A stream sends one word (with its trailing space) per chunk.
    return Answer(_WORD.findall(text), count_tokens(text), hit)


def _tool_calls(call: ReceivedCall, id_prefix: str) -> list[FakeToolCall]:
    by_name = {t.name: t for t in call.tools}
    if call.forced_tool is not None and call.forced_tool in by_name:
        chosen = [by_name[call.forced_tool]]
    elif not call.tools or call.tool_choice == "none":
        return []
    elif call.tool_results is not None:
        if call.tool_choice != "required":
            return []
        # Made to call a tool after its results, as an agent library that takes its final
        # answer by a tool of its own (pydantic-ai's final_result): one the prompt did not name.
        chosen = [t for t in call.tools if not _named(t, call.prompt)][:1] or call.tools[:1]
    else:
        chosen = [t for t in call.tools if _named(t, call.prompt)]
        if not chosen and call.tool_choice == "required":
            chosen = call.tools[:1]
        if not call.parallel:
            chosen = chosen[:1]
    return [
        FakeToolCall(
            f"{id_prefix}{secrets.token_hex(8)}" if id_prefix else "",
            tool.name,
            example_for(tool.parameters or {"type": "object"}, _Context(call.prompt,
                                                                        tool.parameters)),
        )
        for tool in chosen
    ]  # fmt: skip


def _named(tool: FakeTool, prompt: str) -> bool:
    return re.search(rf"\b{re.escape(tool.name)}\b", prompt) is not None


class _Context:
    """Where example values come from: the prompt's capitalised words, in turn."""

    def __init__(self, prompt: str, root: dict[str, Any] | None) -> None:
        words = re.findall(r"\b[A-Z][a-zA-Z]+\b", prompt)[1:]
        self.words = words or ["example"]
        self.used = 0
        self.root = root or {}

    def word(self) -> str:
        word = self.words[self.used % len(self.words)]
        self.used += 1
        return str(word)


def example_for(schema: dict[str, Any], context: _Context, depth: int = 0) -> Any:
    """A value valid for ``schema`` (the subset of JSON Schema tools and structured output
    use: types, properties, required, items, enum, const, anyOf, $ref into $defs)."""
    if depth > 16:
        return None
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        defs = context.root.get("$defs") or context.root.get("definitions") or {}
        return example_for(defs.get(name, {}), context, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            options = [o for o in schema[key] if o.get("type") != "null"] or schema[key]
            return example_for(options[0], context, depth + 1)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties") or {}
        if not properties and not schema.get("required"):
            return {"answer": context.word()} if depth == 0 else {}
        return {name: example_for(sub, context, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        count = max(1, int(schema.get("minItems") or 1))
        return [example_for(schema.get("items") or {}, context, depth + 1) for _ in range(count)]
    if kind == "integer":
        return int(schema.get("minimum", 3))
    if kind == "number":
        return float(schema.get("minimum", 1.5))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return context.word()
