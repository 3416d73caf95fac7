# make run  - jobgate on 127.0.0.1:8000 with the local cluster and SQLite under $JOBGATE_HOME (./var)
# make test - the whole suite (SQLite and PostgreSQL), ruff and mypy
# make slurm-up / slurm-down - a real single-node Slurm 22.05 (scripts/slurm.sh; root, Debian 12)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export JOBGATE_HOME ?= $(CURDIR)/var

.PHONY: run test lint services slurm-up slurm-down clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(VENV)/.installed $@

run: $(VENV)/.installed
	$(BIN)/jobgate serve

services:
	bash scripts/services.sh

slurm-up:
	bash scripts/slurm.sh up

slurm-down:
	bash scripts/slurm.sh down

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

# Three workers: most tests wait on processes, Slurm or the network, not the CPU.
# The Slurm outage drills (slurm_drill) stop the cluster and cancel every job, and
# some tests take every CPU of its one node (slurm_exclusive), which holds up or
# reorders the jobs of any Slurm test beside them: they run afterwards, one at a
# time; both runs go, and either failing fails the target.
APART = slurm_drill or slurm_exclusive
test: $(VENV)/.installed-test services lint
	status=0; \
	$(BIN)/python -m pytest -n 3 -m "not ($(APART))" || status=$$?; \
	$(BIN)/python -m pytest -m "$(APART)" || status=$$?; \
	exit $$status

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
