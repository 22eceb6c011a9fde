"""Error bodies the fakes do not imitate, Retry-After forms, SSE framing, build_adapter."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from email.utils import formatdate

import pytest

from llmagents.api.pool import ProviderSpec, ProviderType
from llmagents.chat import ChatRequest, Message, Role
from llmagents.errors import (
    AuthFailed,
    BadRequest,
    ConfigError,
    ModelNotFound,
    Overloaded,
    ProviderTimeout,
    RateLimited,
    RequestRefused,
    ServerError,
)
from llmagents.providers import (
    DEFAULT_BASE_URLS,
    ONNX_SIDECAR_DEFAULT_PORT,
    AnthropicAdapter,
    GeminiAdapter,
    OpenAIAdapter,
    build_adapter,
)
from llmagents.providers.mapping import google_duration_seconds, retry_after_seconds
from llmagents.providers.sse import SseEvent, iter_lines, iter_sse


def headers(**values: str) -> dict[str, str]:
    """Response headers as the HTTP client hands them to the adapters: lower-case names."""
    return {k.replace("_", "-").lower(): v for k, v in values.items()}


def test_retry_after_reads_seconds_milliseconds_and_http_dates() -> None:
    assert retry_after_seconds(headers(retry_after="7")) == 7.0
    assert retry_after_seconds(headers(retry_after_ms="1500", retry_after="9")) == 1.5
    in_ten = formatdate(time.time() + 10, usegmt=True)
    assert 8.5 <= (retry_after_seconds(headers(retry_after=in_ten)) or 0) <= 10.0


def test_retry_after_ignores_garbage_and_never_goes_negative() -> None:
    assert retry_after_seconds(headers(retry_after="soon")) is None
    assert retry_after_seconds(headers()) is None
    assert retry_after_seconds(headers(retry_after="-3")) == 0.0
    past = formatdate(time.time() - 60, usegmt=True)
    assert retry_after_seconds(headers(retry_after=past)) == 0.0


def test_google_durations_are_read_in_seconds() -> None:
    assert google_duration_seconds("37s") == 37.0
    assert google_duration_seconds("1.5s") == 1.5
    assert google_duration_seconds("5m") is None
    assert google_duration_seconds(None) is None


@pytest.fixture
async def openai() -> AsyncIterator[OpenAIAdapter]:
    async with OpenAIAdapter(
        name="compat", model="m", base_url="http://127.0.0.1:9/v1", api_key="k"
    ) as adapter:
        yield adapter


def body(value: object) -> bytes:
    return json.dumps(value).encode()


async def test_openai_quota_exhaustion_is_not_retried_as_a_rate_limit(
    openai: OpenAIAdapter,
) -> None:
    error = openai._map_error(
        429,
        headers(),
        body(
            {
                "error": {
                    "message": "You exceeded your current quota",
                    "type": "insufficient_quota",
                    "param": None,
                    "code": "insufficient_quota",
                }
            }
        ),
    )

    assert isinstance(error, AuthFailed) and error.misconfiguration


async def test_vllm_top_level_error_objects_are_understood(openai: OpenAIAdapter) -> None:
    error = openai._map_error(
        404,
        headers(),
        body(
            {
                "object": "error",
                "message": "The model `x` does not exist.",
                "type": "NotFoundError",
                "param": None,
                "code": 404,
            }
        ),
    )

    assert isinstance(error, ModelNotFound) and "does not exist" in str(error)


async def test_openrouter_numeric_error_codes_fall_back_to_the_status(
    openai: OpenAIAdapter,
) -> None:
    error = openai._map_error(
        429, headers(retry_after="4"), body({"error": {"code": 429, "message": "slow down"}})
    )

    assert isinstance(error, RateLimited) and error.retry_after == 4.0


async def test_a_proxy_html_page_maps_by_status(openai: OpenAIAdapter) -> None:
    error = openai._map_error(502, headers(), b"<html><body>502 Bad Gateway</body></html>")

    assert isinstance(error, ServerError) and "Bad Gateway" in str(error)


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        # OpenAI: a context too long, a schema keyword strict mode does not take.
        (
            400,
            {
                "message": "This model's maximum context length is 128000 tokens.",
                "type": "invalid_request_error",
                "code": "context_length_exceeded",
            },
            RequestRefused,
        ),
        (
            400,
            {
                "message": "Invalid schema for response_format 'answer': 'oneOf' is not permitted.",
                "type": "invalid_request_error",
                "code": None,
            },
            RequestRefused,
        ),
        (422, {"message": "unprocessable", "code": 422}, RequestRefused),
        # OpenRouter names an unknown model with a 400: the pool's model is wrong.
        (400, {"message": "openai/gpt-9 is not a valid model ID", "code": 400}, ModelNotFound),
        (402, {"message": "Insufficient credits", "code": 402}, BadRequest),
    ],
)
async def test_a_refusal_of_the_request_is_told_from_a_misconfiguration(
    openai: OpenAIAdapter, status: int, error: dict[str, object], expected: type
) -> None:
    mapped = openai._map_error(status, headers(), body({"error": error}))

    assert type(mapped) is expected
    assert mapped.misconfiguration == (expected is not RequestRefused)


async def test_anthropic_invalid_requests_are_refusals_unless_the_account_is_at_fault() -> None:
    def error(message: str) -> bytes:
        return body({"type": "error", "error": {"type": "invalid_request_error",
                                                "message": message}})  # fmt: skip

    async with AnthropicAdapter(
        name="claude", model="m", base_url="https://api.anthropic.com", api_key="k"
    ) as adapter:
        image = adapter._map_error(400, headers(), error("messages.0.content.1.image: could "
                                                         "not process image"))  # fmt: skip
        credit = adapter._map_error(400, headers(), error("Your credit balance is too low to "
                                                          "access the Anthropic API."))  # fmt: skip

    assert isinstance(image, RequestRefused) and not image.misconfiguration
    assert isinstance(credit, AuthFailed) and credit.misconfiguration


async def test_anthropic_error_types_outrank_the_status() -> None:
    async with AnthropicAdapter(
        name="claude", model="m", base_url="https://api.anthropic.com", api_key="k"
    ) as adapter:
        overloaded = adapter._map_error(
            529,
            headers(),
            body({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        )
        timeout = adapter._map_error(
            504,
            headers(),
            body(
                {
                    "type": "error",
                    "error": {"type": "timeout_error", "message": "Request timed out"},
                }
            ),
        )

    assert isinstance(overloaded, Overloaded)
    assert isinstance(timeout, ProviderTimeout)


async def test_gemini_reads_errors_wrapped_in_a_list() -> None:
    async with GeminiAdapter(
        name="g", model="m", base_url="https://generativelanguage.googleapis.com", api_key="k"
    ) as adapter:
        error = adapter._map_error(
            429,
            headers(),
            body(
                [
                    {
                        "error": {
                            "code": 429,
                            "message": "Resource exhausted.",
                            "status": "RESOURCE_EXHAUSTED",
                            "details": [
                                {
                                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                                    "retryDelay": "12s",
                                }
                            ],
                        }
                    }
                ]
            ),
        )

    assert isinstance(error, RateLimited) and error.retry_after == 12.0


async def test_gemini_reports_a_blocked_prompt_as_a_content_filter_stop() -> None:
    blocked = {
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 9},
    }
    async with GeminiAdapter(
        name="g", model="m", base_url="https://generativelanguage.googleapis.com", api_key="k"
    ) as adapter:
        answer = adapter._parse_answer(blocked)
        decoder = adapter._stream_decoder()
        assert decoder.feed(SseEvent("message", json.dumps(blocked))) is None
        final = decoder.finish()

    assert (answer.text, answer.finish_reason) == ("", "content_filter")
    assert answer.usage.input_tokens == 9
    assert final.finish_reason == "content_filter"


async def test_reasoning_is_kept_apart_from_the_answer_in_each_protocol() -> None:
    """Gemini's thought summaries, vLLM's reasoning_content and OpenRouter's reasoning are
    the answer's reasoning, never its text; whole and streamed."""
    gemini_answer = {
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "Weighing the options.", "thought": True}, {"text": "Blue."}]},
            "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1},
    }  # fmt: skip
    async with GeminiAdapter(
        name="g", model="m", base_url="https://generativelanguage.googleapis.com", api_key="k"
    ) as gemini:
        whole = gemini._parse_answer(gemini_answer)
        piece = gemini._stream_decoder().feed(SseEvent("message", json.dumps(gemini_answer)))
    assert (whole.text, whole.reasoning_text) == ("Blue.", "Weighing the options.")
    assert whole.reasoning[0].provider == "g" and whole.reasoning[0].signature is None
    assert piece is not None and (piece.text, piece.reasoning) == ("Blue.", "Weighing the options.")

    async with OpenAIAdapter(name="vllm", model="m", base_url="http://127.0.0.1:9/v1",
                             api_key="k") as compatible:  # fmt: skip
        for field in ("reasoning_content", "reasoning"):
            answer = compatible._parse_answer({
                "choices": [{"message": {"role": "assistant", "content": "Blue.",
                                         field: "Rayleigh."}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2},
            })  # fmt: skip
            chunk = compatible._stream_decoder().feed(SseEvent("message", json.dumps(
                {"choices": [{"index": 0, "delta": {field: "Ray"}}]})))  # fmt: skip
            assert (answer.text, answer.reasoning_text) == ("Blue.", "Rayleigh."), field
            assert chunk is not None and (chunk.text, chunk.reasoning) == ("", "Ray"), field


async def lines(*items: str) -> AsyncIterator[str]:
    for item in items:
        yield item


async def test_sse_joins_data_lines_and_skips_comments() -> None:
    events = [
        e
        async for e in iter_sse(
            lines(": keep-alive", "event: ping", "data: {}", "", "data: a", "data: b", "")
        )
    ]

    assert events == [SseEvent("ping", "{}"), SseEvent("message", "a\nb")]


async def test_sse_handles_crlf_and_drops_an_unterminated_event() -> None:
    events = [e async for e in iter_sse(lines("data: x\r", "\r", 'data: {"cut'))]

    assert events == [SseEvent("message", "x")]


async def chunks(*items: bytes) -> AsyncIterator[bytes]:
    for item in items:
        yield item


async def test_lines_are_cut_from_bytes_split_anywhere_even_inside_a_character() -> None:
    text = "data: é€\r\n\r\ndata: second\nlast"
    raw = text.encode()
    for cut in range(1, len(raw)):
        got = [line async for line in iter_lines(chunks(raw[:cut], raw[cut:]))]

        assert got == ["data: é€\r", "\r", "data: second", "last"], cut


async def test_a_line_longer_than_any_read_buffer_arrives_whole() -> None:
    long = "x" * 300_000
    raw = f"data: {long}\n\n".encode()
    pieces = [raw[i : i + 4096] for i in range(0, len(raw), 4096)]

    events = [e async for e in iter_sse(iter_lines(chunks(*pieces)))]

    assert events == [SseEvent("message", long)]


def spec(kind: ProviderType, **extra: object) -> ProviderSpec:
    fields: dict[str, object] = {"name": "p", "type": kind, "model": "m"}
    if kind is not ProviderType.ONNX:
        fields["secretRef"] = {"name": "keys"}
    return ProviderSpec.model_validate(fields | extra)


@pytest.mark.parametrize(
    ("kind", "adapter_type"),
    [
        (ProviderType.ANTHROPIC, AnthropicAdapter),
        (ProviderType.GEMINI, GeminiAdapter),
        (ProviderType.OPENAI, OpenAIAdapter),
        (ProviderType.ONNX, OpenAIAdapter),
    ],
)
async def test_build_adapter_picks_the_protocol_and_default_url(
    kind: ProviderType, adapter_type: type
) -> None:
    async with build_adapter(spec(kind), api_key="k") as adapter:
        assert type(adapter) is adapter_type
        assert adapter.base_url == DEFAULT_BASE_URLS[kind]
        assert adapter.name == "p" and adapter.model == "m"


async def test_build_adapter_points_onnx_at_the_sidecar_and_needs_no_key() -> None:
    async with build_adapter(spec(ProviderType.ONNX), api_key=None) as adapter:
        assert adapter.base_url == f"http://127.0.0.1:{ONNX_SIDECAR_DEFAULT_PORT}/v1"


async def test_build_adapter_honours_a_base_url() -> None:
    custom = spec(
        ProviderType.OPENAI, baseURL="http://vllm.internal:8000/v1/", allowInsecureBaseURL=True
    )
    async with build_adapter(custom, api_key="k") as adapter:
        assert adapter.base_url == "http://vllm.internal:8000/v1"


def test_build_adapter_refuses_a_remote_provider_without_a_key() -> None:
    with pytest.raises(ConfigError, match="'p'"):
        build_adapter(spec(ProviderType.ANTHROPIC), api_key=None)


@pytest.mark.parametrize(
    ("base_url", "field"),
    [
        ("https://api.openai.com/v1", "max_completion_tokens"),
        ("https://team.openai.azure.com/openai/v1", "max_completion_tokens"),
        ("https://openrouter.ai/api/v1", "max_tokens"),
        ("http://vllm.models.svc:8000/v1", "max_tokens"),
        ("http://127.0.0.1:8090/v1", "max_tokens"),
    ],
)
def test_openai_itself_gets_max_completion_tokens_and_other_servers_max_tokens(
    base_url: str, field: str
) -> None:
    adapter = OpenAIAdapter(name="p", model="m", base_url=base_url, api_key="k")
    payload = adapter._payload(ChatRequest([Message(Role.USER, "hi")], max_tokens=9), stream=False)
    assert payload[field] == 9
    assert {"max_tokens", "max_completion_tokens"} - {field} & payload.keys() == set()


def test_an_error_type_that_repeats_the_kind_is_said_once() -> None:
    # OpenAI-compatible servers name a 503 "server_error", the engine's kind for it too: the
    # status and Events showed "server_error: server_error: The engine ...".
    error = ServerError("server_error: The engine is overloaded.", provider="gpt", status_code=503)
    assert error.detail == "The engine is overloaded."
    assert error.summary == "server_error: The engine is overloaded."
    assert str(error) == "gpt: server_error (HTTP 503): The engine is overloaded."
    other = ServerError("internal: boom", provider="gpt")
    assert (other.detail, other.summary) == ("internal: boom", "server_error: internal: boom")
    assert ServerError("server_error: ").detail == "server_error: "
