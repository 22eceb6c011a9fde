"""The order in which one call tries the pool's providers.

Each strategy orders the providers the call may use; ``priority`` (then pool order) breaks
every tie. Then the task's complexity regroups them by tier preference, keeping the
strategy's order within a tier, and providers marked misconfigured go last: they are still
tried when nothing else answers, since a success clears the mark. Providers whose breaker
refuses the call are passed over later, attempt by attempt, not here, because a breaker can
open while a call is under way.
"""

from __future__ import annotations

from llmagents.api.pool import Strategy
from llmagents.routing.breaker import BreakerState
from llmagents.routing.calls import CallTask
from llmagents.routing.complexity import tier_ranks
from llmagents.routing.state import ProviderState


def order(
    strategy: Strategy, members: list[ProviderState], task: CallTask, *, turn: int
) -> list[ProviderState]:
    """``members`` (already in priority order, not modified) ordered for ``task``.

    ``turn`` counts the calls made so far, for round-robin rotation.
    """
    if strategy is Strategy.PRIORITY:
        ordered = members
    elif strategy is Strategy.COST_OPTIMIZED:
        ordered = sorted(members, key=lambda m: m.estimate(task))
    elif strategy is Strategy.PERFORMANCE_OPTIMIZED:
        ordered = sorted(members, key=lambda m: m.health.score())
    else:
        ordered = _round_robin(members, turn)
    assert task.complexity is not None
    ranks = tier_ranks(task.complexity)
    if ranks is not None and len(ordered) > 1:
        ordered = sorted(ordered, key=lambda m: ranks[m.tier])
    for member in ordered:
        if member.misconfigured is not None:
            return [m for m in ordered if m.misconfigured is None] + [
                m for m in ordered if m.misconfigured is not None
            ]
    return ordered


def _round_robin(members: list[ProviderState], turn: int) -> list[ProviderState]:
    """Rotate the healthy providers by ``turn``; the others follow in priority order.

    Rotating only the healthy ones keeps the spread even among them while one is down,
    instead of handing the down provider's share to its successor.
    """
    healthy = [
        m for m in members if m.breaker.state is BreakerState.CLOSED and m.misconfigured is None
    ]
    if not healthy:
        return members
    start = turn % len(healthy)
    rotated = healthy[start:] + healthy[:start]
    if len(healthy) == len(members):
        return rotated
    return rotated + [m for m in members if m not in healthy]
