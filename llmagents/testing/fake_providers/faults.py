"""What a fake provider does wrong, and when: the fault plan and the decision for each call.

A ``FaultPlan`` is plain configuration (a pydantic model, because it also arrives as JSON on
the fakes' admin endpoint and from the command line). ``FaultCore`` holds the state a plan
implies — the seeded random source, the unconsumed script, the start time for outage windows,
the counters — and decides each call's fate. The protocol servers only carry the decision out
in their own wire format, so every protocol fails the same way for the same plan.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class FaultKind(StrEnum):
    """One way for a call to go wrong (or, in a script, to go right)."""

    OK = "ok"
    """Answer normally; lets a scripted call through."""
    STATUS = "status"
    """An HTTP error status with the protocol's own error body."""
    HANG = "hang"
    """Accept the request and never answer (until ``hang_seconds`` or the server stops)."""
    RESET = "reset"
    """Close the connection without any answer."""
    MALFORMED = "malformed"
    """Status 200 with a body that is not JSON; in a stream, an event that is not JSON."""
    TRUNCATED = "truncated"
    """Status 200 with the real answer cut in half; in a stream, a cleanly ended half answer."""
    WRONG_SHAPE = "wrong_shape"
    """Status 200 with valid JSON that lacks the protocol's fields."""
    BREAK = "break"
    """Drop the connection mid-answer: a stream after ``stream_break_after`` chunks."""
    STREAM_ERROR = "stream_error"
    """A stream sends the protocol's in-stream error event after some chunks; a plain call
    gets the protocol's overload status instead."""


_FAULT_TEXT = re.compile(r"^(?P<status>\d{3})(?::(?P<after>\d+(?:\.\d+)?)(?P<date>:date)?)?$")


class Fault(BaseModel):
    """One fault; written in short as ``"429"``, ``"429:2"`` (Retry-After 2 s), ``"429:2:date"``
    (Retry-After as an HTTP date), or a kind name such as ``"reset"`` or ``"hang"``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FaultKind
    status: int | None = Field(default=None, ge=400, le=599)
    retry_after: float | None = Field(default=None, ge=0)
    retry_after_http_date: bool = False

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, int):
            return {"kind": FaultKind.STATUS, "status": value}
        if not isinstance(value, str):
            return value
        text = value.strip().lower()
        match = _FAULT_TEXT.match(text)
        if match:
            after = match.group("after")
            return {
                "kind": FaultKind.STATUS,
                "status": int(match.group("status")),
                "retry_after": float(after) if after is not None else None,
                "retry_after_http_date": bool(match.group("date")),
            }
        try:
            return {"kind": FaultKind(text.replace("-", "_"))}
        except ValueError:
            kinds = ", ".join(k.value for k in FaultKind if k is not FaultKind.STATUS)
            raise ValueError(
                f"unknown fault {value!r}: use an HTTP status like 429 or 429:2, or one of {kinds}"
            ) from None

    @model_validator(mode="after")
    def _status_matches_kind(self) -> Fault:
        if (self.kind is FaultKind.STATUS) != (self.status is not None):
            raise ValueError("a status fault needs a status, and only a status fault has one")
        return self

    @property
    def label(self) -> str:
        """Name of the outcome in the counters: the status code, or the kind."""
        return str(self.status) if self.kind is FaultKind.STATUS else self.kind.value


class Latency(BaseModel):
    """Delay before each answer: ``"50"`` fixed, ``"50:200"`` uniform, ``"100~20"`` normal
    (mean~standard deviation), all in milliseconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    distribution: Literal["fixed", "uniform", "normal"] = "fixed"
    ms: float = Field(default=0.0, ge=0, description="Fixed delay, uniform minimum or normal mean.")
    max_ms: float | None = Field(default=None, ge=0, description="Uniform maximum.")
    stddev_ms: float = Field(default=0.0, ge=0, description="Normal standard deviation.")

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, int | float):
            return {"ms": value}
        if not isinstance(value, str):
            return value
        text = value.strip()
        if ":" in text:
            low, high = text.split(":", 1)
            return {"distribution": "uniform", "ms": float(low), "max_ms": float(high)}
        if "~" in text:
            mean, stddev = text.split("~", 1)
            return {"distribution": "normal", "ms": float(mean), "stddev_ms": float(stddev)}
        return {"ms": float(text)}

    @model_validator(mode="after")
    def _uniform_bounds(self) -> Latency:
        if self.distribution == "uniform" and (self.max_ms is None or self.max_ms < self.ms):
            raise ValueError("a uniform latency needs max_ms >= ms")
        return self

    def sample(self, rng: random.Random) -> float:
        """One delay in seconds."""
        if self.distribution == "uniform":
            assert self.max_ms is not None
            ms = rng.uniform(self.ms, self.max_ms)
        elif self.distribution == "normal":
            ms = max(0.0, rng.gauss(self.ms, self.stddev_ms))
        else:
            ms = self.ms
        return ms / 1000.0


