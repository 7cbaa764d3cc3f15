# Two commands on a fresh machine: `make run` and `make test`.
# Both create .venv and install what they need on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test system-packages lint typecheck pytest bench dashboard clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Ctrl-C (SIGINT) or SIGTERM stops `bastion run` after the current step with 130 or 143: a clean
# stop, not a make error; any other status still fails. The traps keep this recipe's shell alive
# through the signal, which reaches the whole process group (Ctrl-C, timeout, systemd), so that
# it waits for bastion's status; bastion gets the default handlers back. A SIGTERM sent to make's
# pid alone is not passed on to bastion: signal the group (kill -TERM -PGID) instead.
run: $(STAMP)
	@trap : INT TERM; $(BIN)/bastion run || { \
	    status=$$?; [ $$status -eq 130 ] || [ $$status -eq 143 ] || exit $$status; }

test: system-packages $(STAMP) lint typecheck pytest

# Chromium, the PostgreSQL server, Prometheus (promtool) and Alertmanager (amtool), installed with
# apt-get when missing and possible; otherwise one line naming the command to run. Prints nothing when everything is there.
system-packages:
	@sh scripts/system-packages.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

# Debian keeps the PostgreSQL server binaries (pg_ctl, initdb) off PATH; the store tests need them.
# Globbed in the shell, not by make, so a PostgreSQL that system-packages just installed is found.
pytest: system-packages $(STAMP)
	for bindir in /usr/lib/postgresql/*/bin; do [ -d "$$bindir" ] && PATH="$$bindir:$$PATH"; done; \
	export PATH; $(BIN)/pytest -q

# Every benchmarks/*.py in turn, their JSON in one file (build/ is ignored). PostgreSQL's
# figures need pg_ctl: the newest /usr/lib/postgresql/*/bin is put on PATH when there is one.
# To publish: cp build/bench.json docs/bench.json && .venv/bin/python benchmarks/readme_table.py --write
PG_BIN := $(lastword $(sort $(wildcard /usr/lib/postgresql/*/bin)))
bench: $(STAMP)
	PATH="$(if $(PG_BIN),$(PG_BIN):)$$PATH" $(BIN)/python benchmarks/run_all.py --out build/bench.json

# deploy/grafana/bastion.json from deploy/grafana/generate.py (grafana-foundation-sdk); a test
# fails while the committed file differs from a fresh generation.
dashboard: $(STAMP)
	$(BIN)/python deploy/grafana/generate.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
