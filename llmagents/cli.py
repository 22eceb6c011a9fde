"""The ``llmagents`` command: one entry point for every process the project runs.

The image's entrypoint is ``llmagents``; a pod picks its role with the first argument
(``operator``, ``runner``, ``onnx-server``). Subcommands are imported only when chosen, so
``llmagents runner`` never pays for kopf's import and the reverse.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# name -> (module, help). Each module defines ``add_arguments(parser)`` and ``main(args) -> int``.
COMMANDS: dict[str, tuple[str, str]] = {
    "fake-provider": (
        "llmagents.testing.fake_providers.cli",
        "run a fake model provider that injects faults, to rehearse fallback settings",
    ),
    "crds": ("llmagents.api.crd", "write the CRD manifests generated from the API models"),
    "operator": (
        "llmagents.operator.main",
        "run the operator that turns LLMAgents into runner pods",
    ),
    "onnx-convert": ("llmagents.onnx.convert", "convert a GGUF Llama model for the ONNX sidecar"),
    "onnx-server": ("llmagents.onnx.main", "serve a local ONNX model behind OpenAI's chat API"),
    "runner": ("llmagents.runner.main", "run an agent's runner: its task list or its gateway"),
    "run": ("llmagents.local_run", "run a manifest's agent on this machine, without Kubernetes"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmagents", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--log-level", default="INFO", help="Logging level (DEBUG, INFO, WARNING, ERROR)."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in sorted(COMMANDS.items()):
        command = sub.add_parser(name, help=help_text, description=help_text)
        module = importlib.import_module(module_name) if _wants(name) else None
        if module is not None:
            module.add_arguments(command)
        command.set_defaults(_module=module_name)
    return parser


def _wants(name: str) -> bool:
    """Import a subcommand's module only when it is the one being run."""
    return name in sys.argv[1:]


def main(argv: Sequence[str] | None = None) -> int:
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    args = build_parser().parse_args()
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    module = importlib.import_module(args._module)
    return int(module.main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
