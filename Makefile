# celery-harder: `make dev` runs the local stack, `make test` installs what it needs and tests.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SERVICES := $(wildcard services/*/pyproject.toml)
EDITABLES := $(foreach p,$(SERVICES),-e $(dir $(p)))

.PHONY: help venv dev test test-fast lint typecheck tools test-deps control-plane images bench constraints clean

help:
	@echo "make dev         run Redis, a worker, the API (:8000) and Flower (:5555) in the foreground"
	@echo "make test        install everything the tests need, lint, type-check, run every test"
	@echo "make test-fast   lint, type-check and the T0/T1 tests only (no control plane, no images)"
	@echo "make bench       run the benchmarks and write bench/results.md"

venv: $(BIN)/.installed

$(BIN)/.installed: requirements/constraints.txt requirements/dev.txt $(SERVICES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements/constraints.txt -r requirements/dev.txt $(EDITABLES)
	touch $@

dev: venv
	$(BIN)/python scripts/dev_stack.py

lint: venv
	$(BIN)/ruff check services tests scripts bench

typecheck: venv
	$(BIN)/mypy

tools:
	bash scripts/install-k8s-tools.sh

test-deps:
	bash scripts/install-test-deps.sh

control-plane:
	bash scripts/build-control-plane.sh

images:
	bash scripts/build-images.sh

test-fast: lint typecheck
	$(BIN)/pytest tests/unit tests/stack tests/resilience tests/devstack

test: venv tools test-deps control-plane images lint typecheck
	$(BIN)/pytest

bench: venv
	$(BIN)/python -m bench

constraints: venv
	(echo "# Every Python dependency pinned: make test and the images install with -c this file."; \
	 echo "# Regenerate with: make constraints"; \
	 $(BIN)/pip freeze --exclude-editable) > requirements/constraints.txt

clean:
	rm -rf $(VENV) dev-stack .pytest_cache .mypy_cache .ruff_cache
