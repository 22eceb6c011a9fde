"""A request a provider refuses for its content (HTTP 400/413/422 in its protocol's error
shape) goes to the next provider, which may take it, and counts nothing against the one that
refused: no breaker, no misconfiguration. When every provider refuses, the client gets a 400
with their reasons in its front door's error shape, never a 503 blamed on the pool."""

from __future__ import annotations

import anthropic
import openai
import pytest

from .conftest import Pod

HELLO = [{"role": "user", "content": "Hello there"}]


def _untouched(pod: Pod) -> None:
    for name, status in pod.runner.engine.manager.status().items():
        assert status.misconfigured is None, name
        assert status.breaker.value == "closed", name


async def test_a_request_one_provider_refuses_is_answered_by_the_next_and_marks_nothing(
    pod: Pod,
) -> None:
    client = pod.client()
    for turn in range(3):  # the pod's breakers open at the first failure: none may open
        pod.claude.core.update({"script": ["400"]})
        raw = await client.chat.completions.with_raw_response.create(model="auto",
                                                                     messages=HELLO)  # fmt: skip
        assert raw.headers["x-llmagents-provider"] == "gpt", turn
    assert pod.claude.stats.requests == 3  # asked first every time
    _untouched(pod)
    assert pod.runner.engine.manager.status()["claude"].success_rate is None


def _refuse_everywhere(pod: Pod) -> None:
    pod.claude.core.update({"script": ["400"]})
    pod.gpt.core.update({"script": ["422"]})
    pod.gemini.core.update({"script": ["400"]})


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_request_every_provider_refuses_is_a_400_with_their_reasons(
    pod: Pod, stream: bool
) -> None:
    _refuse_everywhere(pod)
    with pytest.raises(openai.BadRequestError) as refused:
        await pod.client().chat.completions.create(model="auto", messages=HELLO, stream=stream)
    error = refused.value
    assert error.status_code == 400 and error.code == "request_refused"
    assert error.type == "invalid_request_error"
    assert error.response.headers["x-should-retry"] == "false"
    # Each protocol's own words: Anthropic's error type, OpenAI's message, Gemini's status.
    for said in ("claude: request_refused", "invalid_request_error",
                 "gpt: request_refused", "gemini: request_refused", "INVALID_ARGUMENT"):  # fmt: skip
        assert said in error.message, said
    _untouched(pod)


async def test_on_the_responses_door_it_is_a_400_in_openais_shape(pod: Pod) -> None:
    _refuse_everywhere(pod)
    with pytest.raises(openai.BadRequestError) as refused:
        await pod.client().responses.create(model="auto", input="Hello there", store=False)
    assert refused.value.code == "request_refused"
    assert "gemini: request_refused" in refused.value.message
    _untouched(pod)


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
async def test_on_the_messages_door_it_is_a_400_in_anthropics_shape(pod: Pod, stream: bool) -> None:
    _refuse_everywhere(pod)
    origin = pod.url.removesuffix("/v1")
    client = anthropic.AsyncAnthropic(base_url=origin, api_key="llmagents-gateway",
                                      max_retries=0)  # fmt: skip
    with pytest.raises(anthropic.BadRequestError) as refused:
        await client.messages.create(model="auto", max_tokens=100, messages=HELLO,
                                     stream=stream)  # fmt: skip
    body = refused.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "claude: request_refused" in body["error"]["message"]
    _untouched(pod)


async def test_a_refusal_beside_an_outage_is_a_503_since_the_provider_down_might_take_it(
    pod: Pod,
) -> None:
    pod.claude.core.update({"script": ["400"]})
    pod.down(pod.gpt, pod.gemini)
    with pytest.raises(openai.InternalServerError) as failed:
        await pod.client().chat.completions.create(model="auto", messages=HELLO)
    assert failed.value.status_code == 503
    assert "claude: request_refused" in failed.value.message
    assert pod.runner.engine.manager.status()["claude"].breaker.value == "closed"
