"""Which providers a call may use: the request's model, and the capabilities it needs."""

from __future__ import annotations

import pydantic
import pytest

from llmagents.api.pool import ProviderType
from llmagents.chat import Capability
from llmagents.errors import CapabilityUnavailable
from llmagents.routing import CallTask, SkipReason
from llmagents.routing.selection import (
    askable_models,
    capabilities,
    default_capabilities,
    providers_for,
)

from .helpers import FakeClock, Recorder, Scripted, manager, pool, provider, spec_of

TOOLS = frozenset({Capability.TOOLS})


def test_capabilities_default_by_type_and_model_and_the_pool_overrides_them() -> None:
    assert default_capabilities(ProviderType.ANTHROPIC, "claude-haiku-4-5") == frozenset(Capability)
    assert default_capabilities(ProviderType.ONNX, "smollm2") == {Capability.STREAMING}
    assert Capability.VISION not in default_capabilities(ProviderType.OPENAI, "gpt-3.5-turbo")
    assert Capability.VISION not in default_capabilities(
        ProviderType.OPENAI, "openai/gpt-3.5-turbo"
    )
    vllm = spec_of("vllm", capabilities={"tools": False, "vision": False})
    assert capabilities(vllm) == {Capability.JSON_SCHEMA, Capability.STREAMING}
    local = spec_of("local", type="onnx", capabilities={"jsonSchema": True})
    assert capabilities(local) == {Capability.JSON_SCHEMA, Capability.STREAMING}


async def test_a_provider_lacking_a_capability_is_skipped_with_its_reason(
    clock: FakeClock,
) -> None:
    recorder = Recorder()
    engine = manager(
        pool(provider("plain", priority=1, capabilities={"tools": False}),
             provider("agentic", priority=2)),
        clock, listener=recorder,
    )  # fmt: skip
    call = Scripted(clock)
    result = await engine.execute(CallTask(capabilities=TOOLS), call)
    assert result.provider == "agentic" and call.providers == ["agentic"]
    [fallback] = result.fallbacks
    assert (fallback.from_provider, fallback.reason) == ("plain", SkipReason.CAPABILITY)
    assert fallback.detail == "lacks tools"
    assert engine.status()["plain"].misconfigured is None


async def test_no_capable_provider_is_refused_before_any_attempt_naming_what_is_missing(
    clock: FakeClock,
) -> None:
    engine = manager(
        pool(provider("a", capabilities={"vision": False}),
             provider("local", type="onnx", model="smollm2")),
        clock,
    )  # fmt: skip
    call = Scripted(clock)
    with pytest.raises(CapabilityUnavailable) as caught:
        await engine.execute(CallTask(capabilities=frozenset({Capability.VISION})), call)
    assert call.attempts == []
    assert caught.value.capabilities == ["vision"]
    assert caught.value.considered == ["a", "local"]
    assert "a lacks vision" in str(caught.value) and "local lacks vision" in str(caught.value)
    assert all(s.healthy for s in engine.status().values())


def test_the_model_selects_a_provider_a_model_an_alias_or_the_default() -> None:
    spec = pool(
        provider("claude", type="anthropic", model="claude-haiku-4-5"),
        provider("gpt", model="gpt-4.1"),
        provider("mini", model="gpt-4.1"),
        models={"smart": ["claude", "gpt"]},
    )
    assert providers_for(spec, "claude") == {"claude"}
    assert providers_for(spec, "gpt-4.1") == {"gpt", "mini"}
    assert providers_for(spec, "smart") == {"claude", "gpt"}
    assert providers_for(spec, "gpt-4o") is None  # unknown: the whole pool
    assert providers_for(spec, None) is None
    with_default = spec.model_copy(update={"default_model": "smart"})
    assert providers_for(with_default, "gpt-4o") == {"claude", "gpt"}
    assert ("smart", "alias") in askable_models(spec)
    assert ("gpt-4.1", "gpt") in askable_models(spec) and ("mini", "mini") in askable_models(spec)


def test_aliases_and_the_default_must_name_providers_of_the_pool() -> None:
    with pytest.raises(pydantic.ValidationError, match="'nowhere'"):
        pool(provider("a"), models={"smart": ["a", "nowhere"]})
    with pytest.raises(pydantic.ValidationError, match="defaultModel"):
        pool(provider("a"), defaultModel="smart")


def test_token_estimates_count_text_parts_images_and_tool_calls() -> None:
    from llmagents.chat import ImagePart, Message, Role, TextPart, ToolCall
    from llmagents.routing.complexity import IMAGE_TOKENS, estimate_message_tokens

    words = "word " * 400  # 2000 characters, about 500 tokens
    as_text = estimate_message_tokens([Message(Role.USER, words)])
    as_parts = estimate_message_tokens(
        [Message(Role.USER, (TextPart(words), ImagePart("https://x/y.png")))]
    )
    assert as_parts == as_text + IMAGE_TOKENS
    call = Message(Role.ASSISTANT, "", tool_calls=(ToolCall("c1", "f", '{"a": "' + words + '"}'),))
    assert estimate_message_tokens([call]) > 500
