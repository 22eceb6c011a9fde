"""A fake of Anthropic's Messages API: ``POST /v1/messages`` (plain and SSE) and ``GET /v1/models``.

It checks what the real API checks first — the key (``x-api-key``, or ``Authorization:
Bearer``, which Anthropic's SDK sends for its ``auth_token`` and, from 2.x, for its
``api_key`` too), ``anthropic-version``, the body's ``model``, ``max_tokens`` and
``messages`` — and answers in the documented shapes, including the stream's event sequence
and the ``{"type": "error", "error": {...}}`` error body.

With ``thinking`` enabled, an answer starts with a ``thinking`` block signed by this fake
alone (an HMAC under a key of its own), and, as the real API does, a request is refused
whose thinking blocks bear a signature this fake did not make, or whose final assistant
turn calls tools without starting with its thinking block, or whose ``budget_tokens`` is
below 1024 or not below ``max_tokens`` (``wire.anthropic.thinking_problem``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from llmagents.testing.fake_providers.behaviour import (
    Answer,
    FakeTool,
    ReceivedCall,
    count_tokens,
)
from llmagents.testing.fake_providers.faults import Fault
from llmagents.testing.fake_providers.server import FakeProviderServer, Reject
from llmagents.wire import anthropic as wire
from llmagents.wire import extras

_ERROR_TYPES = {
    400: ("invalid_request_error", "There was an issue with the format of your request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use this resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}
IMAGE_TOKENS = 85


class FakeAnthropic(FakeProviderServer):
    """Speaks the Messages API on loopback; ``base_url`` is the server root."""

    protocol = "anthropic"
    default_models = ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1")
    overload_status = 529
    tool_id_prefix = "toolu_fake"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._thinking_key = secrets.token_bytes(16)
        """Signs this fake's thinking blocks: no other fake (provider) can verify them."""

    def _routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/messages", self._handle_chat),
            web.get("/v1/models", self._list_models),
        ]

    def _check_auth(self, request: web.Request) -> None:
        key = request.headers.get("x-api-key")
        if key is None:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            key = token.strip() if scheme.lower() == "bearer" else None
        if self.api_key is not None and key is None:
            raise Reject(401, "x-api-key header is required")
        if self.api_key is not None and key != self.api_key:
            raise Reject(401, "invalid x-api-key")
        if "anthropic-version" not in request.headers:
            raise Reject(400, "anthropic-version: header is required")

    async def _parse(self, request: web.Request) -> ReceivedCall:
        self._check_auth(request)
        try:
            body = wire.MessagesRequest.model_validate_json(await request.read())
        except ValidationError as invalid:
            error = invalid.errors(include_url=False)[0]
            where = ".".join(str(p) for p in error["loc"])
            raise Reject(400, f"{where}: {error['msg']}" if where else error["msg"]) from None
        if body.model not in self.models:
            raise Reject(404, f"model: {body.model}")
        if body.tool_choice is not None and not body.tools:
            raise Reject(400, "tool_choice: tool_choice may only be specified while providing "
                              "tools")  # fmt: skip
        call = _chat_call(body)
        thinking = extras(body).get("thinking")
        call.reasoning_asked = {"thinking": thinking} if thinking is not None else None
        call.thinking = isinstance(thinking, dict) and thinking.get("type") == "enabled"
        self._check_thinking(body, enabled=call.thinking)
        call.reasoning_returned = sum(
            isinstance(b, wire.ThinkingBlock | wire.RedactedThinkingBlock)
            for m in body.messages if m.role == "assistant" and not isinstance(m.content, str)
            for b in m.content
        )  # fmt: skip
        return call

    def sign(self, thinking: str) -> str:
        """The signature this fake gives a thinking block's text."""
        digest = hmac.new(self._thinking_key, thinking.encode(), hashlib.sha256).digest()
        return base64.b64encode(b"fake-signature:" + digest).decode()

    def _check_thinking(self, body: wire.MessagesRequest, *, enabled: bool) -> None:
        if enabled:
            _check_thinking_settings(body)
        last_assistant: list[Any] | None = None
        for i, message in enumerate(body.messages):
            if message.role != "assistant" or isinstance(message.content, str):
                continue
            last_assistant = message.content
            for j, block in enumerate(message.content):
                if isinstance(block, wire.ThinkingBlock) and not hmac.compare_digest(
                    block.signature or "", self.sign(block.thinking)
                ):
                    raise Reject(400, f"messages.{i}.content.{j}: Invalid `signature` in "
                                 "`thinking` block")  # fmt: skip
        if (
            enabled
            and last_assistant
            and any(isinstance(b, wire.ToolUseBlock) for b in last_assistant)
            and not isinstance(last_assistant[0], wire.ThinkingBlock | wire.RedactedThinkingBlock)
        ):
            found = last_assistant[0].type
            raise Reject(400, f"messages: Expected `thinking` or `redacted_thinking`, but found "
                         f"`{found}`. When `thinking` is enabled, a final `assistant` message "
                         "must start with a thinking block.")  # fmt: skip

    def _thought(self, call: ReceivedCall) -> str:
        return "Let me think about: " + (call.prompt[:60] or "the results")

    async def _list_models(self, request: web.Request) -> web.Response:
        try:
            self._check_auth(request)
        except Reject as rejected:
            return self._error_response(rejected.status, rejected.message)
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
            for m in self.models
        ]
        return web.json_response(
            {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
        )

    def _error_body(
        self, status: int, message: str | None, *, reason: str | None, fault: Fault | None
    ) -> Any:
        kind, default = _ERROR_TYPES.get(status, _ERROR_TYPES[500 if status >= 500 else 400])
        body = wire.ErrorBody(error=wire.ErrorDetail(type=kind, message=message or default),
                              request_id=f"req_fake{self._next_id():06d}")  # fmt: skip
        return body.model_dump()

    def _message(
        self, call: ReceivedCall, answer: Answer, *, started: bool = False
    ) -> wire.Message:
        content: list[Any] = []
        if call.thinking and not started:
            thought = self._thought(call)
            content.append(wire.AnswerThinking(type="thinking", thinking=thought,
                                               signature=self.sign(thought)))  # fmt: skip
        if answer.pieces and not started:
            content.append(wire.AnswerText(type="text", text=answer.text))
        if not started:
            content += [
                wire.AnswerToolUse(type="tool_use", id=c.id, name=c.name, input=c.arguments)
                for c in answer.tool_calls
            ]
        return wire.Message(
            id=f"msg_fake{self._next_id():06d}",
            model=call.model,
            content=content,
            stop_reason=None if started else _stop_reason(answer),
            usage=wire.Usage(input_tokens=call.input_tokens,
                             output_tokens=1 if started else answer.output_tokens),
        )  # fmt: skip

    def _answer_body(self, call: ReceivedCall, answer: Answer) -> Any:
        return self._message(call, answer).model_dump(exclude_none=True)

    def _sse(self, event: str, data: str) -> bytes:
        return f"event: {event}\ndata: {data}\n\n".encode()

    def _stream_events(self, call: ReceivedCall, answer: Answer) -> list[tuple[bytes, bool]]:
        start = wire.MessageStart(message=self._message(call, answer, started=True))
        events = [(wire.sse(start), False)]
        index = 0
        if call.thinking:
            thought = self._thought(call)
            half = len(thought) // 2
            events.append((wire.sse_json("content_block_start", {"type": "content_block_start",
                           "index": 0, "content_block": {"type": "thinking", "thinking": "",
                                                         "signature": ""}}), False))  # fmt: skip
            events += [
                (wire.sse(wire.ContentBlockDelta(index=0, delta=wire.ThinkingDelta(thinking=p))),
                 True)
                for p in (thought[:half], thought[half:])
            ]  # fmt: skip
            signature = wire.SignatureDelta(signature=self.sign(thought))
            events.append((wire.sse(wire.ContentBlockDelta(index=0, delta=signature)), False))
            events.append((wire.sse(wire.ContentBlockStop(index=0)), False))
            index = 1
        if answer.pieces:
            events += [
                (wire.sse_json("content_block_start", {"type": "content_block_start",
                 "index": index, "content_block": {"type": "text", "text": ""}}), False),
                (wire.sse(wire.Ping()), False),
            ]  # fmt: skip
            events += [
                (wire.sse(wire.ContentBlockDelta(index=index, delta=wire.TextDelta(text=p))),
                 True)
                for p in answer.pieces
            ]  # fmt: skip
            events.append((wire.sse(wire.ContentBlockStop(index=index)), False))
            index += 1
        for call_index, tool_call in enumerate(answer.tool_calls, start=index):
            opening = {"type": "content_block_start", "index": call_index, "content_block":
                       {"type": "tool_use", "id": tool_call.id, "name": tool_call.name,
                        "input": {}}}  # fmt: skip
            events.append((wire.sse_json("content_block_start", opening), False))
            arguments = tool_call.arguments_json
            half = len(arguments) // 2
            for piece in (arguments[:half], arguments[half:]):
                piece_delta = wire.InputJsonDelta(partial_json=piece)
                event = wire.ContentBlockDelta(index=call_index, delta=piece_delta)
                events.append((wire.sse(event), True))
            events.append((wire.sse(wire.ContentBlockStop(index=call_index)), False))
        delta = wire.MessageDelta(
            delta=wire.MessageDeltaBody(stop_reason=_stop_reason(answer)),
            usage=wire.DeltaUsage(output_tokens=answer.output_tokens),
        )
        events += [(wire.sse(delta), False), (wire.sse(wire.MessageStop()), False)]
        return events

    def _stream_error_event(self) -> bytes:
        error = wire.ErrorBody(error=wire.ErrorDetail(type="overloaded_error",
                                                      message="Overloaded"))  # fmt: skip
        return wire.sse(error)


def _stop_reason(answer: Answer) -> str:
    if answer.tool_calls:
        return "tool_use"
    return "max_tokens" if answer.hit_max_tokens else "end_turn"


def _blocks_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for block in content or ():
        if isinstance(block, wire.TextBlock):
            texts.append(block.text)
        elif isinstance(block, wire.ToolUseBlock):
            texts.append(block.name + json.dumps(block.input))
        elif isinstance(block, wire.ToolResultBlock):
            texts.append(_blocks_text(block.content or ""))
    return "".join(texts)


def _image_type(block: wire.ImageBlock) -> str:
    source = block.source
    if isinstance(source, wire.UrlSource):
        return "url"
    try:
        base64.b64decode(source.data, validate=True)
    except (binascii.Error, ValueError):
        raise Reject(400, "image.source.base64.data: invalid base64 data") from None
    return source.media_type


def _chat_call(body: wire.MessagesRequest) -> ReceivedCall:
    texts = [_blocks_text(body.system)] if body.system else []
    prompt, images, results = "", [], None
    called: set[str] = set()
    for i, message in enumerate(body.messages):
        texts.append(_blocks_text(message.content))
        blocks = message.content if isinstance(message.content, list) else []
        if message.role != "user":
            results = None
            called = {b.id for b in blocks if isinstance(b, wire.ToolUseBlock)}
            for block in blocks:
                if isinstance(block, wire.ToolUseBlock) and not re.fullmatch(
                    wire.TOOL_USE_ID_CHARS, block.id
                ):
                    raise Reject(400, f"messages.{i}.content.tool_use.id: String should match "
                                 f"pattern '{wire.TOOL_USE_ID}'")  # fmt: skip
            continue
        tool_results = [b for b in blocks if isinstance(b, wire.ToolResultBlock)]
        for block in tool_results:
            if block.tool_use_id not in called:
                raise Reject(400, f"messages.{i}.content: unexpected `tool_use_id` found in "
                             "`tool_result` blocks: each `tool_result` block must have a "
                             "corresponding `tool_use` block in the previous message.")  # fmt: skip
        if tool_results:
            results = [_blocks_text(b.content or "") for b in tool_results]
            images = [_image_type(c) for b in tool_results if isinstance(b.content, list)
                      for c in b.content if isinstance(c, wire.ImageBlock)]  # fmt: skip
        else:
            results = None
            prompt = _blocks_text(message.content)
            images = [_image_type(b) for b in blocks if isinstance(b, wire.ImageBlock)]
    tools = [FakeTool(t.name, t.input_schema) for t in body.tools or ()]
    texts += [t.name + json.dumps(t.parameters) for t in tools]
    choice = body.tool_choice
    mode = {"auto": "auto", "any": "required", "tool": "required", "none": "none"}
    return ReceivedCall(
        model=body.model,
        prompt=prompt,
        input_tokens=sum(count_tokens(t) for t in texts) + IMAGE_TOKENS * len(images),
        max_tokens=body.max_tokens,
        stream=bool(body.stream),
        tools=tools,
        tool_choice=mode[choice.type] if choice is not None else "auto",
        forced_tool=choice.name if isinstance(choice, wire.ToolChoiceTool) else None,
        parallel=not (choice is not None and getattr(choice, "disable_parallel_tool_use", False)),
        tool_results=results,
        images=images,
    )


def _check_thinking_settings(body: wire.MessagesRequest) -> None:
    """What the API refuses beside extended thinking: sampling settings other than its own
    and a forced tool."""
    if body.temperature is not None and body.temperature != 1:
        raise Reject(400, "`temperature` may only be set to 1 when thinking is enabled. "
                     "Please consult our documentation at https://docs.claude.com/en/docs/"
                     "build-with-claude/extended-thinking#important-considerations")  # fmt: skip
    if body.top_p is not None and body.top_p < 0.95:
        raise Reject(400, "`top_p` must be greater than or equal to 0.95 or unset when "
                     "thinking is enabled.")  # fmt: skip
    choice = body.tool_choice
    if choice is not None and choice.type in ("any", "tool"):
        raise Reject(400, "Thinking may not be enabled when tool_choice forces tool use.")
