# Slipway: `make run` (set up, start the local stack, run the demo) and `make test`.
# Everything lands in .venv/ and .slipway/ (both ignored); `make down` stops the stack.

PYTHON    ?= python3.11
VENV      := .venv
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
ASSETS    := layers/slipway/slipway/static/openseadragon/openseadragon.min.js
LOCAL     := $(PY) -m slipway_local

.PHONY: run up down status test lint typecheck unit integration e2e bench clean deps system-deps viewer-assets

run: up ## set up, start the local stack, run the demo, leave the stack up
	$(PY) -m slipway_local.demo

up: deps ## start the local stack (idempotent) and write .slipway/local.env
	$(LOCAL) up

down: ## stop the local stack and discard its data
	@if [ -x $(PY) ]; then $(LOCAL) down; else echo "nothing to stop"; fi

status: deps
	$(LOCAL) status

deps: $(STAMP) $(ASSETS)

$(STAMP): requirements.txt requirements-dev.txt layers/*/requirements.txt layers/slipway/pyproject.toml localstack/pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ needed"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

viewer-assets: $(ASSETS)

$(ASSETS): viewer/package.json viewer/package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed for the slide viewer: apt-get install nodejs npm"; exit 1; }
	npm ci --prefix viewer --no-audit --no-fund --loglevel=error
	mkdir -p $(dir $@)
	cp viewer/node_modules/openseadragon/build/openseadragon/openseadragon.min.js $(dir $@)
	cp -r viewer/node_modules/openseadragon/build/openseadragon/images $(dir $@)

system-deps: ## Chromium for the viewer test (Debian packages; as root only)
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: the viewer test needs Chromium: sudo apt-get install chromium"; fi; }

test: deps system-deps lint typecheck ## the whole suite (starts its own stack)
	$(VENV)/bin/cfn-lint template.yaml
	$(PY) -m pytest

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: deps
	$(VENV)/bin/mypy layers/slipway/slipway localstack/slipway_local functions tests bench

unit: deps
	$(PY) -m pytest tests/unit

integration: deps
	$(PY) -m pytest tests/integration

e2e: deps
	$(PY) -m pytest tests/e2e

bench: up ## speed and memory against the references (bench/README.md)
	for b in upload events queue tile parse; do $(PY) bench/$$b.py || exit 1; done

clean: down
	rm -rf $(VENV) .slipway viewer/node_modules .mypy_cache .pytest_cache .ruff_cache
