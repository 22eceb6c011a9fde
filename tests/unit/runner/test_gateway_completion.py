"""A gateway agent says its work is done: durable before the answer, and never paid twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from llmagents.api.status import AgentCompletion, RunnerPhase
from llmagents.runner.checkpoint import (
    Checkpoint,
    CheckpointCorrupt,
    Encoded,
    StoreUnavailable,
    decode,
    encode,
)
from llmagents.runner.checkpoint_store import FileCheckpointStore
from llmagents.runner.gateway import Gateway
from llmagents.runner.lifecycle import Runner

from .conftest import Edges, Fakes, config, serving

DIGEST = "0123456789abcdef"
ASK = {"model": "auto", "messages": [{"role": "user", "content": "Name a colour"}]}


class _BreakableStore(FileCheckpointStore):
    """A file store whose writes fail while ``broken``, as an unreachable API server's do."""

    broken = False

    async def write(self, encoded: Encoded, *, epoch: int, expected_version: str) -> str:
        if self.broken:
            raise StoreUnavailable("the API server is unreachable (test)")
        return await super().write(encoded, epoch=epoch, expected_version=expected_version)


async def _serve(runner: Runner) -> tuple[Gateway, str]:
    """Runner and gateway started, for a test that ends them as a killed pod would."""
    await runner.start()
    gateway = Gateway(runner)
    await gateway.start("127.0.0.1", 0)
    return gateway, f"http://127.0.0.1:{gateway.port}/v1"


@pytest.fixture
async def served(fakes: Fakes, edges: Edges) -> AsyncIterator[tuple[Runner, str]]:
    runner = edges.runner(config(fakes, tasks=None, agentDigest=DIGEST))
    async with serving(runner) as origin:
        yield runner, f"{origin}/v1"


async def test_completion_is_checkpointed_before_the_answer_and_ends_paid_calls(
    served: tuple[Runner, str], edges: Edges
) -> None:
    runner, url = served
    async with httpx.AsyncClient() as http:
        assert (await http.post(f"{url}/chat/completions", json=ASK)).status_code == 200
        done = await http.post(f"{url}/agent/complete", json={"summary": "wrote the report"})
        assert done.status_code == 200, done.text
        assert done.json()["completed"] is True
        # Durable before the answer: the stored checkpoint already holds it.
        stored = (await edges.store.read()).checkpoint
        assert stored is not None and stored.completion is not None
        assert (stored.completion.summary, stored.completion.agent_digest) == (
            "wrote the report", DIGEST)  # fmt: skip
        refused = await http.post(f"{url}/chat/completions", json=ASK)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "agent_stopped"
        again = await http.post(f"{url}/agent/complete", json={"summary": "other"})
        assert again.status_code == 200
        assert again.json() == done.json()  # the first report counts
    assert runner.engine.manager.spend_by_provider["primary"].calls == 1
    assert runner.phase is RunnerPhase.COMPLETED
    await runner.reporter.flush(5)
    report = edges.status.latest
    assert report is not None
    assert report.status.runner_phase is RunnerPhase.COMPLETED
    assert report.status.completion == stored.completion
    assert report.status.cost is not None and report.status.cost.total_usd > 0
    assert report.status.message == "the agent reported its work done: wrote the report"


async def test_a_restarted_runner_keeps_the_completion_and_serves_nothing_paid(
    fakes: Fakes, edges: Edges
) -> None:
    first = edges.runner(config(fakes, tasks=None, agentDigest=DIGEST))
    gateway, url = await _serve(first)
    async with httpx.AsyncClient() as http:
        assert (await http.post(f"{url}/chat/completions", json=ASK)).status_code == 200
        assert (await http.post(f"{url}/agent/complete")).status_code == 200  # no body
    # Killed right after the answer: nothing of the shutdown's final save.
    await gateway.stop()
    await first.close()
    spent = first.engine.manager.spend.cost

    successor = edges.runner(config(fakes, tasks=None, agentDigest=DIGEST))
    async with serving(successor) as origin:
        url = f"{origin}/v1"
        assert successor.phase is RunnerPhase.COMPLETED and not successor.accepting
        async with httpx.AsyncClient() as http:
            assert (await http.post(f"{url}/chat/completions", json=ASK)).status_code == 503
            assert (await http.post(f"{url}/embeddings",
                                    json={"model": "x", "input": "a"})).status_code == 503  # fmt: skip
        assert successor.engine.manager.spend.cost == pytest.approx(spent)
        assert successor.engine.manager.spend_by_provider["primary"].calls == 1
        await successor.reporter.flush(5)
        assert edges.status.latest.status.completion is not None


