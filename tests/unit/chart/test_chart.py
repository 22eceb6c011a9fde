"""The chart through the real ``helm``: lint, schema, and what each values set renders.

Rendering is checked by value here; tests/cluster/test_chart_install.py sends the same renders to
a real API server (server-side dry run) and installs the chart.
"""

from __future__ import annotations

import argparse
import json
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_tool import (
    CHART,
    KUBE_VERSION,
    NAMESPACE,
    REPO,
    VALUE_SETS,
    by_kind,
    is_test_hook,
    one,
    render,
    require_helm,
    run_helm,
    set_args,
    template,
)

from llmagents.operator import main as operator_main
from llmagents.operator.rbac import operator_rules, runner_rules
from llmagents.runner import otel

RULES = CHART / "prometheus_rules"


@pytest.fixture(scope="module")
def helm() -> str:
    return require_helm()


@pytest.fixture(scope="module")
def rendered(helm: str) -> dict[str, list[dict[str, Any]]]:
    return {name: render(helm, values) for name, values in VALUE_SETS.items()}


@pytest.mark.parametrize("name", VALUE_SETS)
def test_helm_lint_passes_strictly(helm: str, name: str):
    result = run_helm(
        helm, "lint", "--strict", str(CHART), "--namespace", NAMESPACE,
        "--kube-version", KUBE_VERSION,
        *set_args(VALUE_SETS[name]), check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("operator.replica", 2),  # misspelled
        ("metrics.serviceMonitor.intervall", "30s"),  # misspelled
        ("image.pullPolicy", "Sometimes"),
        ("metrics.prometheusRule.excludeRules", ["LLMAgentDoesNotExist"]),
        ("operator.logFormat", "xml"),
        ("runner.tracing.otlpProtocol", "http/json"),  # no exporter for it in the runner
        ("runner.caBundle.configMap", "Not_A_Name"),
        ("runner.caBundle.keys", "ca.crt"),  # misspelled
    ],
)
def test_the_schema_rejects_a_wrong_value(helm: str, key: str, value: Any):
    result = template(helm, {key: value}, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr


def _crds(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in by_kind(docs, "CustomResourceDefinition")}


def test_the_crds_rendered_are_the_generated_files_plus_labels_and_keep(rendered):
    crds = _crds(rendered["defaults"])
    generated = {
        doc["metadata"]["name"]: doc
        for path in sorted((REPO / "crds").glob("*.yaml"))
        for doc in [yaml.safe_load(path.read_text())]
    }
    assert (
        set(crds)
        == set(generated)
        == {
            "llmagents.llmagents.dev",
            "providerpools.llmagents.dev",
        }
    )
    for name, crd in crds.items():
        meta = crd.pop("metadata")
        want = dict(generated[name])
        want_meta = want.pop("metadata")
        assert crd == want, f"{name}: the chart changed the generated CRD"
        assert meta["annotations"] == {"helm.sh/resource-policy": "keep"}
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert want_meta["labels"].items() <= meta["labels"].items()


def test_crds_can_be_left_out_or_left_to_garbage_collection(helm: str, rendered):
    assert _crds(rendered["minimal"]) == {}
    unkept = _crds(render(helm, {"crds.keep": False}))
    assert len(unkept) == 2
    assert all("annotations" not in crd["metadata"] for crd in unkept.values())


def _grants(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_operator_s_rights_are_exactly_what_the_operator_code_declares(rendered):
    docs = rendered["defaults"]
    cluster_role = one(docs, "ClusterRole")
    lease_role = one(docs, "Role")
    assert lease_role["metadata"]["namespace"] == NAMESPACE
    chart = _grants(cluster_role["rules"]) | _grants(lease_role["rules"])
    assert chart == _grants(operator_rules())
    # Leases only in the release namespace, nothing else there.
    assert {g[1] for g in _grants(lease_role["rules"])} == {"leases"}
    assert not any(resource == "leases" for _, resource, _ in _grants(cluster_role["rules"]))


def test_with_watch_namespaces_the_operator_gets_roles_there_and_nothing_cluster_wide(rendered):
    docs = rendered["high-availability"]  # watchNamespaces: team-a, team-b
    assert by_kind(docs, "ClusterRole") == [] and by_kind(docs, "ClusterRoleBinding") == []
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]): r for r in by_kind(docs, "Role")}
    lease_role = roles.pop((NAMESPACE, "ops-llmagents-leader-election"))
    assert set(roles) == {("team-a", "ops-llmagents"), ("team-b", "ops-llmagents")}
    for role in roles.values():
        assert _grants(role["rules"]) | _grants(lease_role["rules"]) == _grants(operator_rules())
        assert _grants(runner_rules("any")) <= _grants(role["rules"])
    bindings = {b["metadata"]["namespace"]: b for b in by_kind(docs, "RoleBinding")}
    assert set(bindings) == {"team-a", "team-b", NAMESPACE}
    account = one(docs, "ServiceAccount")["metadata"]["name"]
    for namespace in ("team-a", "team-b"):
        assert bindings[namespace]["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "ops-llmagents",
        }
        assert bindings[namespace]["subjects"] == [
            {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
        ]


def test_the_operator_holds_every_right_it_grants_a_runner(rendered):
    chart = _grants(one(rendered["defaults"], "ClusterRole")["rules"])
    assert _grants(runner_rules("any")) <= chart


def test_bindings_name_the_operator_s_service_account(rendered):
    docs = rendered["defaults"]
    account = one(docs, "ServiceAccount")["metadata"]["name"]
    for binding in by_kind(docs, "ClusterRoleBinding") + by_kind(docs, "RoleBinding"):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
        ]
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account


