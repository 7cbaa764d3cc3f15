# Two commands on a fresh machine: `make run` and `make test`.
# Both create .venv and install what they need on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck pytest bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/bastion run

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/loop_tick.py
	$(BIN)/python benchmarks/time_to_first_order.py
	$(BIN)/python benchmarks/call_overhead.py
	$(BIN)/python benchmarks/budget.py
	$(BIN)/python benchmarks/llm_chain.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