async def test_a_changed_agent_container_is_served_again(fakes: Fakes, edges: Edges) -> None:
    first = edges.runner(config(fakes, tasks=None, agentDigest=DIGEST))
    first.started_at = datetime(2030, 1, 1, tzinfo=UTC)
    await first.start()
    first.complete("done")
    assert await first.checkpointer.save(5)
    await first.shutdown(5)

    changed = edges.runner(config(fakes, tasks=None, agentDigest="fedcba9876543210"))
    await changed.start()
    try:
        assert changed.phase is RunnerPhase.RUNNING and changed.completion is None
        assert changed.engine.manager.spend_by_provider == first.engine.manager.spend_by_provider
    finally:
        await changed.shutdown(5)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b'{"summary": "ok", "result": 1}', 400),  # unknown field
        (b'{"summary": 42}', 400),
        (b'{"summary": "' + b"x" * 1025 + b'"}', 400),
        (b"[]", 400),
        (b"not json", 400),
        (b'{"summary": "' + b"x" * 20_000 + b'"}', 413),
    ],
)
async def test_a_bad_completion_report_is_refused_and_completes_nothing(
    served: tuple[Runner, str], body: bytes, status: int
) -> None:
    runner, url = served
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"{url}/agent/complete", content=body,
                                 headers={"content-type": "application/json"})  # fmt: skip
        assert answer.status_code == status
        assert answer.json()["error"]["type"] == "invalid_request_error"
        assert runner.completion is None and runner.accepting
        assert (await http.post(f"{url}/chat/completions", json=ASK)).status_code == 200


async def test_a_completion_not_yet_saved_is_a_503_and_the_retry_confirms_it(
    fakes: Fakes, edges: Edges, tmp_path
) -> None:
    edges.store = _BreakableStore(tmp_path / "breakable.json")
    runner = edges.runner(config(fakes, tasks=None, agentDigest=DIGEST))
    async with serving(runner) as origin:
        url = f"{origin}/v1"
        edges.store.broken = True
        async with httpx.AsyncClient(timeout=30) as http:
            unsaved = await http.post(f"{url}/agent/complete", json={"summary": "s"})
            assert unsaved.status_code == 503
            assert unsaved.json()["error"]["code"] == "completion_not_saved"
            # Not saved, but already no paid call.
            assert (await http.post(f"{url}/chat/completions", json=ASK)).status_code == 503
            edges.store.broken = False
            saved = await http.post(f"{url}/agent/complete", json={"summary": "s"})
            assert saved.status_code == 200
        assert (await edges.store.read()).checkpoint.completion.summary == "s"


def _checkpoint(completion: AgentCompletion | None) -> Checkpoint:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    return Checkpoint(agent_uid="u", epoch=1, sequence=1, written_at=now, started_at=now,
                      engine={}, completion=completion)  # fmt: skip


def test_the_completion_survives_encoding_and_a_bad_one_is_corrupt() -> None:
    completion = AgentCompletion(completed_at=datetime(2030, 1, 1, 1, tzinfo=UTC),
                                 summary="all done", agent_digest=DIGEST)  # fmt: skip
    encoded = encode(_checkpoint(completion))
    assert decode(encoded.payload, compressed=False).completion == completion
    assert decode(encode(_checkpoint(None)).payload, compressed=False).completion is None
    document = _checkpoint(completion).to_dict()
    document["completion"] = {"completedAt": "yesterday", "agentDigest": DIGEST}
    with pytest.raises(CheckpointCorrupt, match=r"completion\.completedAt"):
        Checkpoint.from_dict(document)
