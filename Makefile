# Slipway: `make run` (set up, start the local stack, run the demo), `make test`, and
# `make package` (the SAM build for AWS, checked: docs/deploy.md).
# Everything lands in .venv/ and .slipway/ (both ignored); `make down` stops the stack.

# Python 3.12, as the Lambda runtime (python3.12, docs/deploy.md): the first that runs of
# python3.12 on PATH, pyenv's, the system's (as LocalStack's 3.13 is found); or PYTHON=...
PY_WANT   := import sys; sys.exit(sys.version_info[:2] != (3, 12))
PY_FOUND   = $(firstword $(foreach p,$(1),$(shell $(p) -c '$(PY_WANT)' >/dev/null 2>&1 && echo $(p))))
ifeq ($(origin PYTHON),undefined)
PYTHON    := $(or $(call PY_FOUND,python3.12 $(sort $(wildcard \
               $(HOME)/.pyenv/versions/3.12*/bin/python3.12 /root/.pyenv/versions/3.12*/bin/python3.12)) \
               /usr/local/bin/python3.12 /usr/bin/python3.12),python3.12)
endif
VENV      := .venv
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.installed-3.12
# AWS SAM CLI in a virtualenv of its own (its pins are not the app's), from a lock file.
SAM_VENV  := .slipway/sam-venv
SAM_LOCK  := infra/sam-requirements.lock
SAM_STAMP := $(SAM_VENV)/.installed
SAM       := PATH="$(abspath $(SAM_VENV))/bin:$$PATH" SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam
# The pages' npm assets: OpenSeadragon (the viewer), Uppy bundled by esbuild (the upload page)
OSD       := layers/slipway/slipway/static/openseadragon/openseadragon.min.js
UPPY      := layers/slipway/slipway/static/uppy/uppy.min.js
ASSETS    := $(OSD) $(UPPY)
NPM_STAMP := viewer/node_modules/.installed
LOCAL     := $(PY) -m slipway_local

.PHONY: run up down status test lint typecheck unit integration e2e bench clean deps system-deps viewer-assets package

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
	@$(PYTHON) -c '$(PY_WANT)' 2>/dev/null || { echo "Python 3.12 is needed (the Lambda runtime): install it (e.g. pyenv install 3.12) or set PYTHON=/path/to/python3.12"; exit 1; }
	@if [ -x $(PY) ] && ! $(PY) -c '$(PY_WANT)' 2>/dev/null; then echo "$(VENV) is not Python 3.12: recreating it"; rm -rf $(VENV); fi
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

package: $(SAM_STAMP) $(ASSETS) ## sam validate --lint, sam build (no containers), then check it
	$(SAM) validate --lint
	$(SAM) build --cached
	$(SAM_VENV)/bin/python -m infra.package_size
	$(SAM_VENV)/bin/python -m infra.package_imports

$(SAM_STAMP): $(SAM_LOCK)
	@$(PYTHON) -c '$(PY_WANT)' 2>/dev/null || { echo "Python 3.12 is needed to build for python3.12: install it (e.g. pyenv install 3.12) or set PYTHON=/path/to/python3.12"; exit 1; }
	rm -rf $(SAM_VENV)
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r $(SAM_LOCK)
	@touch $@

viewer-assets: $(ASSETS)

$(NPM_STAMP): viewer/package.json viewer/package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed for the viewer and upload pages: apt-get install nodejs npm"; exit 1; }
	npm ci --prefix viewer --no-audit --no-fund --loglevel=error
	@touch $@

# the same lock, the same esbuild: the same bytes (viewer/uppy.js names what is bundled)
$(UPPY): $(NPM_STAMP) viewer/uppy.js
	viewer/node_modules/.bin/esbuild viewer/uppy.js --bundle --format=esm --minify \
	  --target=es2022 --legal-comments=eof --log-level=warning --outfile=$@

$(OSD): $(NPM_STAMP)
	mkdir -p $(dir $@)
	cp viewer/node_modules/openseadragon/build/openseadragon/openseadragon.min.js $(dir $@)
	cp -r viewer/node_modules/openseadragon/build/openseadragon/images $(dir $@)

system-deps: ## Chromium for the viewer and upload page tests (Debian packages; as root only)
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
	$(VENV)/bin/mypy layers/slipway/slipway localstack/slipway_local functions tests bench infra

unit: deps
	$(PY) -m pytest tests/unit

integration: deps
	$(PY) -m pytest tests/integration

e2e: deps
	$(PY) -m pytest tests/e2e

bench: up ## speed and memory against the references (bench/README.md)
	for b in upload events queue tile tile_formats tile_fanout parse linescan coldstart; do $(PY) bench/$$b.py || exit 1; done

clean: down
	rm -rf $(VENV) .slipway .aws-sam viewer/node_modules .mypy_cache .pytest_cache .ruff_cache
