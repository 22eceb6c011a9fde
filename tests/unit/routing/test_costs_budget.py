from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest

from llmagents.api.work import BudgetPeriod
from llmagents.chat import Usage
from llmagents.errors import BudgetExhausted
from llmagents.routing import Attempt, CallTask, SkipReason, period_bounds

from .helpers import FakeClock, Reply, Scripted, manager, pool, provider

SMALL = CallTask(input_tokens=1000, output_tokens=1000)  # estimated at $0.018 on "paid"
TINY = CallTask(input_tokens=10, output_tokens=10)  # estimated at $0.00018 on "paid"


def priced(name: str, inp: float, out: float, **fields: object) -> dict[str, object]:
    return provider(name, pricing={"inputPerMillion": inp, "outputPerMillion": out}, **fields)


def paid_and_local(**fields: object):
    return pool(
        priced("paid", 3.0, 15.0, priority=1),
        provider("local", type="onnx", priority=2),
        **fields,
    )


async def test_cost_comes_from_real_usage_with_input_and_output_priced_separately(
    clock: FakeClock,
) -> None:
    engine = manager(paid_and_local(), clock)
    call = Scripted(clock, {"paid": [Reply(usage=Usage(2000, 300)), Reply(usage=Usage(10, 0))]})
    first = await engine.execute(CallTask(input_tokens=5, output_tokens=5), call)
    second = await engine.execute(CallTask(input_tokens=5, output_tokens=5), call)
    assert first.cost == (2000 * 3.0 + 300 * 15.0) / 1e6
    assert second.cost == (10 * 3.0) / 1e6
    spend = engine.spend_by_provider["paid"]
    assert (spend.calls, spend.input_tokens, spend.output_tokens) == (2, 2010, 300)
    assert spend.cost == first.cost + second.cost
    assert engine.spend.cost == spend.cost


async def test_free_providers_cost_nothing_but_their_tokens_are_counted(
    clock: FakeClock,
) -> None:
    engine = manager(paid_and_local(), clock)
    result = await engine.execute(CallTask(providers=frozenset({"local"})), Scripted(clock))
    assert result.cost == 0.0
    assert engine.spend_by_provider["local"].input_tokens == 100


def test_period_bounds_are_utc_days_and_months() -> None:
    moment = datetime(2024, 12, 31, 23, 59, tzinfo=UTC)
    assert period_bounds(BudgetPeriod.DAILY, moment) == (
        datetime(2024, 12, 31, tzinfo=UTC),
        datetime(2025, 1, 1, tzinfo=UTC),
    )
    assert period_bounds(BudgetPeriod.MONTHLY, moment) == (
        datetime(2024, 12, 1, tzinfo=UTC),
        datetime(2025, 1, 1, tzinfo=UTC),
    )
    assert period_bounds(BudgetPeriod.TOTAL, moment) == (None, None)


async def test_stop_raises_before_any_call_once_the_budget_is_spent(clock: FakeClock) -> None:
    engine = manager(paid_and_local(), clock, budget={"limit": 0.01, "onExhausted": "stop"})
    call = Scripted(clock, {"paid": [Reply(usage=Usage(1000, 1000))]})
    await engine.execute(TINY, call)  # estimated $0.00018, really $0.018: over the limit
    with pytest.raises(BudgetExhausted) as caught:
        await engine.execute(TINY, call)
    assert len(call.attempts) == 1
    error = caught.value
    assert (error.period, error.spent, error.limit) == ("total", 0.018, 0.01)
    assert "raise spec.budget.limit" in str(error)


async def test_local_only_continues_on_free_providers_once_spent(clock: FakeClock) -> None:
    engine = manager(paid_and_local(), clock, budget={"limit": 0.01, "onExhausted": "local-only"})
    call = Scripted(clock, {"paid": [Reply(usage=Usage(1000, 1000))]})
    await engine.execute(TINY, call)
    assert engine.plan(TINY) == ["local"]
    results = [await engine.execute(TINY, call) for _ in range(3)]
    assert {r.provider for r in results} == {"local"}
    assert engine.budget is not None and engine.budget.spent == 0.018


async def test_an_attempt_whose_estimate_does_not_fit_goes_to_a_cheaper_provider(
    clock: FakeClock,
) -> None:
    engine = manager(paid_and_local(), clock, budget={"limit": 0.02})
    call = Scripted(clock, {"paid": [Reply(usage=Usage(1000, 100))]})  # $0.0045
    await engine.execute(SMALL, call)
    result = await engine.execute(SMALL, call)  # 0.0045 + 0.018 > 0.02
    assert result.provider == "local"
    assert result.fallbacks[0].reason == SkipReason.BUDGET
    assert "$0.018000" in result.fallbacks[0].detail


