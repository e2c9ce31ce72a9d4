# keygate developer commands. `make test` is the one CI runs (.ci/run).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo docs bench soak test lint typecheck unit servers clean

# Extra options for `keygate demo`, e.g. make demo DEMO_FLAGS="--gateway-port 9080".
DEMO_FLAGS ?=

# The venv is rebuilt whenever the dependency list changes.
$(BIN)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

# Installs Postgres/Redis server binaries for the test harness when missing (root only).
servers:
	@tests/harness/ensure-servers.sh

# The whole stack with demo data on this machine, until Ctrl-C (see README).
demo: $(BIN)/.installed
	@tests/harness/ensure-servers.sh postgresql redis-server
	@$(BIN)/keygate demo $(DEMO_FLAGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy

# The benchmark (tests/bench, docs/performance.md): keygate against nginx on this machine, a
# markdown table on stdout and the same as JSON in test-artifacts/bench/. Options: BENCH_FLAGS.
BENCH_FLAGS ?=
$(BIN)/.installed-bench: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	@touch $@

bench: $(BIN)/.installed-bench
	@tests/bench/ensure-tools.sh
	$(BIN)/python -m tests.bench $(BENCH_FLAGS)

# The documentation site (mkdocs, Material theme) into site/; any warning fails the build.
docs: $(BIN)/.installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

test: $(BIN)/.installed servers lint typecheck docs
	$(BIN)/pytest

# Minutes of steady load on real keygate processes with a Redis and a Postgres restart in the
# middle (tests/soak, docs/reliability.md); not part of `make test`. Length: SOAK_SECONDS.
SOAK_SECONDS ?= 240
soak: $(BIN)/.installed servers
	SOAK_SECONDS=$(SOAK_SECONDS) $(BIN)/pytest -p no:cacheprovider -s --timeout=900 tests/soak/soak.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
