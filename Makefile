# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
# Both create or reuse .venv through infra/bootstrap.sh (a stamp keyed on the dependency files).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
TOOLRL := $(VENV)/bin/toolrl
# Stage commands in dvc.yaml call `python`: the venv's must come first on PATH.
export PATH := $(abspath $(VENV))/bin:$(PATH)
export PREFECT_SERVER_ANALYTICS_ENABLED := false
# Point runs at the local servers when `make services` started them (else: embedded / ephemeral).
SERVICES_ENV = $(shell bash infra/services.sh env 2>/dev/null)

.PHONY: venv run smoke repro grid params services serve stop status test lint bench-pipeline clean-venv

venv:
	@bash infra/bootstrap.sh

## run: the whole default pipeline (DVC experiment in the workspace, MLflow parent run), then where
## the results are: report path, MLflow and Prefect URLs. Extra flags: make run ARGS="-S key=value --workspace"
run: venv
	env $(SERVICES_ENV) $(PY) -m flows.pipeline $(ARGS)

## smoke: the whole DAG on the smoke profile (tiny-random model, a few steps) as an isolated DVC
## experiment (needs a git commit to start from); params.yaml and the workspace are left alone
smoke: venv
	env $(SERVICES_ENV) $(PY) -m flows.pipeline --profile smoke

## repro: plain `dvc repro` with the venv on PATH (does nothing when everything is up to date)
repro: venv
	env $(SERVICES_ENV) $(VENV)/bin/dvc repro

## grid: the paper's reward-variant ablation of GRPO as queued DVC experiments, one at a time, after
## `make run` (VARIANTS="coarse equal_max"; GRID_COLD=1 adds GRPO cold from the base model, GRID_POOLED=1
## the TRM's naive pooled advantage)
grid: venv
	GRID_COLD=$(GRID_COLD) GRID_POOLED=$(GRID_POOLED) bash infra/grid.sh $(VARIANTS)

## params: re-render params.yaml from the schema in src/toolrl/schema/ (every key at its default)
params: venv
	$(PY) -m toolrl.params_file params.yaml

## services: Prefect server + MLflow server on 127.0.0.1 (PIDs in .services/); stop: stop them
services: venv
	@bash infra/services.sh start

## serve: serve the Prefect deployments (needs `make services`): run the pipeline from the UI
serve: venv
	@bash infra/services.sh serve

## stop: stop the servers `make services` started
stop:
	@bash infra/services.sh stop

## status: whether those servers run, and their URLs
status:
	@bash infra/services.sh status

## test: the whole test suite (real models, real services) in TEST_WORKERS pytest-xdist workers (whole
## files each, in the order tests/conftest.py sets: the longest first; the cores are shared among them),
## then lint. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
test: venv
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder
	$(VENV)/bin/ruff check src tests bench flows tasks infra

## lint: ruff over the code and tests
lint: venv
	$(VENV)/bin/ruff check src tests bench flows tasks infra

## bench-pipeline: what Prefect, MLflow and DVC add to a stage's time (docs/BENCHMARKS.md)
bench-pipeline: venv
	$(PY) bench/pipeline_overhead.py

## clean-venv: delete .venv (the next make target rebuilds it)
clean-venv:
	rm -rf $(VENV)
