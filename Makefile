# keygate developer commands. CI runs `make test` and `make image-test` (.ci/run).
#
# Every Python dependency comes from the committed lock, uv.lock, installed by uv
# (docs/contributing.md says why). uv itself is pinned, with hashes, in requirements-uv.txt and
# installed into .tools/; `make lock` re-resolves both.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TOOLS := .tools
UV := $(TOOLS)/bin/uv

# uv works on $(VENV) with the machine's Python; it never downloads an interpreter of its own.
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never
# `--locked` refuses to run when pyproject.toml and uv.lock disagree, instead of re-resolving.
SYNC := $(UV) sync --locked --quiet

.PHONY: demo docs bench sizing sizing-docs soak test pytest image-test lint typecheck servers lock clean

# Extra options for `keygate demo`, e.g. make demo DEMO_FLAGS="--gateway-port 9080".
DEMO_FLAGS ?=

$(UV): requirements-uv.txt
	@rm -rf $(TOOLS)
	@$(PYTHON) -m venv $(TOOLS)
	@$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
		--require-hashes -r requirements-uv.txt
	@touch $@

# Each target syncs the venv to exactly what it needs (fast when nothing changed). The demo's
# runtime-only sync is --inexact, so it never removes the test tools of a venv that has them.
# Every sync builds the relay's compiled part (gateway/relay/_plain.c): a C compiler and the
# Python headers first (ensure-packages.sh installs Debian's when they are missing).
compiler:
	@PYTHON=$(PYTHON) tests/harness/ensure-packages.sh gcc python3-dev
runtime-env: $(UV) compiler
	@$(SYNC) --inexact
# axe-core for the browser tests' accessibility check, exactly as package-lock.json pins it.
# npm comes with the machine's nodejs package, which ensure-packages.sh installs when missing.
node_modules/.package-lock.json: package.json package-lock.json
	@command -v npm >/dev/null 2>&1 || tests/harness/ensure-packages.sh nodejs
	@command -v npm >/dev/null 2>&1 || { echo "make test-env needs npm (Debian: nodejs npm)" >&2; exit 1; }
	@npm ci --ignore-scripts --no-audit --no-fund --silent

test-env: $(UV) compiler node_modules/.package-lock.json
	@$(SYNC) --extra test
bench-env: $(UV) compiler
	@$(SYNC) --extra test --extra bench
.PHONY: compiler runtime-env test-env bench-env

# Installs the server packages and tools the suite drives when they are missing (root only).
servers:
	@tests/harness/ensure-packages.sh

# The whole stack with demo data on this machine, until Ctrl-C (see README). Only the servers
# the demo will run itself are installed: none for a KEYGATE_DATABASE_URL / KEYGATE_REDIS_URL
# that is set (an empty list must not reach ensure-packages.sh, which then installs everything).
DEMO_PACKAGES = $(strip $(if $(KEYGATE_DATABASE_URL),,postgresql) $(if $(KEYGATE_REDIS_URL),,redis-server))
demo: runtime-env
	$(if $(DEMO_PACKAGES),@tests/harness/ensure-packages.sh $(DEMO_PACKAGES))
	@$(BIN)/keygate demo $(DEMO_FLAGS)

lint: test-env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: test-env
	$(BIN)/mypy

# The benchmark (tests/bench, docs/performance.md): keygate against nginx on this machine, a
# markdown table on stdout and the same as JSON in test-artifacts/bench/. Options: BENCH_FLAGS.
BENCH_FLAGS ?=
bench: bench-env
	@tests/harness/ensure-packages.sh postgresql redis-server nginx wrk
	$(BIN)/python -m tests.bench $(BENCH_FLAGS)

# The sizing tables of docs/operations/scaling.md from a bench JSON (default: the last run's).
# sizing-docs also copies the JSON to docs/operations/scaling-bench.json and rewrites the tables
# on the page; tests/docs/test_scaling.py holds the page to that JSON.
SIZING_JSON ?= test-artifacts/bench/results.json
sizing: test-env
	$(BIN)/python -m tests.bench.sizing $(SIZING_JSON)
sizing-docs: test-env
	$(BIN)/python -m tests.bench.sizing --update-docs $(SIZING_JSON)

# The documentation site (mkdocs, Material theme) into site/; any warning fails the build.
docs: test-env
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The suite on PYTEST_WORKERS pytest-xdist workers, each with a Postgres and a Redis of its own
# (most of a test's time is spent waiting on servers and processes it starts, so there are more
# workers than cores; 0 runs it in one process). Then tests/reliability, which loads the
# machine on purpose and measures how keygate holds up, on its own.
PYTEST_WORKERS ?= 4
pytest: test-env servers
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist worksteal --ignore=tests/reliability
	$(BIN)/pytest tests/reliability

test: lint typecheck docs pytest

# The container image built from deploy/Dockerfile with podman and run for real: the services
# from the image against the suite's own Postgres and Redis (tests/image).
image-test: test-env servers
	@tests/harness/ensure-packages.sh podman runc debootstrap
	$(BIN)/pytest -m image tests/image

# Minutes of steady load on real keygate processes with a Redis and a Postgres restart in the
# middle (tests/soak, docs/reliability.md); not part of `make test`. Length: SOAK_SECONDS.
SOAK_SECONDS ?= 240
soak: test-env servers
	SOAK_SECONDS=$(SOAK_SECONDS) $(BIN)/pytest -p no:cacheprovider -s --timeout=900 tests/soak/soak.py

# Re-resolves every dependency to its newest allowed version, and uv itself: review the diff
# of uv.lock and requirements-uv.txt like any other change.
lock: $(UV)
	{ echo "# uv, which installs everything else from uv.lock; rewritten by \`make lock\`."; \
	  echo uv | $(UV) pip compile --quiet --universal --generate-hashes --python-version 3.11 \
		--no-header - ; } > requirements-uv.txt.new
	mv requirements-uv.txt.new requirements-uv.txt
	$(MAKE) --no-print-directory $(UV)
	$(UV) lock --upgrade

clean:
	rm -rf $(VENV) $(TOOLS) node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis
	rm -f gateway/relay/*.so
