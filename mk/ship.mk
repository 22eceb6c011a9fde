# Shipping: the image, the Helm chart and alert tests, the kind end-to-end run.
# Included by the Makefile (it provides venv, k8s-bins and PY).

IMAGE_REPO ?= ghcr.io/llmagents/llmagents
IMAGE_TAG ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE ?= $(IMAGE_REPO):$(IMAGE_TAG)

.PHONY: image image-with-model e2e e2e-kind chart-test chart-crds prometheus-tools

# The image (operator, runner and onnx-server). hack/image.sh starts a Docker engine when
# none answers (installing Debian's docker.io as root) and builds a Python base from Debian
# packages when none can be pulled.
image:
	hack/image.sh $(IMAGE) runtime

# The same image with SmolLM2 converted to ONNX under /models (for clusters without a model
# volume), and without the converter's packages.
image-with-model:
	hack/image.sh $(IMAGE)-model with-model

# The image and the chart on a real node (containerd + a real kubelet joined to the local
# control plane, in namespaces of the run's own): hack/e2e.sh, docs/e2e.md.
e2e: venv
	IMAGE=$(IMAGE_REPO):e2e hack/e2e.sh

# kind + the image + the chart + examples/quickstart.yaml to phase Completed; skips without Docker or kind.
e2e-kind:
	hack/e2e-kind.sh

# promtool (alert unit tests) and prometheus (the scrape-and-alert cluster test), from Debian.
# --no-install-recommends keeps node-exporter (port 9100, the runners' metrics port) out.
prometheus-tools:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null || \
	  { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus; }

# The chart (helm lint/template, server-side dry runs, install), alerts (promtool) and the
# real-Prometheus test.
chart-test: venv k8s-bins prometheus-tools
	$(PY) -m pytest -q tests/unit/chart tests/unit/alerts tests/cluster/test_chart_install.py tests/cluster/test_prometheus.py

# The chart ships the generated CRDs byte for byte (tests/unit/chart checks it); `make crds`
# runs this after regenerating crds/.
chart-crds:
	rm -f charts/llmagents/files/crds/*.yaml
	cp crds/*.yaml charts/llmagents/files/crds/
