# The one entry point: make run | test | lint | proto | bench
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.runtime
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help install lock docs soak redis-server prometheus run test lint format proto bench chart image clean

help:
	@echo "make run     start a local Redis (persisting under .data/) and the sidecar; Ctrl-C stops both"
	@echo "make test    the whole test suite (Python and the Node client) against Redis servers it starts itself"
	@echo "make lint    ruff, formatting, mypy --strict, the import contracts, buf lint and buf breaking"
	@echo "make lock    re-resolve uv.lock after a change to pyproject.toml (LOCK_ARGS=--upgrade-package NAME)"
	@echo "make proto   regenerate sidecar/gen and clients/node/gen from proto/"
	@echo "make bench   measure throughput and latency against a bare grpc.aio echo server"
	@echo "make docs    regenerate the generated docs (configuration, metrics, the chart's values)"
	@echo "make soak    10 minutes of full load on one sidecar (native engine): RSS, threads, descriptors sampled"
	@echo "make chart   render, lint and validate the Helm chart (no cluster needed)"
	@echo "make image   build the container image (needs Docker)"

# Every Python package comes from uv.lock, exact versions with their hashes; uv itself from
# tools/uv/requirements.txt, hashed too. `make lock` is the one way to change the lock.
UV_DIR := .uv
UV := $(UV_DIR)/bin/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
UV_SYNC := $(UV) sync --locked --python $(PYTHON) --quiet

$(UV): tools/uv/requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed (found $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(UV_DIR)
	$(UV_DIR)/bin/pip install --quiet --require-hashes --no-deps -r tools/uv/requirements.txt
	@touch $@

# `make run` needs only the service's own packages; tests and linters add the dev group and
# the native extra (MAC_GRPC_ENGINE=native), so the tests run on both gRPC engines.
$(RUNTIME): $(UV) pyproject.toml uv.lock
	$(UV_SYNC) --no-dev --inexact
	@touch $@

$(STAMP): $(RUNTIME)
	$(UV_SYNC) --extra native
	@touch $@

install: $(STAMP)

# Re-resolve the lock: `make lock` after editing pyproject.toml keeps every other pin;
# `make lock LOCK_ARGS="--upgrade-package redis"` upgrades one package, `--upgrade` all.
lock: $(UV)
	$(UV) lock $(LOCK_ARGS)

NODE_CLIENT := clients/node/node_modules/.installed
$(NODE_CLIENT): clients/node/package.json clients/node/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "npm is needed for the Node client (Debian package npm)"; exit 1; }
	cd clients/node && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

BUF := tools/buf/node_modules/.bin/buf
$(BUF): tools/buf/package.json tools/buf/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "npm is needed for buf (Debian package npm)"; exit 1; }
	cd tools/buf && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
		command -v apt-get >/dev/null 2>&1 || { echo "redis-server is missing: install Redis 7 (e.g. your system's redis package, or brew install redis) and run make again"; exit 1; }; \
		echo "installing redis-server (Debian package)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server >/dev/null; }

prometheus:
	@command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || { \
		command -v apt-get >/dev/null 2>&1 || { echo "prometheus and promtool are missing: install Prometheus (it has both) and run make again"; exit 1; }; \
		echo "installing prometheus and promtool (Debian package)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
			prometheus >/dev/null; }

run: $(RUNTIME) redis-server
	@tools/run-local.sh

test: install redis-server prometheus $(NODE_CLIENT)
	$(BIN)/pytest --cov --cov-report=term
	cd clients/node && SIDECAR_PYTHON=$(abspath $(BIN))/python npm test

lint: install $(BUF)
	@$(UV) lock --check --quiet || { echo "uv.lock does not match pyproject.toml: run make lock and commit both"; exit 1; }
	$(BIN)/ruff check sidecar tests tools bench examples
	$(BIN)/ruff format --check sidecar tests tools bench examples
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BUF) lint
	tools/buf-breaking.sh

format: install
	$(BIN)/ruff check --fix sidecar tests tools bench examples
	$(BIN)/ruff format sidecar tests tools bench examples

proto: install $(NODE_CLIENT)
	rm -rf sidecar/gen
	$(BIN)/python tools/gen_proto.py
	cd clients/node && npm run generate

bench: install redis-server
	$(BIN)/python -m bench $(BENCH_ARGS)

docs: install
	$(BIN)/python -m tools.chart_values
	$(BIN)/python -m tools.reference_docs

soak: install redis-server
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

chart: install
	$(BIN)/pytest tests/helm

image:
	docker build -t mac-sidecar:$$($(PYTHON) -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])') .

clean:
	rm -rf $(VENV) $(UV_DIR) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .coverage build *.egg-info
