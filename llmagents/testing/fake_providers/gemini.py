"""A fake of the Gemini API: ``models/{model}:generateContent``, ``:streamGenerateContent?alt=sse``
and the model listing, under ``/v1beta``.

Like the real service it takes the key from ``x-goog-api-key`` (or ``?key=``), answers a
missing key with 403 PERMISSION_DENIED and a wrong one with 400 INVALID_ARGUMENT whose details
say ``API_KEY_INVALID``, and puts the wait of a 429 into a ``RetryInfo`` detail.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from typing import Any

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
from llmagents.wire import gemini as wire

_STATUSES = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "Request had invalid authentication credentials."),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    500: ("INTERNAL", "An internal error has occurred. Please retry or report it."),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}
_NO_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
_BAD_KEY = "API key not valid. Please pass a valid API key."


class FakeGemini(FakeProviderServer):
    """Speaks the Generative Language API on loopback; ``base_url`` is the server root."""

    protocol = "gemini"
    default_models = ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash",
                      "gemini-3-pro-preview")  # fmt: skip

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.signatures: set[str] = set()
        """Thought signatures this fake gave out; Gemini 3 models check the history's."""

    def _routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1beta/models/{target}", self._handle_model_call),
            web.get("/v1beta/models", self._list_models),
        ]

    async def _handle_model_call(self, request: web.Request) -> web.StreamResponse:
        """Chat (generateContent) or embeddings (batchEmbedContents, embedContent)."""
        if request.match_info["target"].partition(":")[2] in embeddings.GEMINI_METHODS:
            return await embeddings.serve_gemini(self, request)
        return await self._handle_chat(request)

    def _check_auth(self, request: web.Request) -> None:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if self.api_key is None:
            return
        if key is None:
            raise Reject(403, _NO_KEY)
        if key != self.api_key:
            raise Reject(400, _BAD_KEY, reason="API_KEY_INVALID")

    async def _parse(self, request: web.Request) -> ReceivedCall:
        self._check_auth(request)
        model, _, method = request.match_info["target"].partition(":")
        if method not in ("generateContent", "streamGenerateContent"):
            raise Reject(404, f"Method {method or '(none)'} is not found.")
        stream = method == "streamGenerateContent"
        if stream and request.query.get("alt") != "sse":
            raise Reject(400, "This fake streams only with alt=sse.")
        try:
            body = wire.GenerateContentRequest.model_validate_json(await request.read())
        except ValidationError as invalid:
            error = invalid.errors(include_url=False)[0]
            where = ".".join(str(p) for p in error["loc"])
            raise Reject(400, f"* GenerateContentRequest.{where}: {error['msg']}\n") from None
        if model not in self.models:
            raise Reject(
                404,
                f"models/{model} is not found for API version v1beta, or is not supported for "
                f"{method}. Call ListModels to see the list of available models and their "
                "supported methods.",
            )
        if model.startswith("gemini-3"):
            self._check_signatures(body)
        call = _chat_call(body, model, stream)
        thinking = body.generationConfig.thinkingConfig if body.generationConfig else None
        if thinking is not None:
            _check_thinking(thinking, model)
            call.reasoning_asked = {"thinkingConfig": thinking.model_dump(exclude_none=True)}
            call.thinking = bool(thinking.includeThoughts) and thinking.thinkingBudget != 0
        return call

    def _check_signatures(self, body: wire.GenerateContentRequest) -> None:
        """As Gemini 3 does: the first function call of each model turn carries the
        signature it was given (or Google's documented stand-in for foreign histories)."""
        for i, content in enumerate(body.contents):
            calls = [p for p in content.parts if p.functionCall is not None]
            if content.role != "model" or not calls:
                continue
            signature = calls[0].thoughtSignature
            if signature != wire.SKIP_SIGNATURE and signature not in self.signatures:
                raise Reject(400, f"Function call is missing a thought_signature in "
                             f"functionCall parts. contents[{i}].parts: the first "
                             "functionCall of a turn needs its thoughtSignature.")  # fmt: skip

    async def _list_models(self, request: web.Request) -> web.Response:
        try:
            self._check_auth(request)
        except Reject as rejected:
            return self._error_response(rejected.status, rejected.message, reason=rejected.reason)
        models = [
            {
                "name": f"models/{m}",
                "displayName": m,
                "supportedGenerationMethods": ["generateContent", "countTokens"],
            }
            for m in self.models
        ]
        return web.json_response({"models": models})

    def _error_headers(self, fault: Fault | None) -> dict[str, str]:
        # Google says how long to wait in the body (RetryInfo); a date only fits a header.
        if fault is not None and fault.retry_after_http_date:
            return super()._error_headers(fault)
        return {}

    def _error_body(
        self, status: int, message: str | None, *, reason: str | None, fault: Fault | None
    ) -> Any:
        name, default = _STATUSES.get(status, _STATUSES[500 if status >= 500 else 400])
        error: dict[str, Any] = {"code": status, "message": message or default, "status": name}
        details: list[dict[str, Any]] = []
        if reason is not None:
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": reason,
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
            )
        if fault is not None and fault.retry_after is not None and not fault.retry_after_http_date:
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": f"{fault.retry_after:g}s",
                }
            )
        if details:
            error["details"] = details
        return {"error": error}

    def _response(
        self, call: ReceivedCall, parts: list[wire.Part], *, finish: str | None,
        output_tokens: int | None,
    ) -> dict[str, Any]:  # fmt: skip
        candidate = wire.Candidate(content=wire.Content(role="model", parts=parts),
                                   finishReason=finish, index=0)  # fmt: skip
        thoughts = count_tokens(_thought(call)) if call.thinking and output_tokens else None
        usage = wire.UsageMetadata(
            promptTokenCount=call.input_tokens,
            candidatesTokenCount=output_tokens,
            thoughtsTokenCount=thoughts,
            totalTokenCount=call.input_tokens + (output_tokens or 0) + (thoughts or 0),
        )
        response = wire.GenerateContentResponse(
            candidates=[candidate], usageMetadata=usage, modelVersion=call.model,
            responseId=f"fake{self._next_id():06d}",
        )  # fmt: skip
        return response.model_dump(exclude_none=True)

    def _answer_body(self, call: ReceivedCall, answer: Answer) -> Any:
        finish = "MAX_TOKENS" if answer.hit_max_tokens else "STOP"
        parts = [wire.Part(text=_thought(call), thought=True)] if call.thinking else []
        parts += [wire.Part(text=answer.text)] if answer.pieces else []
        parts += self._call_parts(answer)
        return self._response(call, parts, finish=finish, output_tokens=answer.output_tokens)

    def _sse(self, event: str, data: str) -> bytes:
        return f"data: {data}\r\n\r\n".encode()

    def _stream_events(self, call: ReceivedCall, answer: Answer) -> list[tuple[bytes, bool]]:
        # Thoughts first, text word by word, then each function call whole, as Gemini
        # streams them.
        pieces = [[wire.Part(text=_thought(call), thought=True)]] if call.thinking else []
        pieces += [[wire.Part(text=p)] for p in answer.pieces]
        pieces += [[part] for part in self._call_parts(answer)]
        last = len(pieces) - 1
        finish = "MAX_TOKENS" if answer.hit_max_tokens else "STOP"
        events = []
        for i, parts in enumerate(pieces):
            body = self._response(
                call,
                parts,
                finish=finish if i == last else None,
                output_tokens=answer.output_tokens if i == last else None,
            )
            events.append((self._sse("", json.dumps(body)), True))
        return events

    def _call_parts(self, answer: Answer) -> list[wire.Part]:
        """The calls, the first one signed as Gemini signs a turn's first call."""
        parts = [
            wire.Part(functionCall=wire.FunctionCall(name=c.name, args=c.arguments))
            for c in answer.tool_calls
        ]
        if parts:
            signature = base64.b64encode(secrets.token_bytes(48)).decode()
            self.signatures.add(signature)
            parts[0].thoughtSignature = signature
        return parts

    def _stream_error_event(self) -> bytes:
        code, message = _STATUSES[503]
        error = {"error": {"code": 503, "message": message, "status": code}}
        return self._sse("", json.dumps(error))


