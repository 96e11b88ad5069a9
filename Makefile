# Afinador — `make run` starts the whole system; `make test` runs every test.
# Both install what they need on first use (virtual environment, pinned packages,
# htmx from the npm registry, and for tests Debian's Chromium).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP     := $(VENV)/.dev-installed
WEB_STAMP     := web/node_modules/.installed
CHROMIUM ?= /usr/bin/chromium

.PHONY: run test test-fast lint install install-dev web chromium clean help \
        bench bench-optimizer bench-abtest bench-reward bench-gateway chaos load fuzz

help:
	@echo "make run    start the four services (gateway http://127.0.0.1:8000/train)"
	@echo "make test   install everything needed and run all tests"
	@echo "make lint   ruff + mypy"
	@echo "make bench-optimizer | bench-abtest | bench-reward   benchmarks (results in bench/results/)"
	@echo "make chaos  SIGKILL services while trainers rate; 0 ratings lost or counted twice"
	@echo "            (CHAOS_ARGS='--rounds 60 --trainers 4 --kills 12 --database sqlite')"
	@echo "make load   50 trainers for 10 minutes: latency, errors, memory (LOAD_ARGS='--minutes 2')"
	@echo "make fuzz   schemathesis on every service + hostile and mutated uploads: 0 5xx"
	@echo "            (see docs/reliability.md, section 'The proof')"

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(RUNTIME_STAMP): requirements.txt | $(VENV)/bin/python
	$(PIP) install --upgrade --quiet pip
	$(PIP) install --quiet -r requirements.txt
	@touch $@

$(DEV_STAMP): requirements.txt requirements-ml.txt requirements-dev.txt $(RUNTIME_STAMP)
	$(PIP) install --quiet -r requirements-dev.txt
	@touch $@

$(WEB_STAMP): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

install: $(RUNTIME_STAMP) $(WEB_STAMP)
install-dev: $(DEV_STAMP) $(WEB_STAMP)
web: $(WEB_STAMP)

# Browser tests drive Debian's Chromium through Playwright (no browser download).
chromium:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  echo "Installing Debian's chromium for the browser tests…"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi

run: install
	$(PY) -m scripts.run

test: install-dev chromium
	$(PY) -m pytest

test-fast: install-dev
	$(PY) -m pytest -m "not browser and not e2e"

lint: install-dev
	$(PY) -m ruff check services scripts tests bench
	$(PY) -m mypy services scripts

# Benchmarks: scripts that print a table and write bench/results/ (not timed tests).
bench-optimizer: install-dev
	$(PY) -m bench.optimizer

bench-abtest: install-dev
	$(PY) -m bench.abtest

bench-reward: install-dev
	$(PY) -m bench.reward

bench-gateway: install-dev
	$(PY) -m bench.gateway

bench: bench-optimizer bench-abtest bench-reward bench-gateway

# The proof (docs/reliability.md): real processes, real HTTP. PostgreSQL runs too
# when TEST_POSTGRES_URL is set (chaos: both by default; load/fuzz: --database postgres).
chaos: install-dev
	$(PY) -m bench.chaos $(CHAOS_ARGS)

load: install-dev
	$(PY) -m bench.load $(LOAD_ARGS)

fuzz: install-dev
	$(PY) -m bench.fuzz $(FUZZ_ARGS)

clean:
	rm -rf $(VENV) web/node_modules data tests/artifacts
