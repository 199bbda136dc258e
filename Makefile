# costwatch: the Cost Spike Runbook, run by itself.  `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export COSTWATCH_HOME ?= $(CURDIR)/.costwatch
export DAGSTER_HOME ?= $(COSTWATCH_HOME)/dagster
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export GX_ANALYTICS_ENABLED := false
export DAGSTER_DISABLE_TELEMETRY := true
export PIP_DISABLE_PIP_VERSION_CHECK := 1

SCENARIO ?= autosave_loop
# seed: `costwatch seed` writes the raw tables; otlp: the same scenario sent as OpenTelemetry
# GenAI spans through `costwatch otlp serve` (orchestration/runbook/ingest/demo.py).
SOURCE ?= seed
DAYS ?= 14
BENCH_EVENTS ?= 1000000
BENCH_SPANS ?= 200000
# bench: postgres (the pass against the floor), or spark (bench/spark.py: the models Spark builds,
# on local Spark beside PostgreSQL).
ENGINE ?= postgres
ACCURACY_ARGS ?=
PYTEST_ARGS ?=

.PHONY: help install demo test soak dev bench accuracy lint fix lock clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --compile -r requirements.lock
	$(BIN)/pip install --quiet --compile --no-deps -e .
	@touch $(STAMP)

install: $(STAMP) ## create .venv with the pinned dependencies (quick when nothing changed)

demo: install ## embedded PostgreSQL, 14 days of one incident, the whole pipeline, the report (SOURCE=otlp: as spans)
	$(BIN)/costwatch db start
	$(BIN)/costwatch db init
ifeq ($(SOURCE),otlp)
	$(BIN)/python -m orchestration.runbook.ingest.demo --scenario $(SCENARIO) --days $(DAYS) --replace
else
	$(BIN)/costwatch seed --scenario $(SCENARIO) --days $(DAYS) --replace
endif
	$(BIN)/costwatch run --full-refresh
	$(BIN)/costwatch triage
	@echo
	@$(BIN)/costwatch triage --summary

test: install ## the whole suite: pytest (real PostgreSQL, dbt, Dagster), dbt tests, expectation suites
	$(BIN)/costwatch db start
	$(BIN)/costwatch prepare
	$(BIN)/pytest $(PYTEST_ARGS)

soak: install ## the soak alone: 48 hourly passes in a row with an incident in the middle
	$(BIN)/costwatch db start
	$(BIN)/costwatch prepare
	$(BIN)/pytest -m soak -p no:cacheprovider tests/test_soak.py

dev: install ## dagster dev on workspace.yaml against the same database
	$(BIN)/costwatch db start
	$(BIN)/costwatch db init
	$(BIN)/costwatch prepare
	$(BIN)/python -c 'from orchestration.instance import write_instance_config as w; w()'
	$(BIN)/costwatch db env --exec $(BIN)/dagster dev -w workspace.yaml

bench: install ## section 8 of the contract: full run vs the hand-written floor, incremental hour (ENGINE=spark: on local Spark beside PostgreSQL)
	$(BIN)/costwatch db start
ifeq ($(ENGINE),spark)
	$(BIN)/python -m bench.spark --events $(BENCH_EVENTS)
else
	$(BIN)/python -m bench.run --events $(BENCH_EVENTS)
	$(BIN)/python -m bench.otlp --spans $(BENCH_SPANS)
endif

accuracy: install ## detection quality: every incident x onset x seed, quiet/growth/step rows, hourly replay
	$(BIN)/costwatch db start
	$(BIN)/python -m bench.accuracy $(ACCURACY_ARGS)

lint: install ## ruff, and sqlfluff on every model and test (.sqlfluff: dbt templater, postgres)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/costwatch db start
	@# dbt renders each model against the database (read-only: is_incremental, lookback queries);
	@# a model dbt cannot compile is only "skipped" by sqlfluff, so that fails the lint here.
	@mkdir -p $(COSTWATCH_HOME)
	@set -o pipefail; $(BIN)/costwatch db env --exec $(BIN)/sqlfluff lint dbt_project \
		2>&1 | tee $(COSTWATCH_HOME)/sqlfluff.log
	@! grep -q "^WARNING *Skipped file .*dbt raised" $(COSTWATCH_HOME)/sqlfluff.log \
		|| { echo "sqlfluff: a model did not compile (above), so it was not linted"; exit 1; }

fix: install ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

lock: ## re-pin requirements.lock from the current .venv
	$(BIN)/pip freeze --exclude-editable | sed '1i # Exact versions of every package costwatch installs (make install). Regenerate with: make lock' > requirements.lock

clean: ## stop the embedded database and remove .costwatch and dbt's target
	-$(BIN)/costwatch db stop
	rm -rf $(COSTWATCH_HOME) dbt_project/target dbt_project/logs
