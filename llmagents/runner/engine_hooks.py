"""How the runner hears its engine: one listener fanned out to metrics, events, tracing and
the runner's own reactions.

The engine (``routing``) takes a single ``EngineListener``; the runner has several parts
that follow its events. ``Fanout`` passes each event to all of them in order. ``RunnerHooks``
is the runner's own part: a breaker that moved makes the status urgent, and a charge is
journaled and asks for a checkpoint. Both are called synchronously inside the engine's
bookkeeping, so a charge is journaled in the same step as the ledger took it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from llmagents.chat import Usage
from llmagents.routing import AttemptRecord, EngineListener, Fallback, Transition


class Fanout(EngineListener):
    """Passes the engine's events to several listeners."""

    def __init__(self, *listeners: EngineListener) -> None:
        self.listeners = listeners

    def on_attempt(self, record: AttemptRecord) -> None:
        for listener in self.listeners:
            listener.on_attempt(record)

    def on_fallback(self, fallback: Fallback) -> None:
        for listener in self.listeners:
            listener.on_fallback(fallback)

    def on_breaker_transition(self, provider: str, transition: Transition) -> None:
        for listener in self.listeners:
            listener.on_breaker_transition(provider, transition)

    def on_cost(self, provider: str, usage: Usage, cost: float) -> None:
        for listener in self.listeners:
            listener.on_cost(provider, usage, cost)


class RunnerHooks(EngineListener):
    """The runner's own reactions, connected once the runner is built (the engine, which
    emits the events, is built first)."""

    def __init__(self) -> None:
        self.breaker_moved: Callable[[], None] | None = None
        self.charged: Callable[[str, Usage, float], None] | None = None

    def on_breaker_transition(self, provider: str, transition: Transition) -> None:
        if self.breaker_moved is not None:
            self.breaker_moved()

    def on_cost(self, provider: str, usage: Usage, cost: float) -> None:
        if self.charged is not None:
            self.charged(provider, usage, cost)


class Deferred(EngineListener):
    """A listener whose attempts, fallbacks and charges are heard ``later`` (after the answer's
    bytes, ``runner.later``); breaker transitions are passed on at once."""

    def __init__(
        self, listener: EngineListener, later: Callable[[Callable[[], object]], None]
    ) -> None:
        self.listener = listener
        self.later = later

    def on_attempt(self, record: AttemptRecord) -> None:
        self.later(partial(self.listener.on_attempt, record))

    def on_fallback(self, fallback: Fallback) -> None:
        self.later(partial(self.listener.on_fallback, fallback))

    def on_breaker_transition(self, provider: str, transition: Transition) -> None:
        self.listener.on_breaker_transition(provider, transition)

    def on_cost(self, provider: str, usage: Usage, cost: float) -> None:
        self.later(partial(self.listener.on_cost, provider, usage, cost))
