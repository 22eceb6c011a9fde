# The demo: the whole product on this machine in a few minutes (tooling/demo.py, outside the
# product package).
# Included by the Makefile (it provides VENV, PY and k8s-bins).

.PHONY: demo demo-down

# venv, control plane and ONNX model as needed; then a local cluster, the chart, fake
# providers with an outage, examples/quickstart.yaml and `kubectl get llmagents` until the
# agent completes. Everything stays up for exploration until `make demo-down`.
demo: $(VENV)/.installed k8s-bins
	LLMAGENTS_K8S_BIN="$$(hack/build-k8s.sh)" $(PY) -m tooling.demo --log-level WARNING up

demo-down:
	@test -x $(PY) || { echo "demo-down: no virtualenv, nothing to stop"; exit 0; }
	$(PY) -m tooling.demo --log-level WARNING down