def _operator(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return pod, container


def test_the_operator_runs_under_the_restricted_pod_security_standard(rendered):
    pod, container = _operator(rendered["defaults"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


def test_the_operator_is_probed_on_its_health_endpoints(rendered):
    _, container = _operator(rendered["defaults"])
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["ports"] == [
        {"name": "http-metrics", "containerPort": 8081, "protocol": "TCP"}
    ]


def test_leader_election_is_on_by_default_and_configurable(rendered):
    _, container = _operator(rendered["defaults"])
    assert container["args"][0] == "operator"
    assert "--leader-election" in container["args"]
    assert "--lease-namespace=$(POD_NAMESPACE)" in container["args"]
    _, ha = _operator(rendered["high-availability"])
    assert "--lease-seconds=15" in ha["args"] and "--renew-seconds=5" in ha["args"]
    _, single = _operator(rendered["minimal"])
    assert "--no-leader-election" in single["args"]
    assert by_kind(rendered["minimal"], "Role") == []


@pytest.mark.parametrize("name", VALUE_SETS)
def test_the_operator_command_line_parses_as_the_operator_s_own(rendered, name: str):
    _, container = _operator(rendered[name])
    assert container["args"][0] == "operator"
    parser = argparse.ArgumentParser(exit_on_error=False)
    operator_main.add_arguments(parser)
    args = parser.parse_args(container["args"][1:])
    values = {**VALUE_SETS["defaults"], **VALUE_SETS[name]}
    assert args.liveness == values.get("operator.port", 8081)
    assert args.leader_election is values.get("operator.leaderElection.enabled", True)


def test_agent_pods_get_the_chart_s_default_resources_through_the_operator(rendered):
    _, container = _operator(rendered["defaults"])
    parser = argparse.ArgumentParser(exit_on_error=False)
    operator_main.add_arguments(parser)
    args = parser.parse_args(container["args"][1:])
    values = yaml.safe_load((CHART / "values.yaml").read_text())["runner"]
    assert args.runner_resources == values["resources"]
    assert args.onnx_resources == values["onnxResources"]
    assert args.runner_resources["limits"]["memory"] and args.onnx_resources["limits"]["memory"]
    with pytest.raises(argparse.ArgumentError, match="not container resources"):
        parser.parse_args(["--runner-resources", '{"limits": {"memory": "lots"}}'])


def test_the_operator_watches_all_namespaces_unless_told_which(rendered):
    _, container = _operator(rendered["defaults"])
    assert "--all-namespaces" in container["args"]
    _, scoped = _operator(rendered["high-availability"])
    assert "--all-namespaces" not in scoped["args"]
    assert [a for a in scoped["args"] if a.startswith("--namespace=")] == [
        "--namespace=team-a",
        "--namespace=team-b",
    ]


def test_the_runner_image_defaults_to_the_operator_s_image(rendered):
    _, container = _operator(rendered["defaults"])
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert container["image"] == "ghcr.io/llmagents/llmagents:0.1.0"
    assert env["LLMAGENTS_IMAGE"] == container["image"]
    _, ha = _operator(rendered["high-availability"])
    ha_env = {e["name"]: e.get("value") for e in ha["env"]}
    assert ha["image"] == "ghcr.io/llmagents/llmagents@sha256:" + "0" * 64
    assert ha_env["LLMAGENTS_IMAGE"] == "registry.example/llmagents-runner:1.2.3"
    assert ha_env["LLMAGENTS_EXTRA"] == "1"


def test_traces_are_off_by_default_and_the_endpoint_and_protocol_reach_the_operator(helm: str):
    def operator_env(values: dict[str, Any]) -> dict[str, str | None]:
        _, container = _operator(render(helm, values))
        return {e["name"]: e.get("value") for e in container["env"]}

    assert "LLMAGENTS_RUNNER_OTLP_ENDPOINT" not in operator_env({})
    env = operator_env({"runner.tracing.otlpEndpoint": "http://collector.monitoring:4317",
                        "runner.tracing.otlpProtocol": "grpc"})  # fmt: skip
    assert env["LLMAGENTS_RUNNER_OTLP_ENDPOINT"] == "http://collector.monitoring:4317"
    assert env["LLMAGENTS_RUNNER_OTLP_PROTOCOL"] == "grpc"
    assert (
        operator_env({"runner.tracing.otlpEndpoint": "http://c:4318"})[
            "LLMAGENTS_RUNNER_OTLP_PROTOCOL"
        ]
        == "http/protobuf"
    )
    named = operator_env({
        "runner.tracing.otlpEndpoint": "http://c:4318",
        "runner.tracing.serviceName": "agents-prod",
        "runner.tracing.resourceAttributes": {"deployment.environment": "prod",
                                              "team": "a,b c+d"},
    })  # fmt: skip
    assert named["LLMAGENTS_RUNNER_OTEL_SERVICE_NAME"] == "agents-prod"
    attributes = named["LLMAGENTS_RUNNER_OTEL_RESOURCE_ATTRIBUTES"]
    assert attributes == "deployment.environment=prod,team=a%2Cb%20c%2Bd"
    # As the runner reads the variable (runner.otel), the same map comes back.
    read = otel.resource_attributes({"OTEL_RESOURCE_ATTRIBUTES": attributes or ""}, {})
    assert read == {"deployment.environment": "prod", "team": "a,b c+d"}


def test_monitoring_objects_are_off_by_default_and_need_metrics_enabled(rendered):
    kinds = {"ServiceMonitor", "PrometheusRule"}
    assert not [d for d in rendered["defaults"] if d["kind"] in kinds]
    # minimal turns serviceMonitor on but metrics off: the outer gate wins.
    assert not [d for d in rendered["minimal"] if d["kind"] in kinds | {"Service"}]
    dashboards = [d for d in rendered["defaults"] if d["kind"] == "ConfigMap"]
    assert dashboards == []


def test_the_service_monitors_set_the_job_names_the_alerts_match(rendered):
    monitors = {d["metadata"]["name"]: d for d in by_kind(rendered["monitoring"], "ServiceMonitor")}
    operator = monitors["ops-llmagents-operator"]["spec"]
    runners = monitors["ops-llmagents-runners"]["spec"]
    assert operator["endpoints"][0]["relabelings"][0]["replacement"] == "llmagents-operator"
    assert runners["endpoints"][0]["relabelings"][0]["replacement"] == "llmagents-runner"
    assert runners["namespaceSelector"] == {"any": True}
    assert runners["selector"]["matchLabels"]["app.kubernetes.io/name"] == "llmagents-runner"
    assert all(m["metadata"]["labels"]["release"] == "prometheus" for m in monitors.values())
    alert_jobs = {
        job
        for path in RULES.glob("*.yaml")
        for job in re.findall(r'job="([^"]+)"', yaml.safe_load(path.read_text())["expr"])
    }
    assert alert_jobs == {"llmagents-operator", "llmagents-runner"}


def test_the_prometheus_rule_ships_the_alert_files_minus_the_excluded(rendered):
    rule = one(rendered["monitoring"], "PrometheusRule")
    (group,) = rule["spec"]["groups"]
    shipped = {r["alert"]: r for r in group["rules"]}
    files = {p.stem: yaml.safe_load(p.read_text()) for p in RULES.glob("*.yaml")}
    assert set(shipped) == set(files) - {"LLMAgentHighFallbackRate"}
    for name, rule_ in shipped.items():
        want = files[name]
        assert rule_["expr"] == want["expr"]
        assert rule_.get("for") == want.get("for")
        assert rule_["annotations"] == want["annotations"]
        assert rule_["labels"] == {**want["labels"], "team": "ml-platform"}


def test_the_dashboard_config_map_is_labelled_for_the_grafana_sidecar(rendered):
    (config_map,) = [d for d in rendered["monitoring"] if d["kind"] == "ConfigMap"]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "LLM"}
    shipped = json.loads(config_map["data"]["llmagents.json"])
    assert shipped == json.loads((CHART / "dashboards" / "llmagents.json").read_text())


def test_names_fit_kubernetes_limits_for_the_longest_release_name(helm: str):
    docs = render(helm, VALUE_SETS["monitoring"], release="r" * 53)  # helm's own maximum
    for doc in docs:
        limit = 63 if doc["kind"] == "Service" else 253
        assert len(doc["metadata"]["name"]) <= limit, doc["metadata"]["name"]
        assert all(len(v) <= 63 for v in doc["metadata"]["labels"].values())


def test_the_helm_test_pod_checks_the_api_and_readiness_through_the_api_server(rendered):
    docs = rendered["defaults"]
    hooks = [
        d for d in docs if "helm.sh/hook" in ((d.get("metadata") or {}).get("annotations") or {})
    ]
    assert hooks == [d for d in docs if is_test_hook(d)]
    kinds = {d["kind"]: d for d in hooks}
    assert sorted(kinds) == ["Pod", "Role", "RoleBinding", "ServiceAccount"]
    pod = kinds["Pod"]
    script = pod["spec"]["containers"][0]["command"][-1]
    proxy = "http:ops-llmagents-metrics:http-metrics"
    assert f"/api/v1/namespaces/llmagents-system/services/{proxy}/proxy/readyz" in script
    assert '"/apis/llmagents.dev"' in script and '{"llmagents", "providerpools"}' in script
    # Its account may proxy to that Service alone, and exists before the pod (lower weight).
    account = kinds["ServiceAccount"]["metadata"]["name"]
    assert pod["spec"]["serviceAccountName"] == account
    assert kinds["Role"]["rules"] == [{"apiGroups": [""], "resources": ["services/proxy"],
                                       "resourceNames": [proxy], "verbs": ["get"]}]  # fmt: skip
    binding = kinds["RoleBinding"]
    assert binding["roleRef"]["name"] == kinds["Role"]["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account, "namespace": "llmagents-system"}
    ]
    for kind in ("ServiceAccount", "Role", "RoleBinding"):
        assert int(kinds[kind]["metadata"]["annotations"]["helm.sh/hook-weight"]) < 0


def test_the_chart_packages_with_its_crds_rules_and_dashboard(helm: str, tmp_path: Path):
    run_helm(helm, "package", str(CHART), "--destination", str(tmp_path))
    (archive,) = tmp_path.glob("llmagents-*.tgz")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    for path in [
        "llmagents/files/crds/llmagents.dev_llmagents.yaml",
        "llmagents/files/crds/llmagents.dev_providerpools.yaml",
        "llmagents/dashboards/llmagents.json",
        "llmagents/prometheus_rules/LLMAgentsOperatorDown.yaml",
        "llmagents/values.schema.json",
    ]:
        assert path in names


def test_a_runner_ca_bundle_reaches_the_operator_only_when_named(helm: str):
    def operator_env(values: dict[str, Any]) -> dict[str, str | None]:
        _, container = _operator(render(helm, values))
        return {e["name"]: e.get("value") for e in container["env"]}

    assert "LLMAGENTS_RUNNER_CA_BUNDLE_CONFIG_MAP" not in operator_env({})
    env = operator_env({"runner.caBundle": {"configMap": "corp-ca", "key": "bundle.pem"}})
    assert env["LLMAGENTS_RUNNER_CA_BUNDLE_CONFIG_MAP"] == "corp-ca"
    assert env["LLMAGENTS_RUNNER_CA_BUNDLE_KEY"] == "bundle.pem"
    assert (
        operator_env({"runner.caBundle.configMap": "corp-ca"})["LLMAGENTS_RUNNER_CA_BUNDLE_KEY"]
        == "ca.crt"
    )