async def test_no_provider_fitting_the_budget_is_budget_exhaustion(clock: FakeClock) -> None:
    engine = manager(pool(priced("paid", 3, 15)), clock, budget={"limit": 0.01})
    with pytest.raises(BudgetExhausted, match="no room"):
        await engine.execute(SMALL, Scripted(clock))


async def test_concurrent_calls_cannot_together_overspend(clock: FakeClock) -> None:
    engine = manager(paid_and_local(), clock, budget={"limit": 0.03})
    gate = asyncio.Event()

    async def call(attempt: Attempt) -> Reply:
        await gate.wait()
        return Reply(usage=Usage(1000, 1000))

    calls = [asyncio.create_task(engine.execute(SMALL, call)) for _ in range(2)]
    await asyncio.sleep(0)
    gate.set()
    providers = sorted([(await c).provider for c in calls])
    assert providers == ["local", "paid"]  # the second $0.018 did not fit beside the first


async def test_a_daily_budget_starts_over_at_midnight_utc(clock: FakeClock) -> None:
    engine = manager(paid_and_local(), clock, budget={"limit": 0.02, "period": "daily"})
    call = Scripted(clock, {"paid": [Reply(usage=Usage(1000, 1000))] * 2})
    await engine.execute(SMALL, call)
    assert (await engine.execute(SMALL, call)).provider == "local"
    clock.advance(2 * 3600)  # 22:00 -> 00:00 on the next day
    assert (await engine.execute(SMALL, call)).provider == "paid"
    assert engine.budget is not None and engine.budget.spent == 0.018
    assert engine.spend.cost == 0.036  # lifetime spend keeps counting


async def test_a_monthly_budget_starts_over_on_the_first_of_the_month(clock: FakeClock) -> None:
    engine = manager(paid_and_local(), clock, budget={"limit": 0.02, "period": "monthly"})
    call = Scripted(clock, {"paid": [Reply(usage=Usage(1000, 1000))] * 2})
    await engine.execute(SMALL, call)
    clock.advance(1800)  # still January
    assert (await engine.execute(SMALL, call)).provider == "local"
    clock.advance(5400)  # February 1st
    assert (await engine.execute(SMALL, call)).provider == "paid"


async def test_a_total_budget_never_starts_over(clock: FakeClock) -> None:
    engine = manager(paid_and_local(), clock, budget={"limit": 0.02, "period": "total"})
    await engine.execute(SMALL, Scripted(clock, {"paid": [Reply(usage=Usage(1000, 1000))]}))
    clock.advance(400 * 86400)
    assert engine.plan(SMALL) == ["paid", "local"]
    assert (await engine.execute(SMALL, Scripted(clock))).provider == "local"


async def test_spend_survives_a_checkpoint_exactly(clock: FakeClock) -> None:
    spec = paid_and_local()
    engine = manager(spec, clock, budget={"limit": 5.0, "period": "daily"})
    usages = [Usage(1234, 567), Usage(1, 3), Usage(99_999, 7)]
    await engine.execute(SMALL, Scripted(clock, {"paid": [Reply(usage=u) for u in usages[:1]]}))
    for usage in usages[1:]:
        await engine.execute(SMALL, Scripted(clock, {"paid": [Reply(usage=usage)]}))
    saved = json.loads(json.dumps(engine.snapshot()))

    restored = manager(spec, clock, budget={"limit": 5.0, "period": "daily"})
    restored.restore(saved)
    assert restored.spend == engine.spend
    assert restored.spend_by_provider == engine.spend_by_provider
    assert restored.budget is not None and engine.budget is not None
    assert restored.budget.spent == engine.budget.spent
    assert restored.current_provider == "paid"


async def test_a_checkpoint_of_an_earlier_day_does_not_count_against_today(
    clock: FakeClock,
) -> None:
    spec = paid_and_local()
    engine = manager(spec, clock, budget={"limit": 5.0, "period": "daily"})
    await engine.execute(SMALL, Scripted(clock, {"paid": [Reply(usage=Usage(1000, 1000))]}))
    saved = engine.snapshot()
    clock.advance(3 * 3600)
    restored = manager(spec, clock, budget={"limit": 5.0, "period": "daily"})
    restored.restore(saved)
    assert restored.budget is not None and restored.budget.spent == 0.0
    assert restored.spend.cost == 0.018


async def test_the_output_limit_is_lowered_so_that_the_worst_case_fits_what_is_left(
    clock: FakeClock,
) -> None:
    engine = manager(pool(priced("paid", 3, 15)), clock, budget={"limit": 0.01})
    call = Scripted(clock, {"paid": [Reply(usage=Usage(10, 600))]})
    task = CallTask(input_tokens=10, output_tokens=10, counted_input_tokens=10)
    await engine.execute(task, call)
    # $0.01 left, input $0.00003: 664 output tokens at $15 per million fit, 665 would not.
    assert call.attempts[0].max_output_tokens == 664
    assert engine.budget is not None and engine.budget.spent == (10 * 3 + 600 * 15) / 1e6
    # Now $0.00097 is left: the next call may produce 62 tokens, whatever the task asked for.
    asks_more = CallTask(input_tokens=10, output_tokens=10, max_output_tokens=2000)
    await engine.execute(asks_more, call)
    assert call.attempts[1].max_output_tokens == 62


