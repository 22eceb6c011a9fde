"""Anthropic's Messages API (``POST /v1/messages``), plain and streamed, tools included.

Translation from the neutral chat model (``llmagents.wire.anthropic`` holds the shapes):

- system messages go to the top-level ``system`` field (the API has no system role);
- text and images become ``text`` and ``image`` blocks (a ``data:`` URL as a base64 source,
  any other URL as a URL source);
- an assistant's tool calls become ``tool_use`` blocks (arguments parsed into ``input``),
  and tool results ``tool_result`` blocks in the next user turn; consecutive results of
  parallel calls share one user turn, as the API requires. Ids that do not fit Anthropic's
  pattern are replaced by stable stand-ins (``tool_ids``);
- ``tool_choice`` auto / required / a named function / none become ``auto`` / ``any`` /
  ``tool`` / ``none``, and ``parallel_tool_calls: false`` ``disable_parallel_tool_use``;
- structured output (``response_format`` json_schema or json_object) is a forced tool
  whose input schema is the requested schema; its ``tool_use`` input comes back as the
  answer's text (JSON), with finish reason ``stop``, in whole answers and streams alike.

- ``reasoning_effort`` becomes extended thinking with the effort's ``budget_tokens``, unless
  the client sent Anthropic's own ``thinking`` (the Messages front door), which wins;
- an assistant turn's reasoning goes back as its ``thinking`` and ``redacted_thinking``
  blocks, unchanged, only to the provider that produced it (or when its origin is unknown);
  when that leaves the final tool-calling turn without thinking, a ``thinking`` the client
  asked for is left off that request, since the API would refuse it.

Answers are read by ``anthropic_answer``: ``text`` blocks joined, ``tool_use`` blocks as
tool calls, thinking as reasoning, stop reasons mapped (``tool_use`` → ``tool_calls``).
Usage is ``usage.input_tokens`` (plus cache writes and reads, which were sent too) and
``output_tokens``.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from llmagents.chat import (
    ChatRequest,
    ChatResponse,
    ImagePart,
    Message,
    ReasoningEffort,
    ResponseFormatType,
    Role,
    ToolChoiceMode,
)
from llmagents.errors import ProviderError
from llmagents.providers import tool_arguments, tool_ids
from llmagents.providers.anthropic_answer import (
    JSON_TOOL,
    AnthropicStream,
    error_from_body,
    parse_message,
)
from llmagents.providers.base import ProviderAdapter
from llmagents.providers.mapping import (
    Headers,
    body_excerpt,
    body_json,
    error_for_status,
    retry_after_seconds,
)
from llmagents.wire import anthropic as wire

logger = logging.getLogger(__name__)

ANTHROPIC_VERSION = wire.VERSION
DEFAULT_MAX_TOKENS = 4096
"""The API requires ``max_tokens``; used when the request leaves it open."""
MIN_THINKING_TOP_P = 0.95
"""The least ``top_p`` the API takes beside extended thinking."""


class AnthropicAdapter(ProviderAdapter):
    """Claude models through the Messages API."""

    protocol = "anthropic"

    def _auth_headers(self, api_key: str | None) -> dict[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        return headers

    def _endpoint(self, *, stream: bool) -> str:
        return "/messages" if self.base_url.endswith("/v1") else "/v1/messages"

    def _models_endpoint(self) -> str:
        return "/models" if self.base_url.endswith("/v1") else "/v1/models"

    def _payload(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        payload: dict[str, Any] = dict(request.passthrough.get("anthropic", ()))
        system = [m.text for m in request.messages if m.role is Role.SYSTEM]
        payload["model"] = self.model
        payload["max_tokens"] = (
            DEFAULT_MAX_TOKENS if request.max_tokens is None else request.max_tokens
        )
        payload["messages"] = _messages(request.messages, provider=self.name)
        if system:
            payload["system"] = "\n\n".join(system)
        if request.temperature is not None:
            # Anthropic's range is [0, 1], OpenAI's [0, 2]; both default to 1, so the
            # common values mean the same and higher ones are capped.
            payload["temperature"] = min(request.temperature, 1.0)
        if request.top_p is not None:
            payload["top_p"] = request.top_p
        if request.stop:
            payload["stop_sequences"] = request.stop
        _tools(payload, request)
        derived = "thinking" not in payload and request.reasoning_effort is not None
        if derived:
            _thinking_for_effort(payload, request)
        if "thinking" in payload and _unthought_tool_turn(payload["messages"]):
            # With thinking on, the API refuses a final assistant turn that calls tools
            # without its thinking block, and another provider's (left out above) cannot be
            # sent: this turn is answered without extended thinking instead.
            del payload["thinking"]
            # A Messages client asked for this thinking; an effort's is routinely left off
            # (a chat client that keeps no reasoning_details), so it is told quietly.
            (logger.debug if derived else logger.info)(
                "agent %s: provider %s: thinking left off for a tool-calling turn sent back "
                "without its thinking (another provider's, or left out by the client)",
                self.agent, self.name)  # fmt: skip
        self._fit_thinking(payload, derived=derived)
        if stream:
            payload["stream"] = True
        return payload

    def _fit_thinking(self, payload: dict[str, Any], *, derived: bool = False) -> None:
        """Keep ``thinking.budget_tokens`` below ``max_tokens``, as the API requires.

        The budget may have lowered ``max_tokens`` to what this call can still pay for (or
        the client's limit is below what its effort stands for): the thinking budget is
        lowered to fit under it, or, when not even the API's minimum of 1024 fits, this
        call is answered without extended thinking. The caller's ``thinking`` object is
        replaced, never changed (it is the request's passthrough). A budget ``derived`` from
        an effort is fitted quietly (DEBUG): the client asked for no number of tokens.
        """
        log = logger.debug if derived else logger.info
        thinking = payload.get("thinking")
        limit = payload["max_tokens"]
        if wire.thinking_problem(thinking, limit) is None or not isinstance(thinking, dict):
            return
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < wire.MIN_THINKING_BUDGET:
            return  # the client's own mistake: the API's refusal tells it what is wrong
        if limit - 1 >= wire.MIN_THINKING_BUDGET:
            payload["thinking"] = {**thinking, "budget_tokens": limit - 1}
            log("agent %s: provider %s: thinking.budget_tokens %d lowered to %d, below "
                "max_tokens %d (what the budget left pays for)",
                self.agent, self.name, budget, limit - 1, limit)  # fmt: skip
        else:
            del payload["thinking"]
            log("agent %s: provider %s: thinking left off: max_tokens %d (what the budget "
                "left pays for) leaves no room for its minimum budget_tokens of %d",
                self.agent, self.name, limit, wire.MIN_THINKING_BUDGET)  # fmt: skip

    def _parse_answer(self, data: Any) -> ChatResponse:
        return parse_message(data, provider=self.name, model=self.model)

    def _stream_decoder(self) -> AnthropicStream:
        return AnthropicStream(self.name)

    def _map_error(self, status: int, headers: Headers, body: bytes) -> ProviderError:
        retry_after = retry_after_seconds(headers)
        data = body_json(body)
        error = data.get("error") if isinstance(data, dict) else None
        if not isinstance(error, dict):
            return error_for_status(
                status, body_excerpt(body), provider=self.name, retry_after=retry_after
            )
        return error_from_body(
            error, data, status=status, retry_after=retry_after, provider=self.name
        )


def _thinking_for_effort(payload: dict[str, Any], request: ChatRequest) -> None:
    """Extended thinking for a request's ``reasoning_effort``: ``budget_tokens`` from the
    effort (``ReasoningEffort.budget_tokens``; ``none`` thinks not), with room for the answer
    above it when the client set no ``max_tokens``. With thinking on, the API takes neither
    a forced tool (JSON mode is one: that call thinks not), a ``temperature`` other than 1,
    nor a ``top_p`` under 0.95 (those are left out: the effort asked for a reasoning model,
    and OpenAI's take no sampling settings either)."""
    effort = request.reasoning_effort
    if effort is None or effort is ReasoningEffort.NONE:
        return
    if payload.get("tool_choice", {}).get("type") in ("any", "tool"):
        return
    budget = effort.budget_tokens
    if request.max_tokens is None:
        payload["max_tokens"] = budget + DEFAULT_MAX_TOKENS
    payload["thinking"] = {"type": "enabled", "budget_tokens": budget}
    if payload.get("temperature", 1) != 1:
        del payload["temperature"]
    if payload.get("top_p", 1) < MIN_THINKING_TOP_P:
        del payload["top_p"]


def _content(message: Message) -> list[dict[str, Any]]:
    if isinstance(message.content, str):
        return [{"type": "text", "text": message.content}] if message.content else []
    blocks: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, ImagePart):
            inline = part.data_url_parts()
            if inline is not None:
                media_type, data = inline
                source: dict[str, Any] = {
                    "type": "base64", "media_type": media_type,
                    "data": base64.b64encode(data).decode(),
                }  # fmt: skip
            else:
                source = {"type": "url", "url": part.url}
            blocks.append({"type": "image", "source": source})
        elif part.text:
            blocks.append({"type": "text", "text": part.text})
    return blocks


def _reasoning(message: Message, provider: str) -> list[dict[str, Any]]:
    """An assistant turn's thinking blocks, if they are this provider's own: a signature
    verifies only where it was made, and a turn without its thinking is valid anywhere.
    Reasoning of unknown origin (a client's own history) is sent as it came."""
    blocks: list[dict[str, Any]] = []
    for item in message.reasoning:
        if item.provider not in (provider, None):
            continue
        if item.redacted is not None:
            blocks.append({"type": "redacted_thinking", "data": item.redacted})
        elif item.signature:
            blocks.append({"type": "thinking", "thinking": item.text,
                           "signature": item.signature})  # fmt: skip
    return blocks


def _unthought_tool_turn(turns: list[dict[str, Any]]) -> bool:
    """Whether the last assistant turn calls tools without starting with thinking."""
    last = next((t["content"] for t in reversed(turns) if t["role"] == "assistant"), None)
    if not last or not any(b["type"] == "tool_use" for b in last):
        return False
    return last[0]["type"] not in ("thinking", "redacted_thinking")


def _messages(messages: list[Message], *, provider: str) -> list[dict[str, Any]]:
    """Turns in Anthropic's shape: tool results (and what follows them) in one user turn."""
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role is Role.SYSTEM:
            continue
        if message.role is Role.TOOL:
            role = "user"
            # A result with images (a screenshot) keeps them: tool_result takes image blocks.
            content = _content(message) if message.images else message.text
            blocks = [{"type": "tool_result", "tool_use_id": tool_ids.fit(message.tool_call_id
                                                                          or ""),
                       "content": content}]  # fmt: skip
        elif message.role is Role.ASSISTANT:
            role = "assistant"
            blocks = _reasoning(message, provider) + _content(message) + [
                {"type": "tool_use", "id": tool_ids.fit(c.id), "name": c.name,
                 "input": tool_arguments.as_object(c.arguments)}
                for c in message.tool_calls
            ]  # fmt: skip
        else:
            role, blocks = "user", _content(message)
        if not blocks:
            continue  # the API refuses empty turns; an empty message says nothing anyway
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return turns


def _tools(payload: dict[str, Any], request: ChatRequest) -> None:
    """``tools`` and ``tool_choice``, with structured output as a forced tool."""
    tools = [
        {"name": t.name, "input_schema": t.parameters, **({"description": t.description}
                                                          if t.description else {})}
        for t in request.tools
    ]  # fmt: skip
    choice: dict[str, Any] | None = None
    if request.tool_choice is not None:
        mode = request.tool_choice.mode
        if request.tool_choice.name:
            choice = {"type": "tool", "name": request.tool_choice.name}
        elif mode is ToolChoiceMode.REQUIRED:
            choice = {"type": "any"}
        elif mode is ToolChoiceMode.NONE:
            choice = {"type": "none"}
        else:
            choice = {"type": "auto"}
    fmt = request.response_format
    if fmt is not None and fmt.type is not ResponseFormatType.TEXT:
        schema = fmt.schema if fmt.type is ResponseFormatType.JSON_SCHEMA else None
        tools.append({
            "name": JSON_TOOL,
            "description": "Give the answer by calling this tool with it as the input.",
            # Anthropic wants an object schema; OpenAI's structured outputs do too.
            "input_schema": {"type": "object", **(schema or {})},
        })  # fmt: skip
        if not request.tools:
            choice = {"type": "tool", "name": JSON_TOOL}
    if request.parallel_tool_calls is False and choice is not None and choice["type"] != "none":
        choice["disable_parallel_tool_use"] = True
    elif request.parallel_tool_calls is False and tools and choice is None:
        choice = {"type": "auto", "disable_parallel_tool_use": True}
    if tools:
        payload["tools"] = tools
        if choice is not None:  # the API refuses a tool_choice without tools
            payload["tool_choice"] = choice
