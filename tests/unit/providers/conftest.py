"""Each adapter paired with the fake server of its protocol, on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from llmagents.chat import ChatRequest, Message, Role
from llmagents.providers import AnthropicAdapter, GeminiAdapter, OpenAIAdapter, ProviderAdapter
from llmagents.testing.fake_providers import (
    FakeAnthropic,
    FakeGemini,
    FakeOpenAI,
    FakeProviderServer,
)

API_KEY = "sk-test-0123456789abcdef"
PROTOCOLS: dict[str, tuple[type[FakeProviderServer], type[ProviderAdapter], str]] = {
    "anthropic": (FakeAnthropic, AnthropicAdapter, "claude-haiku-4-5"),
    "gemini": (FakeGemini, GeminiAdapter, "gemini-2.5-flash"),
    "openai": (FakeOpenAI, OpenAIAdapter, "gpt-4o-mini"),
}
REQUEST = ChatRequest(
    [
        Message(Role.SYSTEM, "Answer in one short sentence."),
        Message(Role.USER, "What is the capital of France and why is it famous"),
    ]
)


@dataclass
class Pair:
    protocol: str
    fake: FakeProviderServer
    adapter: ProviderAdapter

    def adapter_with(self, **overrides: object) -> ProviderAdapter:
        """Another adapter to the same fake, with some constructor arguments changed."""
        kwargs: dict[str, object] = {
            "name": "other",
            "model": self.adapter.model,
            "base_url": self.fake.base_url,
            "api_key": API_KEY,
        }
        kwargs.update(overrides)
        return type(self.adapter)(**kwargs)  # type: ignore[arg-type]


@pytest.fixture(params=sorted(PROTOCOLS))
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[Pair]:
    fake_type, adapter_type, model = PROTOCOLS[request.param]
    async with (
        fake_type(api_key=API_KEY) as fake,
        adapter_type(
            name="primary", model=model, base_url=fake.base_url, api_key=API_KEY
        ) as adapter,
    ):
        yield Pair(request.param, fake, adapter)
