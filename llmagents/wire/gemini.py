"""Google's Gemini API wire format (``generateContent``): request, answer and error.

Spoken by the Gemini adapter and the fake Gemini server. Field names are the API's JSON
names (camelCase). A conversation is ``contents`` of role ``user`` or ``model``, each a
list of ``parts``; a part holds one of ``text``, ``inlineData`` (base64 bytes and their
MIME type), ``fileData`` (a URI), ``functionCall`` (``name``, ``args`` object, optional
``id``) or ``functionResponse`` (``name``, ``response`` object, optional ``id``). Tools are
``functionDeclarations`` whose ``parameters`` are an OpenAPI-style schema; structured output
is ``generationConfig.responseMimeType: application/json`` with ``responseSchema``.

A stream (``:streamGenerateContent?alt=sse``) is a series of whole
``GenerateContentResponse`` objects, each with the text (or whole function calls) produced
since the previous one, and no terminal sentinel: the answer is complete when a candidate
carried a ``finishReason``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from llmagents.wire import StrictWireModel, WireModel, extras, finite_json

SKIP_SIGNATURE = "skip_thought_signature_validator"
"""The ``thoughtSignature`` Google documents for function calls whose signature is unknown
(a history from another model): Gemini 3 then skips their check."""

# -- parts and contents (requests and answers alike) ------------------------------------------


class Blob(WireModel):
    mimeType: str
    data: str
    """Base64 of the bytes."""


class FileData(WireModel):
    mimeType: str | None = None
    fileUri: str


class FunctionCall(WireModel):
    name: str
    args: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None


class FunctionResponse(WireModel):
    name: str
    response: dict[str, Any]
    id: str | None = None


class Part(WireModel):
    """One of the data fields is set; ``thought`` marks the model's own reasoning."""

    text: str | None = None
    inlineData: Blob | None = None
    fileData: FileData | None = None
    functionCall: FunctionCall | None = None
    functionResponse: FunctionResponse | None = None
    thought: bool | None = None
    thoughtSignature: str | None = None
    """Opaque state of the model's reasoning, on the first function call of a turn; Gemini 3
    refuses a history whose function calls lack theirs."""


class Content(WireModel):
    role: Literal["user", "model", "function"] | None = None
    parts: list[Part] = Field(default_factory=list)


# -- request ----------------------------------------------------------------------------------


class FunctionDeclaration(WireModel):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(WireModel):
    functionDeclarations: list[FunctionDeclaration] | None = None


class FunctionCallingConfig(WireModel):
    mode: Literal["AUTO", "ANY", "NONE", "VALIDATED"] | None = None
    allowedFunctionNames: list[str] | None = None


class ToolConfig(WireModel):
    functionCallingConfig: FunctionCallingConfig | None = None


class ThinkingConfig(StrictWireModel):
    """How much the model thinks: a ``thinkingBudget`` in tokens (Gemini 2.5; 0 off, -1 the
    model's choice) or a ``thinkingLevel`` (Gemini 3), never both; ``includeThoughts`` asks
    for thought summaries (parts with ``thought: true``)."""

    thinkingBudget: int | None = Field(default=None, ge=-1, le=2**31 - 1)
    thinkingLevel: Literal["minimal", "low", "medium", "high"] | None = None
    includeThoughts: bool | None = None

    @model_validator(mode="after")
    def _one_control(self) -> ThinkingConfig:
        if self.thinkingBudget is not None and self.thinkingLevel is not None:
            raise ValueError("thinking_budget and thinking_level are not supported together")
        return self


class GenerationConfig(StrictWireModel):
    maxOutputTokens: int | None = Field(default=None, ge=1, le=2**31 - 1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    topP: float | None = Field(default=None, ge=0, le=1)
    topK: int | None = Field(default=None, ge=1, le=2**31 - 1)
    seed: int | None = Field(default=None, ge=-(2**31), le=2**31 - 1)
    stopSequences: list[str] | None = Field(default=None, max_length=5)
    candidateCount: int | None = Field(default=None, ge=1, le=1)
    responseMimeType: str | None = None
    responseSchema: dict[str, Any] | None = None
    thinkingConfig: ThinkingConfig | None = None


class GenerateContentRequest(WireModel):
    """The body of ``models/{model}:generateContent`` (and of the streamed method)."""

    contents: list[Content] = Field(min_length=1)
    systemInstruction: Content | None = None
    tools: list[Tool] | None = None
    toolConfig: ToolConfig | None = None
    generationConfig: GenerationConfig | None = None

    @model_validator(mode="after")
    def _finite(self) -> GenerateContentRequest:
        if not finite_json(extras(self)):
            raise ValueError("numbers must be finite (no NaN or Infinity)")
        return self


# -- answer -----------------------------------------------------------------------------------


class Candidate(WireModel):
    content: Content | None = None
    finishReason: str | None = None
    index: int | None = None


class UsageMetadata(WireModel):
    promptTokenCount: int = 0
    candidatesTokenCount: int | None = None
    thoughtsTokenCount: int | None = None
    cachedContentTokenCount: int | None = None
    totalTokenCount: int | None = None


class PromptFeedback(WireModel):
    blockReason: str | None = None


class GenerateContentResponse(WireModel):
    """A whole answer, or one event of a stream."""

    candidates: list[Candidate] | None = None
    usageMetadata: UsageMetadata | None = None
    modelVersion: str | None = None
    responseId: str | None = None
    promptFeedback: PromptFeedback | None = None


# -- errors -----------------------------------------------------------------------------------


class ErrorDetail(WireModel):
    code: int | None = None
    message: str = ""
    status: str | None = None
    details: list[dict[str, Any]] | None = None


class ErrorBody(WireModel):
    """Google's RPC error shape ``{"error": {"code", "message", "status", "details"}}``."""

    error: ErrorDetail


def sse(document: WireModel) -> bytes:
    """One event of a Gemini stream (CRLF-separated, as the service sends them)."""
    return b"data: " + document.model_dump_json(exclude_none=True).encode() + b"\r\n\r\n"
