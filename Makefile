# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
# Both create or reuse .venv through infra/bootstrap.sh (a stamp keyed on the dependency files).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
TOOLRL := $(VENV)/bin/toolrl

.PHONY: venv run test lint bench clean-venv

venv:
	@bash infra/bootstrap.sh

## run: the main job on the embedded default model (the stages that exist so far)
run: venv
	$(TOOLRL) model prepare

## test: the whole test suite (real models, real services), then lint
test: venv
	$(PY) -m pytest -q
	$(VENV)/bin/ruff check src tests bench flows tasks infra

lint: venv
	$(VENV)/bin/ruff check src tests bench flows tasks infra

clean-venv:
	rm -rf $(VENV)
