"""README's first screen: what llmagents is, the two commands, and a `kubectl get llmagents`
whose columns are the CRD's printer columns (a renamed or added column shows up here)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from llmagents.api.status import Phase

ROOT = Path(__file__).resolve().parents[3]
README = (ROOT / "README.md").read_text()
FIRST_SCREEN = "\n".join(README.splitlines()[:40])


def _columns(crd: str, *, wide: bool = False) -> list[str]:
    version = yaml.safe_load((ROOT / "crds" / crd).read_text())["spec"]["versions"][0]
    return ["NAME"] + [
        c["name"].upper()
        for c in version["additionalPrinterColumns"]
        if wide or c.get("priority", 0) == 0
    ]


def _sample(command: str) -> list[list[str]]:
    block = re.search(rf"\$ {re.escape(command)}[^\n]*\n(.*?)```", README, re.S)
    assert block, f"README shows no `{command}`"
    return [re.split(r"\s{2,}", line.strip()) for line in block.group(1).strip().splitlines()]


def test_the_first_screen_says_what_it_is_and_shows_the_two_commands_and_the_table() -> None:
    assert "Kubernetes operator" in FIRST_SCREEN
    assert "$ make demo" in FIRST_SCREEN and "$ make test" in FIRST_SCREEN
    assert "$ kubectl get llmagents" in FIRST_SCREEN


def test_the_kubectl_get_llmagents_sample_has_the_crds_columns() -> None:
    header, *rows = _sample("kubectl get llmagents")
    assert header == _columns("llmagents.dev_llmagents.yaml")
    assert rows and all(row[1] in set(Phase) for row in rows)
