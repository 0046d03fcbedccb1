# The two front-door commands (see README.md):
#   make demo   set everything up, then run the whole pipeline on built-in sample data
#   make test   set everything up, then run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint bench

setup:
	@bash tools/setup_env.sh

demo: setup
	$(VENV)/bin/gaitdata demo --out demo_output

test: setup
	$(PY) -m pytest -n 2 --timeout=600 -q

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(PY) tools/bench_extract.py
