# Every target sets up .venv by itself on a fresh clone: only Python 3.11+ is needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed
PYTEST_ARGS ?=
FLIGHTS_ARGS ?=

.PHONY: help venv test test-thorough lint format generate docs demo flights bench package-check clean

help:
	@echo "make demo           run the bank account example"
	@echo "make flights        run the flight-booking service under load (FLIGHTS_ARGS='--short')"
	@echo "make test           run the whole test suite with coverage"
	@echo "make test-thorough  the same with many more hypothesis examples"
	@echo "make lint           ruff check, ruff format --check, mypy --strict"
	@echo "make format         apply ruff's fixes and formatting"
	@echo "make generate       write the sync twins of the async sources (tools/unasync.py)"
	@echo "make docs           build the docs (warnings are errors) and run their doctests"
	@echo "make bench          run the benchmarks (BENCH_ARGS='--quick', '--list', names...)"
	@echo "make package-check  build sdist and wheel, install the wheel in a clean venv, try it"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres,nats,kafka]'
	touch $@

venv: $(STAMP)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $@

test: $(STAMP)
	$(BIN)/python -m coverage erase
	$(BIN)/python -m coverage run -m pytest $(PYTEST_ARGS)
	$(BIN)/python -m coverage combine --quiet
	$(BIN)/python -m coverage report

test-thorough: $(STAMP)
	HYPOTHESIS_PROFILE=thorough $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/python tools/unasync.py --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict src

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

generate: $(STAMP)
	$(BIN)/python tools/unasync.py

docs: $(STAMP)
	bash .ci/ensure-graphviz
	$(BIN)/sphinx-build -E -n -T -W --keep-going -q -b html docs docs/_build/html
	$(BIN)/sphinx-build -E -n -T -W --keep-going -q -b doctest docs docs/_build/doctest

demo: $(STAMP)
	$(BIN)/python examples/bank_account.py

flights: $(STAMP)
	$(BIN)/python examples/flight_booking $(FLIGHTS_ARGS)

bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

package-check: $(STAMP)
	bash .ci/package-check

clean:
	rm -rf $(VENV) dist build docs/_build .coverage .coverage.* .mypy_cache .ruff_cache
