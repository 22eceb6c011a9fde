"""docs/reference.md is generated from the API models, like the CRDs, and must not drift."""

from __future__ import annotations

from pathlib import Path

from llmagents.api.reference import main, render

ROOT = Path(__file__).resolve().parents[3]


def test_the_api_reference_in_docs_is_current() -> None:
    assert main(["--check", "--out", str(ROOT / "docs/reference.md")]) == 0, "run `make crds`"


def test_the_reference_documents_every_printer_column_and_cel_message() -> None:
    text = render()
    for column in ("PHASE", "PROVIDER", "HEALTHY", "COST", "BUDGET", "TASKS", "OPEN-BREAKERS"):
        assert f"| {column}" in text
    assert "### `ProviderPool.spec.providers`" in text
    assert "need a secretRef naming the Secret key" in text


def test_a_stale_reference_is_reported(tmp_path: Path) -> None:
    stale = tmp_path / "reference.md"
    stale.write_text(render().replace("ProviderPool", "ProviderPal", 1))
    assert main(["--check", "--out", str(stale)]) == 1
