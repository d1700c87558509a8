# Loupe: `make run` starts everything on this machine, `make test` runs the test suite.
# Both create or update the virtual environment .venv from requirements.txt first.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
VENV_PYTHON := $(VENV)/bin/python
# Extra arguments for pytest: make test ARGS="-k health"
ARGS ?=
# pip repeats a warning per ignored find-links location on this machine, and a line per
# requirement already installed: leave those out, keep the rest (pip's status is kept).
PIP_NOISE := -e 'is ignored: it is neither' -e '^Requirement already satisfied'

.PHONY: help venv run test lint

help:
	@echo "make run    start Loupe (embedded Redis, web server, Celery worker and beat) in the foreground"
	@echo "make test   run the test suite (ARGS=\"...\" goes to pytest)"
	@echo "make lint   check the code with ruff"

$(VENV)/.installed: requirements.txt
	test -x $(VENV_PYTHON) || $(PYTHON) -m venv $(VENV)
	$(VENV_PYTHON) -m pip install --disable-pip-version-check --progress-bar off -r requirements.txt 2>&1 \
		| { grep -v $(PIP_NOISE) || [ $$? -eq 1 ]; }
	touch $@

venv: $(VENV)/.installed

run: $(VENV)/.installed
	$(VENV_PYTHON) manage.py run_stack

test: $(VENV)/.installed
	$(VENV_PYTHON) tests/run.py $(ARGS)

lint: $(VENV)/.installed
	$(VENV_PYTHON) -m ruff check .