def _thought(call: ReceivedCall) -> str:
    """The thought summary of a call asked to include thoughts."""
    return "Let me think about: " + (call.prompt[:60] or "the results")


def _check_thinking(thinking: wire.ThinkingConfig, model: str) -> None:
    """As the API checks ``thinkingConfig``: thinking models only, a level on Gemini 3 only,
    a budget within the model's range (-1: the model's choice)."""
    if not model.startswith(("gemini-2.5", "gemini-3")):
        raise Reject(400, "Thinking is not supported by this model.")
    if thinking.thinkingLevel is not None and not model.startswith("gemini-3"):
        raise Reject(400, "Thinking level is not supported for this model.")
    budget = thinking.thinkingBudget
    low, high = (128, 32768) if "-pro" in model else (0, 24576)
    if budget is not None and budget != -1 and not low <= budget <= high:
        raise Reject(400, f"The thinking budget {budget} is invalid. Please choose a value "
                     f"between {low} and {high}.")  # fmt: skip


def _parts_text(content: wire.Content) -> str:
    texts = []
    for part in content.parts:
        if part.text:
            texts.append(part.text)
        if part.functionCall is not None:
            texts.append(part.functionCall.name + json.dumps(part.functionCall.args))
        if part.functionResponse is not None:
            texts.append(json.dumps(part.functionResponse.response))
    return "".join(texts)


