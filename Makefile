# Single Customer View — every command a user or a scheduler needs. `make` lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SCV := $(BIN)/scv
UV_VERSION := 0.13.8
PERIOD ?=
STAGE ?=
# PARAMS=params/companies/harbour runs another company's parameters (and its generated sample)
PARAMS ?=
ifneq ($(PARAMS),)
export SCV_PARAMS := $(PARAMS)
endif
AUDIENCE ?=
SCALE ?= quick
period_arg = $(if $(PERIOD),--period $(PERIOD),)
# A variable's text as one shell word, exactly as typed: $(value) keeps make from expanding a `$` in it,
# single quotes keep the shell from expanding anything ('\'' stands for a quote inside).
shell_word = '$(subst ','\'',$(value $(1)))'
# Not exported to the recipes' environment either: exporting expands them, and a $(shell ...) in an ID
# would run.
unexport ID REASON
stage_arg = $(if $(STAGE),--stage $(STAGE),)

## Print every target with its one-line description
.PHONY: help
help:
	@awk '/^## /{doc=substr($$0,4); next} /^[a-zA-Z_-]+:/{if(doc){split($$1,t,":"); printf "  \033[1m%-8s\033[0m %s\n", t[1], doc}; doc=""}' $(MAKEFILE_LIST)
	@echo "  Variables: PERIOD=YYYY-MM (default: last complete month in the data), STAGE=name, SCALE=quick|100k|1m,"
	@echo "             PARAMS=params/companies/harbour (another company's parameters and sample)"

# System libraries for the PDF reports (WeasyPrint needs pango; tests read PDFs with poppler's pdftotext).
SYSTEM_PACKAGES := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core poppler-utils

$(VENV)/.installed: requirements.lock pyproject.toml
	@if ! command -v pdftotext >/dev/null || ! ldconfig -p 2>/dev/null | grep -q libpangoft2; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing system packages: $(SYSTEM_PACKAGES)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES)) >/dev/null \
	      || echo "warning: could not install $(SYSTEM_PACKAGES); PDF rendering may fail"; \
	  else \
	    echo "warning: PDF reports need: sudo apt-get install $(SYSTEM_PACKAGES) (or your OS's pango + poppler)"; \
	  fi; \
	fi
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "uv==$(UV_VERSION)"
	$(BIN)/uv pip install -q --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name scv --display-name "Single Customer View" >/dev/null
	@touch $@

## Create .venv from the pinned lock file and register the Jupyter kernel "scv"
.PHONY: setup
setup: $(VENV)/.installed

## Generate the sample company in data/raw/ (only when data/raw/ holds no sources yet)
.PHONY: data
data: setup
	$(SCV) sample --if-empty

## Run the stage notebooks for PERIOD through Papermill (STAGE=name runs one stage)
.PHONY: run
run: setup data
	$(SCV) run $(period_arg) $(stage_arg)

## The main job: setup + data + run every stage + render the reports for PERIOD
.PHONY: report
report: setup data
	$(SCV) run --render $(period_arg)

## Re-render the reports for PERIOD from processed data (AUDIENCE=name for one audience)
.PHONY: render
render: setup
	$(SCV) render $(period_arg) $(if $(AUDIENCE),--audience $(AUDIENCE),)

## Open JupyterLab on the notebooks with the project's kernel
.PHONY: lab
lab: setup
	$(BIN)/jupyter lab notebooks/

## Run the test suite (unit tests, notebooks with nbval, end-to-end on a small sample)
.PHONY: test
test: setup
	$(BIN)/python -m pytest -n 2 --dist loadgroup

## Lint and format-check the code and notebooks with ruff; check notebooks carry no outputs
.PHONY: lint
lint: setup
	$(BIN)/ruff check src tests notebooks benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/nbstripout --verify notebooks/*.ipynb notebooks/reports/*.ipynb

## Erase a person (ID=tax id, e-mail or customer id) from processed data and the store; keep them out of later runs
.PHONY: erase
erase: setup
	@$(if $(value ID),,echo "usage: make erase ID=<tax id | e-mail | customer id> [REASON='...']"; exit 2;) \
	printf '%s\n' $(call shell_word,ID) | $(SCV) erase --id - $(if $(value REASON),--reason $(call shell_word,REASON),)

## Benchmark the pipeline at SCALE=quick|100k|1m (results in benchmarks/results/)
.PHONY: bench
bench: setup
	$(BIN)/python benchmarks/run.py --scale $(SCALE)

## Recompile requirements.lock from pyproject.toml (needs network to PyPI)
.PHONY: lock
lock: setup
	$(BIN)/uv pip compile --python-version 3.11 --no-header --no-annotate --extra dev -o requirements.lock pyproject.toml

## Remove derived data and reports (and data/raw/ when it holds the generated sample)
.PHONY: clean
clean:
	rm -rf data/processed/* reports/* .pytest_cache benchmarks/work
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	@if [ -f data/raw/.sample ]; then rm -rf data/raw/* data/raw/.sample data/sample_truth/*; echo "removed the generated sample company"; fi
	rm -rf data/processed_harbour reports/harbour
	@if [ -f data/raw_harbour/.sample ]; then rm -rf data/raw_harbour data/sample_truth_harbour; echo "removed the second sample company"; fi
