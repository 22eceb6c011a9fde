"""The operator's command line: flags the chart sets through the environment."""

from __future__ import annotations

import argparse

import pytest

from llmagents.operator import main as operator_main
from llmagents.operator.settings import DEFAULT_IMAGE


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(exit_on_error=False)
    operator_main.add_arguments(parser)
    return parser.parse_args(argv)


def test_runner_flags_default_to_their_environment_variables(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LLMAGENTS_IMAGE", "registry.test/runner:2")
    monkeypatch.setenv("LLMAGENTS_RUNNER_OTLP_ENDPOINT", "http://collector:4317")
    monkeypatch.setenv("LLMAGENTS_RUNNER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("LLMAGENTS_RUNNER_CA_BUNDLE_KEY", "bundle.pem")
    monkeypatch.setenv("POD_NAMESPACE", "ops")
    args = _parse([])
    assert args.image == "registry.test/runner:2"
    assert args.runner_otlp_endpoint == "http://collector:4317"
    assert args.runner_otlp_protocol == "grpc"
    assert args.runner_ca_bundle_key == "bundle.pem"
    assert args.lease_namespace == "ops"
    assert _parse(["--runner-otlp-protocol", "http/protobuf"]).runner_otlp_protocol == (
        "http/protobuf"
    )


def test_an_empty_or_unset_variable_leaves_the_flag_s_default(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LLMAGENTS_RUNNER_OTLP_ENDPOINT", "")
    monkeypatch.setenv("LLMAGENTS_RUNNER_CA_BUNDLE_KEY", "")
    monkeypatch.delenv("LLMAGENTS_IMAGE", raising=False)
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    args = _parse([])
    assert args.runner_otlp_endpoint is None
    assert args.runner_ca_bundle_key == "ca.crt"
    assert args.image == DEFAULT_IMAGE
    assert args.lease_namespace == "default"


def test_each_environment_flag_names_its_variable_in_the_help():
    parser = argparse.ArgumentParser()
    operator_main.add_arguments(parser)
    text = " ".join(parser.format_help().split())
    for variable in ("LLMAGENTS_IMAGE", "LLMAGENTS_RUNNER_OTLP_ENDPOINT",
                     "LLMAGENTS_RUNNER_OTLP_PROTOCOL", "LLMAGENTS_RUNNER_OTEL_SERVICE_NAME",
                     "LLMAGENTS_RUNNER_OTEL_RESOURCE_ATTRIBUTES",
                     "LLMAGENTS_RUNNER_CA_BUNDLE_CONFIG_MAP", "LLMAGENTS_RUNNER_CA_BUNDLE_KEY",
                     "POD_NAMESPACE"):  # fmt: skip
        assert f"(env {variable}" in text
