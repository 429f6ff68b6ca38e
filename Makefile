# dicomstation: `make demo` and `make test` do all set-up on a fresh Debian machine.
VENV      ?= .venv
PY        := $(VENV)/bin/python
PYTHON    ?= python3
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Real peers used by tests and benchmarks (Debian packages).
APT_PACKAGES := orthanc orthanc-dicomweb dcmtk dicom3tools chromium dcm2niix gcc libc6-dev curl
# Commands that may come from another package source (Node.js's own repository ships npm inside
# its nodejs package, which conflicts with Debian's npm): installed from Debian only when absent.
APT_COMMANDS := npm
PYTEST_ARGS ?= --durations=40

.PHONY: demo test venv system-deps ohif dicomweb-client-js lint typecheck bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,dev,bench,deidtable]'
	$(PY) -m pip install -q torch==2.13.0 && $(PY) -m pip install -q -e '.[ai]'
	touch $@

venv: $(VENV)/.installed

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	for c in $(APT_COMMANDS); do \
	  command -v $$c >/dev/null 2>&1 || missing="$$missing $$c"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# OHIF 3 (npm package @ohif/app, version pinned in web/ohif.py) into the user data dir, outside
# git; served by `dicomstation ui` at /viewer/. Idempotent; without npm or network the UI still
# works (it says how to install OHIF) and the OHIF tests skip.
ohif: venv
	@if command -v npm >/dev/null 2>&1; then \
	  $(VENV)/bin/dicomstation viewer install </dev/null || \
	    echo "OHIF could not be installed: /viewer/ will say how (dicomstation viewer install)"; \
	else echo "npm not found: OHIF not installed (apt-get install npm; dicomstation viewer install)"; fi

# The JavaScript dicomweb-client (npm, no dependencies) for tests/conformance, outside git in
# .cache/; the JS conformance test skips without it.
DICOMWEB_CLIENT_JS := dicomweb-client@0.11.3
dicomweb-client-js:
	@if [ -d .cache/dicomweb-client-js/node_modules/dicomweb-client ]; then :; \
	elif command -v npm >/dev/null 2>&1; then \
	  npm install --prefix .cache/dicomweb-client-js --no-save --ignore-scripts --no-audit \
	    --no-fund --silent $(DICOMWEB_CLIENT_JS) </dev/null || \
	    echo "$(DICOMWEB_CLIENT_JS) could not be installed: its conformance test will skip"; \
	else echo "npm not found: $(DICOMWEB_CLIENT_JS) not installed"; fi

demo: venv ohif
	$(VENV)/bin/dicomstation demo

test: venv system-deps ohif dicomweb-client-js
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src

typecheck: venv
	$(VENV)/bin/mypy

bench: venv system-deps
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) test-artifacts .pytest_cache .mypy_cache .ruff_cache
