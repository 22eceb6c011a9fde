"""The commands the documents show exist as shown: every `make` target is one the Makefile
defines, and every flag given to an `llmagents` subcommand is one that subcommand takes."""

from __future__ import annotations

import argparse
import importlib
import re
from pathlib import Path

import pytest

from llmagents.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[3]
DOCUMENTS = sorted(
    [ROOT / "README.md", ROOT / "charts/llmagents/README.md", ROOT / "bench/README.md"]
    + [p for p in (ROOT / "docs").rglob("*.md") if p.name != "reference.md"]
    + list((ROOT / "examples").glob("*.yaml"))
)
_MAKE = re.compile(r"`(?:[A-Z_]+=\S+ )*make ([a-z][\w-]*)|^\$ (?:[A-Z_]+=\S+ )*make ([a-z][\w-]*)")
_COMMAND = re.compile(r"\bllmagents (" + "|".join(COMMANDS) + r")\b((?:[^`|\n]|\\\n)*)")
_FLAG = re.compile(r"(?:^|\s)(--?[a-zA-Z][\w-]*)")


def _targets() -> set[str]:
    makefiles = [ROOT / "Makefile", *(ROOT / "mk").glob("*.mk")]
    return {
        target
        for path in makefiles
        for target in re.findall(r"^([a-z][\w-]*)\s*:(?!=)", path.read_text(), re.M)
    }


def _flags(command: str) -> set[str]:
    parser = argparse.ArgumentParser(prog=f"llmagents {command}")
    importlib.import_module(COMMANDS[command][0]).add_arguments(parser)
    return {option for action in parser._actions for option in action.option_strings}


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_make_target_a_document_shows_exists(path: Path) -> None:
    shown: set[str] = set()
    for line in path.read_text().splitlines():
        shown |= {a or b for a, b in _MAKE.findall(line)}
    missing = sorted(shown - _targets())
    assert not missing, f"{path.name} shows make targets that do not exist: {missing}"


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_llmagents_flag_a_document_shows_is_taken_by_its_subcommand(path: Path) -> None:
    wrong = set()
    for command, rest in _COMMAND.findall(path.read_text()):
        taken = _flags(command) | {"-h", "--help"}
        wrong |= {(command, flag) for flag in _FLAG.findall(rest) if flag not in taken}
    assert not wrong, f"{path.name} gives subcommands flags they do not take: {sorted(wrong)}"
