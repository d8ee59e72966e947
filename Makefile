# The two commands of the README: `make up` runs the platform, `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export CLV_HOME ?= $(CURDIR)/.clv
export DAGSTER_HOME ?= $(CLV_HOME)/dagster
export BENTOML_HOME ?= $(CLV_HOME)/bentoml
export CLV_DUCKDB_PATH ?= $(CLV_HOME)/warehouse.duckdb
# the venv's tools (dbt, dagster, bentoml) for every process make starts, Dagster's code server included
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DO_NOT_TRACK := 1
export BENTOML_DO_NOT_TRACK := true
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
DBT_FLAGS := --project-dir dbt_project --profiles-dir dbt_project

.PHONY: install manifest dagster-home up materialize backfill bento serve test bench clean evidently-ui

$(BIN)/.installed: pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found (the platform needs Python 3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[test]'
	touch $@

install: $(BIN)/.installed

# dagster-dbt reads dbt's manifest when the definitions load
manifest: install
	$(BIN)/dbt parse --quiet $(DBT_FLAGS)

# the instance's settings: dagster.yaml (SQLite in $DAGSTER_HOME) or DAGSTER_YAML=dagster.postgres.yaml (PostgreSQL,
# connection from DAGSTER_PG_*); copied whenever it differs from the one there, so switching takes effect
DAGSTER_YAML ?= dagster.yaml
dagster-home:
	@mkdir -p $(DAGSTER_HOME) $(BENTOML_HOME)
	@cmp -s $(DAGSTER_YAML) $(DAGSTER_HOME)/dagster.yaml || cp $(DAGSTER_YAML) $(DAGSTER_HOME)/dagster.yaml

# ingest, then bring the newest cutoff up to date: nothing runs when code, settings and data are as last time,
# new data only rescores, anything else retrains (orchestration/up.py)
materialize: manifest dagster-home
	$(BIN)/python -m orchestration.up

# rescore the past WEEKS cutoffs (one Dagster run per partition): scores, drift and performance over time
WEEKS ?= 12
backfill: manifest dagster-home
	$(BIN)/python -m orchestration.backfill --periods $(WEEKS)

# the prediction API as a bento (bentofile.yaml): service, ml code, pinned requirements; built again only when
# one of them changed (the bento serves clv_model:latest, so a new model needs no new bento)
BENTO_STAMP := $(CLV_HOME)/bento.tag
$(BENTO_STAMP): bentofile.yaml serving/requirements.txt dbt_project/dbt_project.yml $(shell find serving ml -name "*.py")
	mkdir -p $(CLV_HOME)
	$(BIN)/bentoml build --output tag > $@.tmp && mv $@.tmp $@

bento: install $(BENTO_STAMP)
	@$(BIN)/bentoml get clv_service:latest >/dev/null 2>&1 || { rm -f $(BENTO_STAMP); $(MAKE) --no-print-directory $(BENTO_STAMP); }

# the built bento on 127.0.0.1:3001; it follows clv_model:latest, so a newly materialized model is served without
# a restart. CLV_API_KEY=<key> protects the prediction routes. The launcher (orchestration/launcher.py) runs both
# servers and stops every process of theirs on Ctrl-C or SIGTERM, or when one of them dies.
serve: bento dagster-home
	@echo "Dagster UI: http://127.0.0.1:3000   prediction API: http://127.0.0.1:3001   (Ctrl-C stops both)"
	$(BIN)/python -m orchestration.launcher --workspace workspace.yaml --bento clv_service:latest \
		--host 127.0.0.1 --dagster-port 3000 --api-port 3001

up: materialize serve

test: manifest
	$(BIN)/python -m pytest

# Evidently's UI over the platform's workspace: drift share and performance over time
evidently-ui: install
	$(BIN)/evidently ui --workspace $(CLV_HOME)/evidently --host 127.0.0.1 --port 8000

bench: install
	$(BIN)/python benchmarks/data_layer.py

clean:
	rm -rf $(CLV_HOME) dbt_project/target dbt_project/logs
