"""A fake of OpenAI's chat completions: ``POST /v1/chat/completions`` (plain and SSE) and
``GET /v1/models``; ``base_url`` ends in ``/v1`` as clients configure it.

Errors use OpenAI's ``{"error": {"message", "type", "param", "code"}}`` with its codes
(``invalid_api_key``, ``model_not_found``, ``rate_limit_exceeded``); a stream honours
``stream_options.include_usage`` with the usage-only chunk before ``data: [DONE]``. With
``api_key=None`` it accepts calls without a key, like vLLM, Ollama or the ONNX sidecar.

Asked to reason (``reasoning_effort``), it shows its reasoning as ``reasoning_content``, as
vLLM and DeepSeek do. With ``openrouter_reasoning`` it is OpenRouter serving a model that
reasons on every call, shown as ``reasoning`` and ``reasoning_details``: ``"openai"`` a
summary and an encrypted block (OpenAI's models), ``"anthropic"`` a text block with its
signature (Claude's thinking), streamed in pieces with the signature or encrypted block last.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from aiohttp import web
from pydantic import ValidationError

from llmagents.testing.fake_providers import embeddings
from llmagents.testing.fake_providers.behaviour import (
    Answer,
    FakeTool,
    ReceivedCall,
    count_tokens,
)
from llmagents.testing.fake_providers.faults import Fault
from llmagents.testing.fake_providers.server import FakeProviderServer, Reject
from llmagents.wire import extras
from llmagents.wire import openai_chat as wire

_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", None, "You are not allowed to access this resource."),
    404: ("invalid_request_error", None, "Not found."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}
_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)
MAX_TOOL_CALL_ID = 40
IMAGE_TOKENS = 85
"""What OpenAI charges for a low-detail image; the fakes count every image so."""


class FakeOpenAI(FakeProviderServer):
    """Speaks OpenAI-compatible chat completions on loopback."""

    protocol = "openai"
    default_models = ("gpt-4o-mini", "gpt-4.1", "local-model")
    api_prefix = "/v1"
    tool_id_prefix = "call_"

    def __init__(
        self, *, openrouter_reasoning: Literal["openai", "anthropic"] | None = None, **options: Any
    ) -> None:
        super().__init__(**options)
        self.openrouter_reasoning = openrouter_reasoning
        self._thoughts: set[str] = set()
        """The reasoning texts this fake gave (its fixed signature covers only these)."""

    def _routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/chat/completions", self._handle_chat),
            web.get("/v1/models", self._list_models),
            embeddings.openai_route(self),
        ]

    def _check_auth(self, request: web.Request) -> None:
        if self.api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if not header or scheme.lower() != "bearer":
            raise Reject(401, _NO_KEY)
        if key.strip() != self.api_key:
            raise Reject(401, _ERRORS[401][2], reason="invalid_api_key")

    async def _parse(self, request: web.Request) -> ReceivedCall:
        self._check_auth(request)
        try:
            body = wire.ChatCompletionRequest.model_validate_json(await request.read())
        except ValidationError as invalid:
            error = invalid.errors(include_url=False)[0]
            where = ".".join(str(p) for p in error["loc"])
            raise Reject(400, f"Invalid value for '{where}': {error['msg']}") from None
        if body.model not in self.models:
            raise Reject(
                404,
                f"The model `{body.model}` does not exist or you do not have access to it.",
                reason="model_not_found",
            )
        if body.tool_choice is not None and not body.tools:
            raise Reject(400, "Invalid value for 'tool_choice': 'tool_choice' is only allowed "
                              "when 'tools' are specified.")  # fmt: skip
        call = chat_call(body)
        call.reasoning_returned = self._check_returned_reasoning(body)
        # A reasoning model asked to reason (vLLM with a reasoning parser, DeepSeek's
        # reasoner): its answer shows the reasoning as reasoning_content.
        router = extras(body).get("reasoning")
        call.reasoning_asked = {
            name: value
            for name, value in (("reasoning_effort", body.reasoning_effort), ("reasoning", router))
            if value is not None
        }
        call.thinking = (
            body.reasoning_effort not in (None, "none") or self.openrouter_reasoning is not None
        )
        return call

    def _check_returned_reasoning(self, body: wire.ChatCompletionRequest) -> int:
        """As the servers do: OpenAI refuses ``reasoning_details`` in a message (it takes no
        field it does not know); OpenRouter takes back the blocks it gave, as it gave them,
        and, serving Claude, refuses a final tool-calling turn without its signed thinking
        (Anthropic's rule when thinking is on). Returns how many blocks came back."""
        returned, last = 0, None
        for i, message in enumerate(body.messages):
            if not isinstance(message, wire.AssistantMessage):
                continue
            details = extras(message).get("reasoning_details")
            last = (message, details)
            if details is None:
                continue
            if self.openrouter_reasoning is None:
                raise Reject(400, f"Invalid 'messages[{i}]': Unrecognized message field: "
                             "'reasoning_details'.")  # fmt: skip
            for detail in details if isinstance(details, list) else [details]:
                if detail not in self._returnable():
                    raise Reject(400, f"messages[{i}].reasoning_details: a block this "
                                 f"provider did not produce: {json.dumps(detail)[:200]}")  # fmt: skip
                returned += 1
        if self.openrouter_reasoning == "anthropic" and last is not None:
            message, details = last
            if message.tool_calls and not details:
                raise Reject(400, "messages: Expected `thinking` or `redacted_thinking`, but "
                             "found `tool_use`. When `thinking` is enabled, a final "
                             "`assistant` message must start with a thinking block.")  # fmt: skip
        return returned

    def _thought(self, call: ReceivedCall) -> str | None:
        thought = _thought_of(call)
        if thought is not None:
            self._thoughts.add(thought)
        return thought

    def _returnable(self) -> list[dict[str, Any]]:
        """The blocks of reasoning this fake gives, as a client sends them back whole."""
        if self.openrouter_reasoning == "anthropic":
            return [{"type": "reasoning.text", "text": text, "signature": OPENROUTER_SIGNATURE,
                     "format": "anthropic-claude-v1", "index": 0}
                    for text in self._thoughts]  # fmt: skip
        return [{"type": "reasoning.encrypted", "data": OPENROUTER_ENCRYPTED,
                 "format": "openai-responses-v1", "index": 0}]  # fmt: skip

    def _details(self, thought: str, *, end: bool) -> list[dict[str, Any]]:
        """OpenRouter's ``reasoning_details`` for ``thought`` (a whole block, or a piece),
        with the block's signature or encrypted data when ``end``."""
        if self.openrouter_reasoning == "anthropic":
            detail = {"type": "reasoning.text", "text": thought, "format": "anthropic-claude-v1",
                      "index": 0}  # fmt: skip
            if end:
                detail["signature"] = OPENROUTER_SIGNATURE
            return [detail]
        form = "openai-responses-v1"
        details = [{"type": "reasoning.summary", "summary": thought, "format": form, "index": 0}]
        if end:
            details.append({"type": "reasoning.encrypted", "data": OPENROUTER_ENCRYPTED, "format": form,
                            "index": 0})  # fmt: skip
        return details if thought else details[1:]

    def _reasoning_fields(self, thought: str | None, *, end: bool = True) -> dict[str, Any]:
        if thought is None:
            return {}
        if self.openrouter_reasoning is None:
            return {"reasoning_content": thought}
        return {"reasoning": thought or None,
                "reasoning_details": self._details(thought, end=end)}  # fmt: skip

    async def _list_models(self, request: web.Request) -> web.Response:
        try:
            self._check_auth(request)
        except Reject as rejected:
            return self._error_response(rejected.status, rejected.message, reason=rejected.reason)
        listing = wire.ModelList(
            data=[wire.ModelCard(id=m, created=1700000000, owned_by="fake") for m in self.models]
        )
        return web.json_response(text=listing.model_dump_json())

    def _error_body(
        self, status: int, message: str | None, *, reason: str | None, fault: Fault | None
    ) -> Any:
        kind, code, default = _ERRORS.get(status, _ERRORS[500 if status >= 500 else 400])
        return wire.error_body(message or default, kind=kind, code=reason or code)

    def _answer_body(self, call: ReceivedCall, answer: Answer) -> Any:
        calls = [
            wire.AnswerToolCall(id=c.id, function=wire.AnswerFunctionCall(
                name=c.name, arguments=c.arguments_json))
            for c in answer.tool_calls
        ]  # fmt: skip
        message = wire.AnswerMessage(content=answer.text if not calls else None,
                                     tool_calls=calls or None,
                                     **self._reasoning_fields(self._thought(call)))  # fmt: skip
        completion = wire.ChatCompletion(
            id=f"chatcmpl-fake{self._next_id():06d}",
            created=int(time.time()),
            model=call.model,
            choices=[wire.Choice(message=message, finish_reason=_finish(answer))],
            usage=_usage(call, answer),
        )
        return json.loads(completion.model_dump_json())

    def _sse(self, event: str, data: str) -> bytes:
        return f"data: {data}\n\n".encode()

    def _stream_events(self, call: ReceivedCall, answer: Answer) -> list[tuple[bytes, bool]]:
        cid = f"chatcmpl-fake{self._next_id():06d}"
        created = int(time.time())

        def event(delta: wire.Delta | None = None, finish: str | None = None,
                  usage: wire.CompletionUsage | None = None) -> bytes:  # fmt: skip
            choices = [] if delta is None else [wire.ChunkChoice(delta=delta, finish_reason=finish)]
            chunk = wire.ChatCompletionChunk(id=cid, created=created, model=call.model,
                                             choices=choices, usage=usage)  # fmt: skip
            exclude = None if call.include_usage else {"usage"}
            return self._sse("", chunk.model_dump_json(exclude=exclude))

        events = [(event(wire.Delta(role="assistant", content="")), False)]
        thought = self._thought(call)
        if thought:  # reasoning deltas before the content
            half = len(thought) // 2
            events += [(event(wire.Delta(**self._reasoning_fields(p, end=False))), True)
                       for p in (thought[:half], thought[half:])]  # fmt: skip
            if self.openrouter_reasoning is not None:  # the block's signature or data
                events.append((event(wire.Delta(**self._reasoning_fields(""))), False))
        events += [(event(wire.Delta(content=p)), True) for p in answer.pieces]
        for index, tool_call in enumerate(answer.tool_calls):
            arguments = tool_call.arguments_json
            half = len(arguments) // 2
            # The id and name first, then the arguments in pieces, as OpenAI streams them.
            for piece, head in ((arguments[:half], True), (arguments[half:], False)):
                delta = wire.ToolCallDelta(
                    index=index, id=tool_call.id if head else None,
                    type="function" if head else None,
                    function=wire.FunctionDelta(name=tool_call.name if head else None,
                                                arguments=piece),
                )  # fmt: skip
                events.append((event(wire.Delta(tool_calls=[delta])), True))
        events.append((event(wire.Delta(), _finish(answer)), False))
        if call.include_usage:
            events.append((event(usage=_usage(call, answer)), False))
        events.append((self._sse("", "[DONE]"), False))
        return events

    def _stream_error_event(self) -> bytes:
        _, _, message = _ERRORS[503]
        return self._sse("", json.dumps(wire.error_body(message, kind="server_error")))


OPENROUTER_SIGNATURE = "RXVGYWtlU2lnbmF0dXJlT2ZPcGVuUm91dGVy"
"""The signature OpenRouter passes on with a Claude thinking block (opaque base64)."""
OPENROUTER_ENCRYPTED = "gAAAAABfakeEncryptedReasoningOfOpenRouter"
"""OpenAI's encrypted reasoning, as OpenRouter passes it on (opaque)."""


def _thought_of(call: ReceivedCall) -> str | None:
    """What a reasoning model served by vLLM shows of its reasoning, when asked to reason."""
    return "Let me think about: " + (call.prompt[:60] or "the results") if call.thinking else None


def _finish(answer: Answer) -> str:
    if answer.tool_calls:
        return "tool_calls"
    return "length" if answer.hit_max_tokens else "stop"


def _usage(call: ReceivedCall, answer: Answer) -> wire.CompletionUsage:
    return wire.CompletionUsage(
        prompt_tokens=call.input_tokens,
        completion_tokens=answer.output_tokens,
        total_tokens=call.input_tokens + answer.output_tokens,
    )


def chat_call(body: wire.ChatCompletionRequest) -> ReceivedCall:
    """What the fake acts on, from a valid request (also the ONNX sidecar's reading)."""
    texts: list[str] = []
    prompt, images, results = "", [], None
    called: set[str] = set()
    for i, message in enumerate(body.messages):
        if isinstance(message, wire.ToolMessage):
            # As OpenAI checks: a tool message answers a call made earlier in the history.
            if message.tool_call_id not in called:
                raise Reject(400, f"Invalid parameter: messages[{i}] with role 'tool' must be a "
                             "response to a preceeding message with 'tool_calls'.")  # fmt: skip
            results = (results or []) + [wire.content_text(message.content)]
            texts.append(wire.content_text(message.content))
            continue
        results = None
        texts.append(wire.content_text(message.content))
        if isinstance(message, wire.AssistantMessage):
            for c in message.tool_calls or ():
                if len(c.id) > MAX_TOOL_CALL_ID:
                    raise Reject(400, f"Invalid 'messages[{i}].tool_calls[].id': string too "
                                 f"long. Expected a string with maximum length "
                                 f"{MAX_TOOL_CALL_ID}.")  # fmt: skip
                called.add(c.id)
                texts.append(c.function.name + c.function.arguments)
        if isinstance(message, wire.UserMessage):
            prompt = wire.content_text(message.content)
            images = [
                _media_type(p.image_url.url) for p in message.content
                if isinstance(p, wire.ImagePart)
            ] if isinstance(message.content, list) else []  # fmt: skip
    tools = [FakeTool(t.function.name, t.function.parameters or {}) for t in body.tools or ()]
    texts += [t.name + json.dumps(t.parameters) for t in tools]
    choice = body.tool_choice
    fmt = body.response_format
    schema = None
    if isinstance(fmt, wire.JsonSchemaFormat):
        schema = fmt.json_schema.schema_ or {}
    elif isinstance(fmt, wire.JsonObjectFormat):
        schema = {}
    return ReceivedCall(
        model=body.model,
        prompt=prompt,
        input_tokens=sum(count_tokens(t) for t in texts) + IMAGE_TOKENS * len(images),
        max_tokens=body.output_limit,
        stream=bool(body.stream),
        include_usage=body.include_usage,
        tools=tools,
        tool_choice="auto" if choice is None else choice if isinstance(choice, str) else "required",
        forced_tool=choice.function.name if isinstance(choice, wire.NamedToolChoice) else None,
        parallel=body.parallel_tool_calls is not False,
        tool_results=results,
        schema=schema,
        images=images,
    )


def _media_type(url: str) -> str:
    if url.startswith("data:"):
        return url[5:].split(";", 1)[0].split(",", 1)[0] or "data"
    return "url"