async def test_a_limit_the_request_states_is_kept_when_the_budget_allows_it(
    clock: FakeClock,
) -> None:
    engine = manager(pool(priced("paid", 3, 15)), clock, budget={"limit": 10.0})
    call = Scripted(clock)
    await engine.execute(CallTask(input_tokens=10, max_output_tokens=300), call)
    await engine.execute(CallTask(input_tokens=10), call)
    assert [a.max_output_tokens for a in call.attempts] == [300, 4096]
    unbudgeted = manager(pool(priced("paid", 3, 15)), clock)
    await unbudgeted.execute(CallTask(input_tokens=10), call)
    assert call.attempts[2].max_output_tokens is None  # no budget: the request is unchanged


async def test_a_call_whose_input_alone_does_not_fit_is_not_made(clock: FakeClock) -> None:
    engine = manager(pool(priced("paid", 3, 15)), clock, budget={"limit": 0.001})
    call = Scripted(clock)
    # Estimated at 1 output token it "fits", but 400 input tokens ($0.0012) alone do not.
    with pytest.raises(BudgetExhausted, match="no room"):
        await engine.execute(CallTask(input_tokens=400, output_tokens=1), call)
    assert call.attempts == []


async def test_a_stated_input_estimate_below_the_prompt_size_does_not_buy_a_call(
    clock: FakeClock,
) -> None:
    engine = manager(pool(priced("paid", 3, 15)), clock, budget={"limit": 0.001})
    call = Scripted(clock)
    task = CallTask(input_tokens=1, output_tokens=1, counted_input_tokens=400)
    with pytest.raises(BudgetExhausted):
        await engine.execute(task, call)
    assert call.attempts == []


async def test_reservations_hold_the_worst_case_so_concurrent_calls_share_the_limit(
    clock: FakeClock,
) -> None:
    engine = manager(pool(priced("paid", 0, 1000)), clock, budget={"limit": 1.0})
    gate = asyncio.Event()
    limits: list[int | None] = []

    async def call(attempt: Attempt) -> Reply:
        limits.append(attempt.max_output_tokens)
        await gate.wait()
        return Reply(usage=Usage(0, attempt.max_output_tokens or 0))  # each uses it all

    task = CallTask(input_tokens=0, output_tokens=1, max_output_tokens=600)
    calls = [asyncio.create_task(engine.execute(task, call)) for _ in range(3)]
    await asyncio.sleep(0)
    gate.set()
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert limits == [600, 400]  # $1 at $0.001 a token: 600, the 400 left, then nothing
    assert isinstance(outcomes[2], BudgetExhausted)
    assert engine.budget is not None and engine.budget.spent == pytest.approx(1.0)


@pytest.mark.parametrize(
    "usage",
    [Usage(-5, 10), Usage(10, -1), Usage(10**12, 1), Usage(10, True)],  # type: ignore[arg-type]
    ids=["negative-input", "negative-output", "absurd", "not-a-number"],
)
async def test_usage_that_cannot_be_charged_is_a_malformed_answer_and_retried(
    clock: FakeClock, usage: Usage
) -> None:
    engine = manager(pool(priced("paid", 3, 15, maxRetries=1)), clock, budget={"limit": 1.0})
    call = Scripted(clock, {"paid": [Reply(usage=usage), Reply(usage=Usage(100, 10))]})
    result = await engine.execute(CallTask(input_tokens=10), call)
    assert len(call.attempts) == 2
    assert result.cost == (100 * 3 + 10 * 15) / 1e6
    assert engine.spend.cost == result.cost  # nothing refunded, nothing absurd charged
    assert engine.status()["paid"].success_rate == 0.5


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("budget", "spent"), -1.0),
        (("budget", "spent"), float("inf")),
        (("budget", "spent"), "0.5"),
        (("spend", "total", "cost"), -0.5),
        (("spend", "total", "cost"), float("nan")),
        (("spend", "total", "inputTokens"), -3),
        (("spend", "byProvider", "paid", "calls"), 1.5),
    ],
)
async def test_a_snapshot_with_a_negative_or_non_finite_figure_is_refused(
    clock: FakeClock, where: tuple[str, ...], value: object
) -> None:
    engine = manager(paid_and_local(), clock, budget={"limit": 5.0})
    await engine.execute(SMALL, Scripted(clock, {"paid": [Reply(usage=Usage(1000, 1000))]}))
    saved = json.loads(json.dumps(engine.snapshot()))
    node = saved
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    with pytest.raises(ValueError):
        manager(paid_and_local(), clock, budget={"limit": 5.0}).restore(saved)
