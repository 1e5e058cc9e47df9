# conda-distro developer and CI entry points. Quickstart: `make demo` (run it), `make test`.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MANAGE := $(BIN)/python manage.py
# Reinstall only when pyproject.toml is newer than the last successful install.
STAMP := $(VENV)/.installed-pyproject
# `make test` defaults; the environment may point them elsewhere.
TEST_DATABASE_URL := postgres://postgres@127.0.0.1:5432/conda_distro
TEST_REDIS_URL := redis://127.0.0.1:6379/15
# pytest-xdist processes: most tests wait on worker subprocesses, servers and the database, so
# 4 processes keep 2 cores busy. Each has its own test database and Redis database (15, 14, 13,
# 12: distro_site/settings/test.py), so at most 4; TEST_WORKERS=0 runs in one process.
# --maxschedchunk=1: tests go out one at a time to whichever process is free, long ones first
# (tests/conftest.py), so that no process is left with a queue of long tests at the end.
TEST_WORKERS ?= 4
PYTEST_ARGS ?=

# Local targets run with DEBUG=1 unless the environment or .env sets DEBUG.
DEV_ENV = if [ -z "$${DEBUG+x}" ] && ! grep -qs '^DEBUG=' .env; then export DEBUG=1; fi;
# bash-only TCP probe, so that no client binary is needed to see whether a service listens.
port_open = (exec 3<>/dev/tcp/127.0.0.1/$(1)) 2>/dev/null
wait_port = for _ in $$(seq 30); do $(call port_open,$(1)) && break; sleep 1; done
AS_ROOT := $(if $(filter 0,$(shell id -u)),,sudo -n)

.PHONY: help demo install migrate seed run worker lint check typecheck test test-browser ci \
	services chromium bubblewrap vendor

help:
	@echo "make demo          set everything up and run the demo (web + worker), print the URL"
	@echo "make test          run the whole test suite (starts PostgreSQL and Redis if needed)"
	@echo "make install       create .venv and install the project with its dev extras"
	@echo "make services      start local PostgreSQL and Redis on 127.0.0.1 if they are stopped"
	@echo "make migrate|seed  apply migrations | load the demo catalog (seed_demo)"
	@echo "make run|worker    web server on 127.0.0.1:\$$PORT (8000) | one RQ worker"
	@echo "make lint|check    ruff check + format check | Django checks + makemigrations --check"
	@echo "make typecheck     mypy on the apps; make test-browser: the Chromium tests only"
	@echo "make ci            lint, check and test, as a full CI run"
	@echo "make vendor        copy plotly.js from the installed plotly into static/vendor/"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	@echo "Installing conda-distro and its dev extras into $(VENV) (pyproject.toml changed)"
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

demo: install
	DEBUG=1 $(MANAGE) run_demo

migrate: install
	@$(DEV_ENV) mkdir -p "$${VAR_DIR:-var}"; $(MANAGE) migrate --noinput

seed: migrate
	@$(DEV_ENV) $(MANAGE) seed_demo

run: install
	@$(DEV_ENV) $(MANAGE) runserver "127.0.0.1:$${PORT:-8000}"

worker: install
	@# Trusted queues and host queues in separate workers (docs/operators.md); Ctrl-C stops both.
	@$(DEV_ENV) sh -c 'trap "kill 0" INT TERM; $(MANAGE) rqworker --with-scheduler default promote & $(MANAGE) rqworker --with-scheduler install & wait'

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

check: install
	@$(DEV_ENV) mkdir -p "$${VAR_DIR:-var}"; set -x; \
	$(MANAGE) check; $(MANAGE) makemigrations --check --dry-run

typecheck: install
	@test -x $(BIN)/mypy || { echo "mypy is not installed: add mypy and django-stubs to the dev extras"; exit 1; }
	$(BIN)/mypy packages_app testing_app distro_site

services:
	@if $(call port_open,5432); then echo "PostgreSQL: running on 127.0.0.1:5432"; \
	elif command -v pg_ctlcluster >/dev/null && [ -n "$$(ls /etc/postgresql 2>/dev/null)" ]; then \
		version="$$(ls /etc/postgresql | sort -V | tail -n 1)"; \
		echo "PostgreSQL: starting cluster $$version/main"; \
		$(AS_ROOT) pg_ctlcluster --skip-systemctl-redirect "$$version" main start; \
		$(call wait_port,5432); \
	else echo "PostgreSQL: not running and not installed (Debian: apt-get install postgresql)"; fi
	@if $(call port_open,6379); then echo "Redis: running on 127.0.0.1:6379"; \
	elif command -v redis-server >/dev/null; then \
		echo "Redis: starting on 127.0.0.1:6379"; \
		$(AS_ROOT) mkdir -p /var/lib/redis /var/log/redis; \
		$(AS_ROOT) redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
			--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log; \
		$(call wait_port,6379); \
	else echo "Redis: not running and not installed (Debian: apt-get install redis-server)"; fi

# The browser tests drive Debian's Chromium; install it when we are allowed to.
chromium:
	@if [ -n "$${CHROMIUM_PATH:-}" ] || [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's chromium for the browser tests"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q --no-install-recommends chromium </dev/null \
		|| { apt-get update -q </dev/null && apt-get install -y -q --no-install-recommends chromium </dev/null; } \
		|| echo "WARNING: could not install chromium; the browser tests cannot run"; \
	else echo "WARNING: /usr/bin/chromium is missing (Debian: apt-get install chromium)"; fi

# Package tests run in a bubblewrap sandbox (testing_app/adapters/sandbox.py); the sandbox tests
# need it, and a worker without it refuses test jobs. Install it when we are allowed to.
bubblewrap:
	@if command -v "$${TEST_SANDBOX_BWRAP:-bwrap}" >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's bubblewrap for the test sandbox"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q --no-install-recommends bubblewrap </dev/null \
		|| { apt-get update -q </dev/null && apt-get install -y -q --no-install-recommends bubblewrap </dev/null; } \
		|| echo "WARNING: could not install bubblewrap; the sandbox tests cannot run"; \
	else echo "WARNING: bwrap is missing (Debian: apt-get install bubblewrap)"; fi

test: install services chromium bubblewrap
	@export DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}"; \
	export REDIS_URL="$${REDIS_URL:-$(TEST_REDIS_URL)}"; \
	export DJANGO_SETTINGS_MODULE=distro_site.settings.test; \
	set -x; \
	$(BIN)/ruff check .; \
	$(BIN)/lint-imports; \
	$(BIN)/python -W "ignore:Got an error checking a consistent migration history" \
		manage.py makemigrations --check --dry-run; \
	status=0; $(BIN)/pytest -n $(TEST_WORKERS) --maxschedchunk=1 --durations=25 $(PYTEST_ARGS) \
		|| status=$$?; \
	{ set +x; } 2>/dev/null; \
	if [ "$$status" = 5 ]; then echo "pytest collected no tests: that is a failure"; exit 1; fi; \
	exit "$$status"

test-browser:
	@$(MAKE) test PYTEST_ARGS="-m browser $(PYTEST_ARGS)"

ci: lint check test

vendor: install
	mkdir -p static/vendor/plotly
	cp "$$($(BIN)/python -c 'import pathlib, plotly; print(pathlib.Path(plotly.__file__).parent)')/package_data/plotly.min.js" static/vendor/plotly/