class OutageWindow(BaseModel):
    """An interval, in seconds since the server started, during which every call fails."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start_s: float = Field(ge=0)
    end_s: float | None = Field(default=None, description="Open-ended when unset.")

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            start, _, end = value.partition(":")
            return {"start_s": float(start), "end_s": float(end) if end else None}
        return value

    def covers(self, elapsed: float) -> bool:
        return elapsed >= self.start_s and (self.end_s is None or elapsed < self.end_s)


class FaultPlan(BaseModel):
    """How a fake provider misbehaves. The default plan answers every call correctly.

    Precedence per call: an active outage, then the next scripted fault, then a random
    failure with probability ``fail_rate``, else a normal answer. Latency applies to all.
    """

    model_config = ConfigDict(extra="forbid")

    seed: int | None = Field(default=None, description="Seed for repeatable random faults.")
    fail_rate: float = Field(default=0.0, ge=0, le=1, description="Share of calls that fail.")
    fail_with: list[Fault] = Field(
        default_factory=lambda: [Fault(kind=FaultKind.STATUS, status=500)],
        min_length=1,
        description="Faults a random failure draws from, uniformly.",
    )
    script: list[Fault] = Field(
        default_factory=list, description="Faults for the next calls, one each, in order."
    )
    latency: Latency | None = None
    chunk_delay_ms: float = Field(default=0.0, ge=0, description="Pause between stream chunks.")
    outage: bool = Field(default=False, description="An outage switched on by hand.")
    outage_windows: list[OutageWindow] = Field(default_factory=list)
    outage_fault: Fault = Field(
        default_factory=lambda: Fault(kind=FaultKind.STATUS, status=503),
        description=(
            "What a call gets during an outage: a status, hang or reset (faults that need "
            "an answer to spoil get the protocol's overload status instead)."
        ),
    )
    stream_break_after: int = Field(
        default=2,
        ge=0,
        description=(
            "Text chunks a stream delivers before a break, stream_error, malformed or "
            "truncated fault strikes; a shorter answer completes normally."
        ),
    )
    hang_seconds: float = Field(
        default=300.0, gt=0, description="How long a hang lasts unless the server stops first."
    )


@dataclass(slots=True)
class FakeStats:
    """Counters of one fake server since start (or the last reset)."""

    requests: int = 0
    streams: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    input_tokens: int = 0
    output_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "streams": self.streams,
            "outcomes": dict(self.outcomes),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
        }


class FaultCore:
    """The live state behind a plan: decides each call and counts what happened."""

    def __init__(self, plan: FaultPlan | None = None, *, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._started = clock()
        self._rng = random.Random()
        self._script: deque[Fault] = deque()
        self.stats = FakeStats()
        self.plan = plan or FaultPlan()

    @property
    def plan(self) -> FaultPlan:
        return self._plan

    @plan.setter
    def plan(self, plan: FaultPlan) -> None:
        self._plan = plan
        self._script = deque(plan.script)
        if plan.seed is not None:
            self._rng.seed(plan.seed)

    def update(self, changes: dict[str, Any]) -> FaultPlan:
        """Merge ``changes`` (JSON field names) into the plan; validation errors propagate.

        The unconsumed script and the random sequence carry on unless ``changes`` sets
        ``script`` or ``seed``: switching an outage on must not replay consumed faults.
        """
        plan = FaultPlan.model_validate(self._plan.model_dump() | changes)
        self._plan = plan
        if "script" in changes:
            self._script = deque(plan.script)
        if "seed" in changes and plan.seed is not None:
            self._rng.seed(plan.seed)
        return plan

    def reset_stats(self) -> None:
        self.stats = FakeStats()

    def elapsed(self) -> float:
        return float(self._clock() - self._started)

    def outage_active(self) -> bool:
        plan = self._plan
        return plan.outage or any(w.covers(self.elapsed()) for w in plan.outage_windows)

    def decide(self) -> tuple[Fault | None, str]:
        """This call's fault (``None`` for a normal answer) and the outcome label to count.

        Consumes a script step unless an outage overrides it.
        """
        plan = self._plan
        if self.outage_active():
            return plan.outage_fault, "outage"
        if self._script:
            step = self._script.popleft()
            return (None, "ok") if step.kind is FaultKind.OK else (step, step.label)
        if plan.fail_rate and self._rng.random() < plan.fail_rate:
            fault = self._rng.choice(plan.fail_with)
            return fault, fault.label
        return None, "ok"

    def delay(self) -> float:
        latency = self._plan.latency
        return latency.sample(self._rng) if latency is not None else 0.0
