"""Hooks through which the runner observes the engine, without the engine knowing who listens.

The runner turns these into Prometheus metrics and status; tests record them. Subclass
``EngineListener`` and override what you need: every method defaults to doing nothing. They
are called synchronously on the engine's hot path, so they must be quick and must not raise.
"""

from __future__ import annotations

from llmagents.chat import Usage
from llmagents.routing.breaker import Transition
from llmagents.routing.calls import AttemptRecord, Fallback


class EngineListener:
    """Receives the engine's events; the defaults ignore them."""

    def on_attempt(self, record: AttemptRecord) -> None:
        """An attempt finished, successfully or not."""

    def on_fallback(self, fallback: Fallback) -> None:
        """A call moved on to another provider."""

    def on_breaker_transition(self, provider: str, transition: Transition) -> None:
        """A provider's breaker changed state."""

    def on_cost(self, provider: str, usage: Usage, cost: float) -> None:
        """Real usage was charged to a provider."""
