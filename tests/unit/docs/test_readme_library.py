"""README's "The engine as a library" runs as printed: its snippet, against fake providers
(the first in an outage), falls back to the second and prints what the engine returned."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import yaml

from llmagents.testing.fake_providers import FakeAnthropic, FakeOpenAI
from llmagents.testing.fake_providers.faults import FaultPlan

README = (Path(__file__).resolve().parents[3] / "README.md").read_text()


def _snippet() -> str:
    match = re.search(r"## The engine as a library.*?```python\n(.*?)```", README, re.S)
    assert match, "README lost its library snippet"
    return match.group(1)


async def test_the_library_snippet_falls_back_and_prints_the_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _snippet()
    imports = [line for line in code.splitlines() if line.startswith(("import ", "from "))]
    body = [line for line in code.splitlines() if line not in imports]
    module = (
        "\n".join(imports) + "\n\nasync def main():\n" + textwrap.indent("\n".join(body), "    ")
    )
    async with (
        FakeAnthropic(api_key="ant", faults=FaultPlan(outage=True)) as claude,
        FakeOpenAI(api_key="oai") as gpt,
    ):
        pool = {
            "providers": [
                {"name": "claude", "type": "anthropic", "model": "claude-sonnet-4-5",
                 "baseURL": claude.base_url, "secretRef": {"name": "k", "key": "a"},
                 "maxRetries": 0,  # straight to the fallback, no backoff to wait out
                 "pricing": {"inputPerMillion": 3, "outputPerMillion": 15}},
                {"name": "gpt", "type": "openai", "model": "gpt-4o-mini",
                 "baseURL": gpt.base_url, "secretRef": {"name": "k", "key": "o"},
                 "pricing": {"inputPerMillion": 0.15, "outputPerMillion": 0.6}},
            ],
        }  # fmt: skip
        (tmp_path / "pool.yaml").write_text(yaml.safe_dump(pool))
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "ant")
        monkeypatch.setenv("OPENAI_API_KEY", "oai")
        namespace: dict[str, object] = {}
        exec(compile(module, "README.md", "exec"), namespace)
        await namespace["main"]()  # type: ignore[operator]
    provider, cost, reasons = capsys.readouterr().out.split(" ", 2)
    assert provider == "gpt" and float(cost) > 0
    assert "server_error" in reasons
