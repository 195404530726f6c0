# Two entry points: `make run` (the whole simulated store) and `make test` (the test suite).
# Both create .venv with Python 3.11 and install the project into it on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/instore demo

test: $(VENV)/.installed
	$(BIN)/pytest -n 2 --dist loadfile --durations=30  # two workers, a file's tests on one; the slowest listed

lint: $(VENV)/.installed
	$(BIN)/ruff check .

bench: $(VENV)/.installed
	$(BIN)/instore bench

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