def _image_type(part: wire.Part) -> str | None:
    if part.fileData is not None:
        return "url"
    if part.inlineData is None:
        return None
    try:
        base64.b64decode(part.inlineData.data, validate=True)
    except (binascii.Error, ValueError):
        raise Reject(400, "* inline_data.data: Invalid value (bytes)\n") from None
    return part.inlineData.mimeType


def _chat_call(body: wire.GenerateContentRequest, model: str, stream: bool) -> ReceivedCall:
    texts = [_parts_text(body.systemInstruction)] if body.systemInstruction else []
    prompt, images, results = "", [], None
    called: set[str] = set()
    for i, content in enumerate(body.contents):
        role = content.role or "user"
        if role not in ("user", "model"):
            raise Reject(400, f"* GenerateContentRequest.contents[{i}].role: invalid role")
        texts.append(_parts_text(content))
        if role == "model":
            results = None
            called = {p.functionCall.name for p in content.parts if p.functionCall}
            continue
        responses = [p.functionResponse for p in content.parts if p.functionResponse]
        for response in responses:
            if response.name not in called:
                raise Reject(400, "* GenerateContentRequest.contents: function response "
                             f"{response.name!r} answers no function call of the turn "
                             "before it\n")  # fmt: skip
        if responses:
            results = [json.dumps(r.response) for r in responses]
        else:
            results = None
            prompt = "".join(p.text or "" for p in content.parts)
            images = [t for t in map(_image_type, content.parts) if t is not None]
    tools = [
        FakeTool(d.name, _json_schema(d.parameters or {}))
        for tool in body.tools or () for d in tool.functionDeclarations or ()
    ]  # fmt: skip
    texts += [t.name + json.dumps(t.parameters) for t in tools]
    calling = body.toolConfig.functionCallingConfig if body.toolConfig else None
    mode = {"ANY": "required", "NONE": "none"}.get((calling.mode if calling else None) or "",
                                                   "auto")  # fmt: skip
    allowed = (calling.allowedFunctionNames or []) if calling else []
    config = body.generationConfig or wire.GenerationConfig()
    schema = None
    if config.responseMimeType == "application/json":
        schema = _json_schema(config.responseSchema or {})
    return ReceivedCall(
        model=model,
        prompt=prompt,
        input_tokens=sum(count_tokens(t) for t in texts if t) + 258 * len(images),
        max_tokens=config.maxOutputTokens,
        stream=stream,
        tools=tools,
        tool_choice=mode,
        forced_tool=allowed[0] if mode == "required" and len(allowed) == 1 else None,
        tool_results=results,
        schema=schema,
        images=images,
    )


def _json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Gemini's upper-case OpenAPI types back to JSON Schema's, for the example maker."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            out[key] = value.lower()
        elif key == "properties" and isinstance(value, dict):
            out[key] = {k: _json_schema(v) for k, v in value.items()}
        elif key == "items" and isinstance(value, dict):
            out[key] = _json_schema(value)
        elif key == "anyOf" and isinstance(value, list):
            out[key] = [_json_schema(v) for v in value]
        else:
            out[key] = value
    return out
