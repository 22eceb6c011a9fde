"""Exported metrics, and API keys kept out of everything the runner writes."""

from __future__ import annotations

import json
import logging

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from llmagents.api.pool import SecretKeyRef
from llmagents.errors import ConfigError
from llmagents.providers import check_api_key
from llmagents.runner.lifecycle import Runner
from llmagents.runner.metrics import METRIC_NAMES
from llmagents.runner.secrets import Redactor, api_keys, install_log_redaction

from .conftest import KEYS, PRIMARY_KEY, Edges, Fakes, config
from .test_task_mode import run


def exported(text: str) -> dict[str, list]:
    families = {}
    for family in text_string_to_metric_families(text):
        if family.name.endswith("_created"):  # creation times, not metrics of their own
            continue
        name = family.name + ("_total" if family.type == "counter" else "")
        families[name] = family.samples
    return families


async def test_a_run_exports_every_listed_metric_and_nothing_else(
    fakes: Fakes, edges: Edges
) -> None:
    fakes.primary.core.update({"outage": True})
    runner = edges.runner(config(fakes, tasks=3, budget={"limit": 100}))
    await run(runner)
    runner.metrics.stream_failed("primary", "connection_failed")
    runner.metrics.gateway_request(stream=True, code=200)
    runner.metrics.checkpoint_failed("unavailable")
    runner.metrics.status_write_failed()
    families = exported(generate_latest(runner.metrics.registry).decode())

    assert set(families) == METRIC_NAMES

    def value(name: str, **labels: str) -> float:
        return sum(s.value for s in families[name] if labels.items() <= s.labels.items())

    assert value("llmagents_requests_total", provider="fallback", outcome="ok") == 3
    assert value("llmagents_provider_failures_total", provider="primary",
                 reason="server_error") == 2  # fmt: skip
    assert value("llmagents_fallbacks_total", from_provider="primary",
                 to_provider="fallback") == 3  # fmt: skip
    assert value("llmagents_tasks_total", outcome="done") == 3
    assert value("llmagents_breaker_state", provider="primary") == 2
    spend = runner.engine.manager.spend
    assert value("llmagents_cost_usd_total") == pytest.approx(spend.cost)
    assert value("llmagents_tokens_total", direction="output") == spend.output_tokens
    assert value("llmagents_budget_remaining_usd") == pytest.approx(100 - spend.cost)
    assert 0 <= value("llmagents_checkpoint_age_seconds") < 60
    assert value("llmagents_checkpoint_size_bytes") > 0
    assert all(s.labels.get("agent") == "agent-a" for samples in families.values()
               for s in samples)  # fmt: skip


def test_api_keys_lose_the_newline_a_hand_made_secret_carries(fakes: Fakes) -> None:
    keys = api_keys(config(fakes), {"KEY_PRIMARY": "sk-primary-123\n", "KEY_FALLBACK": " \n"})
    assert keys == {"primary": "sk-primary-123", "fallback": None}


def test_the_redactor_removes_every_known_key_and_keeps_other_text() -> None:
    redact = Redactor(["sk-live-abcdef", "sk-live-abcdef-longer", None, "abc"])
    assert redact("keys sk-live-abcdef-longer and sk-live-abcdef, abc") == (
        "keys [redacted] and [redacted], abc"
    )


def test_log_redaction_cleans_messages_arguments_and_exceptions(
    caplog: pytest.LogCaptureFixture,
) -> None:
    factory = logging.getLogRecordFactory()
    install_log_redaction(Redactor(["sk-planted-999999"]))
    try:
        log = logging.getLogger("llmagents.test")
        with caplog.at_level(logging.INFO):
            log.info("key is %s", "sk-planted-999999")
            try:
                raise RuntimeError("provider said sk-planted-999999")
            except RuntimeError:
                log.exception("call failed")
        text = caplog.text + "".join(r.getMessage() for r in caplog.records)
        assert "sk-planted" not in text
        assert text.count("[redacted]") >= 2
    finally:
        logging.setLogRecordFactory(factory)


async def test_a_planted_key_never_reaches_status_checkpoint_results_or_metrics(
    fakes: Fakes, edges: Edges
) -> None:
    fakes.primary.core.update({"script": ["401", "500"]})
    runner = edges.runner(config(fakes, tasks=2))
    await run(runner)
    assert runner.engine.manager.status()["primary"].misconfigured  # the key was refused
    written = [json.dumps(r.status.to_wire()) for r in edges.status.written]
    stored = edges.store.path.read_text() + edges.results.path.read_text()
    metrics = generate_latest(runner.metrics.registry).decode()
    for text in (*written, stored, metrics):
        assert PRIMARY_KEY not in text


BOM_KEY = "\ufeff" + PRIMARY_KEY


async def test_a_key_with_a_byte_order_mark_is_refused_naming_secret_and_key_never_the_value(
    fakes: Fakes, edges: Edges
) -> None:
    # A Secret made from a file saved "UTF-8 with BOM" carries U+FEFF before the key. It cannot
    # go in a header; before, the failed encoding's repr (the whole request head, escaped so
    # that the redactor missed it) landed in the LLMAgent status in clear.
    with pytest.raises(ConfigError) as refused:
        Runner(config(fakes, tasks=2), api_keys={**KEYS, "primary": BOM_KEY},
               store=edges.store, status_sink=edges.status, results=edges.results)  # fmt: skip
    message = str(refused.value)
    assert "Secret 'keys'" in message and "key 'apiKey'" in message and "U+FEFF" in message
    assert PRIMARY_KEY not in message and PRIMARY_KEY[3:12] not in message
    assert not edges.status.written


@pytest.mark.parametrize(
    "bad", ["sk-abc\x00def0", "sk-abc\rdef0", "sk-abc\ndef0", "sk-\u00e9abcdef", "sk-abc def0",
            "sk-abc\x7fdef0"],
)  # fmt: skip
def test_every_character_that_cannot_go_in_a_header_is_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="cannot go in an HTTP header") as refused:
        check_api_key(bad, provider="p", secret_ref=SecretKeyRef(name="s", key="k"))
    assert bad not in str(refused.value) and "abc" not in str(refused.value)


def test_the_redactor_also_removes_a_key_written_escaped_by_repr() -> None:
    redact = Redactor([BOM_KEY])
    error = UnicodeEncodeError("latin-1", f"authorization: Bearer {BOM_KEY}", 22, 23, "no")
    assert PRIMARY_KEY not in redact(repr(error))
    assert PRIMARY_KEY not in redact(f"{BOM_KEY!a} {BOM_KEY!r}")


async def test_a_task_loop_failure_shows_type_and_message_in_status_never_a_repr(
    fakes: Fakes, edges: Edges, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = edges.runner(config(fakes, tasks=1))

    class Leaky(Exception):
        def __str__(self) -> str:
            return "the request could not be encoded"

        def __repr__(self) -> str:
            return f"Leaky(headers={{'authorization': 'Bearer {PRIMARY_KEY}'}})"

    async def explode(*_: object, **__: object) -> None:
        raise Leaky()

    monkeypatch.setattr("llmagents.runner.tasks.TaskLoop.run", explode)
    with pytest.raises(Leaky):
        await runner.run_tasks()
    assert runner.message == "task loop failed: Leaky: the request could not be encoded"
