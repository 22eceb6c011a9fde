"""Every link between the repository's documents resolves, anchors included, and every
repository path a document names in backticks exists.

A renamed heading or a moved module otherwise leaves a dead link or a stale pointer that
nothing notices. Anchors follow GitHub's rule: lower case, punctuation other than ``-`` and
``_`` dropped, spaces to ``-``, and ``-1``, ``-2``... for repeated headings.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOCUMENTS = sorted(
    p
    for pattern in ("*.md", "docs/**/*.md", "charts/**/*.md", "bench/**/*.md", "hack/**/*.md")
    for p in ROOT.glob(pattern)
)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
_CODE = re.compile(r"`[^`]*`")
_FENCE = re.compile(r"^\s*(```|~~~)")
# A path in backticks that starts at a top-level directory of the repository.
_TOP = ("llmagents/", "tests/", "tooling/", "bench/", "hack/", "charts/", "docs/", "examples/")
_PATH = re.compile("`((?:" + "|".join(map(re.escape, _TOP)) + r")[\w./-]*\w)`")


def _prose(path: Path) -> list[str]:
    """The document's lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in path.read_text().splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: Counter[str] = Counter()
    found = set()
    for line in _prose(path):
        if match := _HEADING.match(line):
            base = slug(match.group(1))
            found.add(f"{base}-{seen[base]}" if seen[base] else base)
            seen[base] += 1
    return found


def test_slugs_follow_githubs_rule() -> None:
    assert slug("What `kubectl describe` shows after two providers failed") == (
        "what-kubectl-describe-shows-after-two-providers-failed"
    )
    assert slug("Reasoning and thinking") == "reasoning-and-thinking"
    assert slug("Budget: a hard cap (UTC periods)") == "budget-a-hard-cap-utc-periods"


def test_documents_are_found() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in DOCUMENTS}
    assert {"README.md", "docs/gateway.md", "charts/llmagents/README.md"} <= names


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_and_anchor_resolves(path: Path) -> None:
    broken = []
    for line in _prose(path):
        for target in _LINK.findall(_CODE.sub("", line)):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto: not checked here
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            if not dest.exists():
                broken.append(target)
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(target)
    assert not broken, f"{path.name}: dead links {broken}"


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_repository_path_named_in_backticks_exists(path: Path) -> None:
    missing = sorted(
        {
            name
            for line in _prose(path)
            for name in _PATH.findall(line)
            if "*" not in name and not (ROOT / name).exists()
        }
    )
    assert not missing, f"{path.name} names paths that do not exist: {missing}"


def _tests_defined() -> set[str]:
    names = set()
    for path in [*ROOT.glob("tests/**/*.py"), *ROOT.glob("bench/**/*.py")]:
        names.add(path.stem)
        names.update(re.findall(r"^\s*(?:async\s+)?def (test_\w+)", path.read_text(), re.M))
    return names


def test_every_test_a_document_names_exists() -> None:
    defined = _tests_defined()
    named = {
        (path.relative_to(ROOT).as_posix(), name)
        for path in DOCUMENTS
        for name in re.findall(r"\btest_\w+", path.read_text())
    }
    missing = sorted((where, name) for where, name in named if name not in defined)
    assert not missing, f"documents name tests that do not exist: {missing}"
