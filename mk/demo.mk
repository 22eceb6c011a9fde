# The demo: the whole product on this machine in a few minutes (llmagents/demo.py).
# Included by the Makefile (it provides VENV, PY and k8s-bins).

.PHONY: demo demo-down

# venv, control plane and ONNX model as needed; then a local cluster, the chart, fake
# providers with an outage, examples/quickstart.yaml and `kubectl get llmagents` until the
# agent completes. Everything stays up for exploration until `make demo-down`.
demo: $(VENV)/.installed k8s-bins
	LLMAGENTS_K8S_BIN="$$(hack/build-k8s.sh)" $(VENV)/bin/llmagents --log-level WARNING demo up

demo-down:
	@test -x $(VENV)/bin/llmagents || { echo "demo-down: no virtualenv, nothing to stop"; exit 0; }
	$(VENV)/bin/llmagents --log-level WARNING demo down
