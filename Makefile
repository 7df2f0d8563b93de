# celery-harder: `make dev` runs the local stack, `make test` installs what it needs and tests.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SERVICES := $(wildcard services/*/pyproject.toml)
EDITABLES := $(foreach p,$(SERVICES),-e $(dir $(p)))

.PHONY: help venv dev test test-fast test-cluster lint typecheck tools test-deps load-tools celery-exporter \
	control-plane node-binaries images cluster-images cluster-deps cluster cluster-down bench \
	chaos constraints clean

help:
	@echo "make dev         run Redis, a worker, the API (:8000) and Flower (:5555) in the foreground"
	@echo "                 PROMETHEUS=1: also celery-exporter (:9808) and Prometheus (:9090), the chart's rules loaded"
	@echo "make test        install everything the tests need, lint, type-check, run every test"
	@echo "make test-fast   lint, type-check and the T0/T1 tests only (no control plane, no images)"
	@echo "make test-cluster the T4-local tests only: the chart on the local node (starts one if none runs)"
	@echo "make cluster     build (cached) and start the single local node with CoreDNS, storage and KEDA"
	@echo "make cluster-down stop the local node and undo every change it made to this machine"
	@echo "make bench       run the benchmarks, write bench/results/latest.md and the README's Performance section"
	@echo "make chaos       kill workers and Redis under load, soak the API, fuzz the API at 5,000 cases"

venv: $(BIN)/.installed

# PYTHONWARNINGS reaches pip's build subprocesses: setuptools' pages of warnings about
# editable installs say nothing a user can act on.
$(BIN)/.installed: requirements/constraints.txt requirements/dev.txt $(SERVICES)
	@echo "venv: $(VENV) ($(PYTHON))"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "venv: pip install the pinned dependencies and the five packages (editable)"
	@PYTHONWARNINGS=ignore $(BIN)/python -m pip install -q --upgrade pip
	@PYTHONWARNINGS=ignore $(BIN)/python -m pip install -q -c requirements/constraints.txt \
		-r requirements/dev.txt $(EDITABLES)
	@touch $@

dev: venv
	$(BIN)/python -m celery_harder_dev.dev_stack $(if $(filter-out 0,$(PROMETHEUS)),--prometheus)

lint: venv
	$(BIN)/ruff check services tests scripts bench
	$(BIN)/ruff format --check services tests scripts bench

typecheck: venv
	$(BIN)/mypy

tools:
	bash scripts/install-k8s-tools.sh

# The Debian tools, the Go modules, and celery-exporter from PyPI in a venv of its own.
test-deps: celery-exporter
	bash scripts/install-test-deps.sh

celery-exporter:
	bash scripts/install-celery-exporter.sh

load-tools:
	bash scripts/install-load-tools.sh

control-plane:
	bash scripts/build-control-plane.sh

images:
	bash scripts/build-images.sh

node-binaries:
	bash scripts/build-node.sh >/dev/null

# Every image the node runs, exported for containerd (after `images`: it exports those too).
cluster-images: images node-binaries
	bash scripts/build-cluster-images.sh >/dev/null

cluster-deps: venv tools control-plane cluster-images

cluster: cluster-deps
	$(BIN)/python -m celery_harder_dev.cluster up

cluster-down: venv
	$(BIN)/python -m celery_harder_dev.cluster down

test-cluster: cluster-deps
	$(BIN)/pytest tests/cluster

# tools and celery-exporter: the make dev PROMETHEUS=1 test renders the chart's rules
# and starts the exporter (Debian's prometheus comes with make test-deps).
test-fast: load-tools tools celery-exporter lint typecheck
	$(BIN)/pytest tests/unit tests/stack tests/resilience tests/devstack

# scripts/run-tests.sh builds the control plane and the node in the background, at the
# lowest priority, while the installs, lint, the type check and the tests that need no
# build run; then the rest, as their builds are ready.
test:
	PYTEST=$(BIN)/pytest bash scripts/run-tests.sh

# B6 needs kubectl and the T2 control plane; the harness installs the rest itself
# (scripts/install-bench-tools.sh): hey and redis-benchmark from Debian, the peer
# queues into a venv of their own.
bench: venv tools control-plane
	$(BIN)/python -m bench --size full $(BENCH_ARGS)

# The full reliability suite (about 6 minutes); a short run of it is part of `make test`.
# The disruptions and the soak, then the OpenAPI contract fuzzed at 5,000 cases.
chaos: venv load-tools
	$(BIN)/python -m celery_harder_dev.chaos --size full --out docs/chaos-results.md
	CELERY_HARDER_FUZZ_CASES=5000 $(BIN)/pytest -q -s -p no:cacheprovider tests/stack/test_contract_fuzz.py

constraints: venv
	(echo "# Every Python dependency pinned: make test and the images install with -c this file."; \
	 echo "# Regenerate with: make constraints"; \
	 $(BIN)/pip freeze --exclude-editable) > requirements/constraints.txt

clean:
	rm -rf $(VENV) dev-stack .pytest_cache .mypy_cache .ruff_cache
