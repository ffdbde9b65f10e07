# One entry point for every check: the README, .ci/run and developers use these targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# pytest-xdist is not used: the e2e tests share one broker and 2 cores.
PYTEST_ARGS ?=
# For example BENCH_ARGS="--n 20000 --repeat 1" or BENCH_ARGS="--mode scale".
BENCH_ARGS ?=
BENCH_STAMP := $(VENV)/.installed-bench
# make faults PROFILE=short: the fault-injection suite's CI profile (long: the release check).
PROFILE ?= long
FAULTS_ARGS ?=

.PHONY: help install install-bench lock services-up services-down services-status demo run test \
        test-unit test-integration lint format type schemas check bench faults clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "Python 3.11+ is required (found $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

install: $(STAMP) ## create .venv with the locked dependencies

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,bench]'
	@touch $@

install-bench: $(BENCH_STAMP) ## add the benchmark's dependencies (matplotlib, py-spy) to .venv

lock: ## re-resolve dependencies within pyproject's ranges and rewrite constraints.txt
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip
	.lock-venv/bin/pip install --quiet -e '.[dev,bench]'
	.lock-venv/bin/pip freeze --exclude-editable | grep -v '^request-worker' > constraints.txt
	rm -rf .lock-venv

services-up: ## start Kafka (KRaft) and Redis locally, idempotently, and wait until ready
	bash services/run.sh up

services-down: ## stop the local services (keep their data)
	bash services/run.sh down

services-status: ## show whether the local services are up
	bash services/run.sh status

demo: install services-up ## run the whole flow once on embedded defaults and show the results
	$(BIN)/worker demo

run: install services-up ## run a worker in the foreground on embedded defaults
	WORKER_CREATE_TOPICS=true $(BIN)/worker run

test: install services-up ## every test: unit, integration and end-to-end on real services
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: install ## only the tests that need no services
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

lint: install ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

type: install ## mypy --strict on the package
	$(BIN)/mypy

schemas: install ## regenerate schemas/ from the models
	$(BIN)/worker schemas export

check: lint type test ## everything CI checks

bench: install-bench services-up ## benchmark against plain aiokafka and Faust; see docs/performance.md
	$(BIN)/python -m bench --no-services $(BENCH_ARGS)

faults: install services-up ## the fault-injection suite on its own broker and Redis (PROFILE=short|long); see docs/reliability.md
	$(BIN)/python -m reliability --profile $(PROFILE) $(FAULTS_ARGS)

clean: ## remove local state (services data, chDB, caches); keeps .venv
	bash services/run.sh down --wipe || true
	rm -rf .data .pytest_cache .mypy_cache .ruff_cache
