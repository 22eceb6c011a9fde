"""Fake model providers on loopback that speak each real wire protocol and fail on purpose.

Tests, ``make demo`` and users rehearsing their fallback settings run these instead of the
real APIs: ``FakeAnthropic``, ``FakeGemini`` and ``FakeOpenAI`` validate requests like the real
services, answer deterministically with realistic usage, and inject the faults of a
``FaultPlan`` (error statuses with Retry-After, latency, hangs, resets, malformed, truncated
or broken answers and streams, outages), counting requests and tokens as they go.
"""

from __future__ import annotations

from llmagents.testing.fake_providers.anthropic import FakeAnthropic
from llmagents.testing.fake_providers.behaviour import count_tokens
from llmagents.testing.fake_providers.faults import (
    FakeStats,
    Fault,
    FaultCore,
    FaultKind,
    FaultPlan,
    Latency,
    OutageWindow,
)
from llmagents.testing.fake_providers.gemini import FakeGemini
from llmagents.testing.fake_providers.openai import FakeOpenAI
from llmagents.testing.fake_providers.server import FakeProviderServer
from llmagents.testing.fake_providers.threaded import ThreadedFake

FAKE_TYPES: dict[str, type[FakeProviderServer]] = {
    "anthropic": FakeAnthropic,
    "gemini": FakeGemini,
    "openai": FakeOpenAI,
}
"""The fake for each wire protocol, keyed like ``ProviderType`` values (onnx speaks openai)."""

__all__ = [
    "FAKE_TYPES",
    "FakeAnthropic",
    "FakeGemini",
    "FakeOpenAI",
    "FakeProviderServer",
    "FakeStats",
    "Fault",
    "FaultCore",
    "FaultKind",
    "FaultPlan",
    "Latency",
    "OutageWindow",
    "ThreadedFake",
    "count_tokens",
]
