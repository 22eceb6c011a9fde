"""Task mode with a ``responseFormat``: an answer counts only once it is JSON of the schema."""

from __future__ import annotations

import asyncio
import json

import pytest
from pydantic import ValidationError

from llmagents.api.work import TaskSpec
from llmagents.chat import ChatResponse, ResponseFormatType, Usage
from llmagents.routing import CallTask
from llmagents.runner.tasks import LoopEnd, answer_check, task_request

from .conftest import Edges, Fakes, config
from .test_task_mode import results, run

SCHEMA = {
    "type": "object",
    "properties": {
        "colour": {"type": "string", "enum": ["red", "green", "blue"]},
        "count": {"type": "integer", "minimum": 1},
    },
    "required": ["colour", "count"],
    "additionalProperties": False,
}
TASK = {
    "name": "pick",
    "prompt": "Pick a colour and a count.",
    "responseFormat": {"schema": SCHEMA, "strict": True},
}


def test_the_task_asks_providers_for_json_of_its_schema() -> None:
    request = task_request(TaskSpec.model_validate(TASK))
    form = request.response_format
    assert form is not None and form.type is ResponseFormatType.JSON_SCHEMA
    assert (form.schema, form.name, form.strict) == (SCHEMA, "pick", True)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('{"colour": "red", "count": 2}', None),
        ("Red, twice.", "is not the JSON"),
        ('{"colour": "red"}', "at (root): 'count' is a required property"),
        ('{"colour": "mauve", "count": 2}', "at colour: 'mauve' is not one of"),
        ('{"colour": "red", "count": 0}', "at count: 0 is less than the minimum of 1"),
    ],
)
def test_answers_are_checked_against_the_schema(text: str, why: str | None) -> None:
    check = answer_check(TaskSpec.model_validate(TASK).response_format)  # type: ignore[arg-type]
    reason = check(ChatResponse(text, Usage(1, 1), "m"))
    assert reason is None if why is None else why in (reason or "")


def test_a_schema_that_is_no_json_schema_is_refused_in_the_spec() -> None:
    with pytest.raises(ValidationError, match="not a valid JSON Schema at properties/a/type"):
        TaskSpec.model_validate(
            {
                **TASK,
                "responseFormat": {
                    "schema": {"type": "object", "properties": {"a": {"type": "integer-ish"}}}
                },
            }
        )


async def test_a_task_no_provider_answers_in_its_format_fails_clearly_and_pays_every_answer(
    fakes: Fakes, edges: Edges
) -> None:
    # The fakes answer JSON for a schema, but not one that follows every keyword: their
    # count is the minimum, 1, never a multiple of 7, so every answer is rejected.
    strict_count = {
        **SCHEMA,
        "properties": {
            **SCHEMA["properties"],
            "count": {"type": "integer", "minimum": 1, "multipleOf": 7},
        },
    }
    task = {**TASK, "responseFormat": {"schema": strict_count, "strict": True}}
    runner = edges.runner(config(fakes, tasks=[task]))
    assert await run(runner) is LoopEnd.FINISHED

    error = runner.progress.failed["pick"]
    assert "responseFormat" in error and "primary" in error and "fallback" in error
    assert results(edges)["pick"]["ok"] is False
    # Two rounds (conftest's one retry delay), each asking both providers.
    assert fakes.primary.stats.requests == 2 and fakes.fallback.stats.requests == 2
    spend = runner.engine.manager.spend_by_provider
    assert spend["primary"].output_tokens > 0 and spend["fallback"].output_tokens > 0
    assert edges.status.latest.status.cost.total_usd == pytest.approx(
        runner.engine.manager.spend.cost
    )
    assert json.loads(edges.results.path.read_text().splitlines()[0])["task"] == "pick"


async def test_a_task_answered_in_its_format_is_done_with_the_json_as_its_result(
    fakes: Fakes, edges: Edges
) -> None:
    runner = edges.runner(config(fakes, tasks=[TASK]))
    assert await run(runner) is LoopEnd.FINISHED

    assert runner.progress.completed == ["pick"]
    stored = results(edges)["pick"]
    assert stored["ok"] is True and stored["provider"] == "primary"
    answer = json.loads(stored["text"])
    assert answer["colour"] in ("red", "green", "blue") and answer["count"] >= 1


async def test_a_rejected_answer_is_charged_and_the_next_provider_asked(
    fakes: Fakes, edges: Edges
) -> None:
    runner = edges.runner(config(fakes, tasks=None))
    await runner.start()
    try:
        spec = TaskSpec.model_validate(TASK)
        # Reject whatever the primary's model says: the engine must fall back.
        result = await runner.engine.complete(
            task_request(spec),
            CallTask.from_spec(spec),
            check=lambda answer: "not from gpt-4o-mini" if answer.model == "gpt-4o-mini" else None,
        )
    finally:
        await runner.shutdown(5)
    assert result.provider == "fallback"
    assert [(f.from_provider, f.to_provider) for f in result.fallbacks] == [("primary", "fallback")]
    spend = runner.engine.manager.spend_by_provider
    assert spend["primary"].output_tokens > 0 and spend["primary"].cost > 0
    assert runner.engine.manager.status()["primary"].success_rate == 0.0


async def test_a_provider_without_json_schema_is_skipped_and_a_pool_with_none_fails_at_once(
    fakes: Fakes, edges: Edges
) -> None:
    no_schema = {"capabilities": {"jsonSchema": False}}
    cfg = config(fakes, tasks=[TASK])
    primary = cfg.pool.providers[0].model_validate({**cfg.pool.providers[0].to_wire(), **no_schema})
    pool = cfg.pool.model_copy(update={"providers": [primary, *cfg.pool.providers[1:]]})
    runner = edges.runner(cfg.model_copy(update={"pool": pool}))
    assert await run(runner) is LoopEnd.FINISHED
    assert results(edges)["pick"]["provider"] == "fallback"
    assert fakes.primary.stats.requests == 0
    assert not runner.engine.manager.status()["primary"].misconfigured

    edges.results.path.unlink()
    both = [p.model_validate({**p.to_wire(), **no_schema}) for p in cfg.pool.providers]
    cfg = config(fakes, tasks=[{**TASK, "name": "again"}])
    cfg = cfg.model_copy(update={"pool": cfg.pool.model_copy(update={"providers": both})})
    runner = edges.runner(cfg, task_retry_delays=(60.0,))
    async with asyncio.timeout(10):  # at once: no retry round waits for a capability
        assert await run(runner) is LoopEnd.FINISHED
    assert "jsonSchema" in runner.progress.failed["again"]
    assert fakes.fallback.stats.requests == 1  # only the first test's call
