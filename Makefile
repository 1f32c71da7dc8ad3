# driftwarden: the two commands a newcomer needs are `make demo` and `make test`.
# Everything they need (virtualenv, Python packages, Kafka jars, Prometheus and
# Alertmanager packages) is installed on first use and cached in git-ignored folders.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed
EXTRAS ?= dev,torch
PYTEST_ARGS ?=

.PHONY: install services-install services-up services-down k8s-install k8s-up k8s-down helm-install test test-unit test-gpu demo bench lint format clean

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@test -x $(UV) || $(VENV)/bin/pip install -q "uv>=0.4,<1"
	$(UV) pip install --python $(PY) -q --compile-bytecode -e ".[$(EXTRAS)]"
	@touch $(STAMP)

install: $(STAMP)

services-install:
	@bash scripts/install-services.sh

services-up: install services-install
	$(PY) -m driftwarden.services up

services-down:
	@test -x $(PY) && $(PY) -m driftwarden.services down || true

# Kubernetes control plane (etcd, kube-apiserver, controller-manager, scheduler, kubectl, kwok)
# built from the Go module proxy into .cache/k8s/bin: ~15 min cold, seconds warm.
k8s-install:
	@bash scripts/install-k8s.sh

# Helm (chart lint/template/install tests) built from the Go module proxy into
# .cache/helm/bin: a few minutes cold, ~1 s warm.
helm-install:
	@bash scripts/install-helm.sh

k8s-up: install k8s-install
	$(PY) -m driftwarden.services k8s-up

k8s-down:
	@test -x $(PY) && $(PY) -m driftwarden.services k8s-down || true

test: install services-install k8s-install helm-install
	$(PY) -m pytest $(PYTEST_ARGS)

test-gpu: install
	$(PY) -m pytest -m gpu tests/unit $(PYTEST_ARGS)

test-unit: install
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

demo: install services-install
	$(VENV)/bin/driftwarden demo $(DEMO_ARGS)

bench: install services-install
	$(PY) -m bench

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .services .pytest_cache .ruff_cache
