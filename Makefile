# Ledgerline: two commands on a clean machine — `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pytest's own selection; `make test` runs everything but the slow chaos/load tests.
PYTEST_ARGS ?=

.PHONY: help install infra infra-down browser migrate topics run test test-all lint fmt bench clean

help:
	@echo "make run       install, start Postgres + Kafka + the five services, print their URLs"
	@echo "make test      install, start Postgres + Kafka, run the suite (slow tests excluded)"
	@echo "make test-all  the same, including slow chaos and load tests"
	@echo "make lint      ruff + mypy"
	@echo "make infra / infra-down   start / stop Postgres and Kafka only"

$(STAMP): pyproject.toml
	@$(PYTHON) -c "import sys; assert sys.version_info[:2] == (3, 11), sys.version" || { echo "need Python 3.11 (python3.11 on PATH)" >&2; exit 1; }
	@# Debian's own python3 (3.11 on bookworm) needs python3-venv for `-m venv`.
	@$(PYTHON) -c "import ensurepip, venv" 2>/dev/null || { command -v apt-get >/dev/null && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

install: $(STAMP)

infra:
	bash deploy/up.sh

infra-down:
	bash deploy/down.sh

migrate: install infra
	source deploy/env.sh && $(BIN)/ar db migrate

topics: install infra
	source deploy/env.sh && $(BIN)/ar kafka topics

run: install infra migrate topics
	source deploy/env.sh && $(BIN)/ar services run

# Headless Chromium (Debian's package) for the reporting dashboard's browser test.
browser:
	@command -v chromium >/dev/null || bash -c 'source deploy/env.sh && ll_apt_install chromium'

test: install infra browser migrate topics
	source deploy/env.sh && $(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

test-all: install infra browser migrate topics
	source deploy/env.sh && $(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
