# `make test` and `make demo` set up what they need by themselves: a fresh clone needs only Python.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Each stamp records what is installed in the venv, and is redone when pyproject.toml changes.
DEMO_STAMP := $(VENV)/.demo-installed
TEST_STAMP := $(VENV)/.test-installed

.PHONY: demo test lint typecheck pytest coverage matrix bench bench-smoke clean redis-server

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The demo needs the library alone: its emulator runs in process.
$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# uv installs the test dependencies in seconds, where pip takes a minute.
$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[dev]'
	touch $@ $(DEMO_STAMP)

# The main job: a timed report of what the library does, against the embedded emulator unless
# MOSAIC_CLIENT_ID and MOSAIC_CLIENT_SECRET are set.
demo: $(DEMO_STAMP)
	$(BIN)/python examples/quickstart.py

# The four checks run side by side, each one's output printed whole when it ends: one after
# another they took 4-5 minutes on two cores, side by side under 2, as the suite and the
# benchmarks spend much of their time waiting (on sockets, subprocesses and timers).
test:
	@$(MAKE) --no-print-directory --jobs=4 --output-sync=target lint typecheck pytest bench-smoke

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

# The suite runs in a process per core (pytest-xdist): the other checks fill the time its
# tests wait. pytest-cov measures each process (and, as before, no subprocess of a test): a
# worker from its session's start, after conftest.py has imported the package; the main
# process from before that import (the emulator's pytest plugin imports nothing), so the
# package's import is measured there.
# Branch coverage is held at `fail_under` by `coverage report` (pytest-cov's own check is off),
# which prints the table when it falls short (as does `make coverage`).
pytest: $(TEST_STAMP) redis-server
	$(BIN)/python -m pytest --numprocesses=auto --cov --cov-report= --cov-fail-under=0
	@$(BIN)/coverage report > /dev/null || $(BIN)/coverage report

coverage: $(TEST_STAMP)
	$(BIN)/coverage report

# The Redis tests start a redis-server of their own on loopback.
redis-server:
	@.ci/ensure-redis-server

# The tests on every Python the classifiers name, each in a venv of its own (CI runs this).
matrix: redis-server
	.ci/matrix

# This library beside a static header, httpx-auth and Authlib: the tables, then the counts
# (a count that is off fails the run) and the timing goals (reported: see benchmarks/_report.py);
# then what importing it costs a process. About 7 minutes on two cores.
# QUICK=1: the smoke run's tiny sizes, about a minute, to see that it works (no goals, no
# import costs). The plot goes to .benchmarks/ (ignored by git) unless PLOT names a path:
# PLOT=benchmarks/rollover.png refreshes the README's.
# The peers run on httpx2 (Authlib 1.9), which needs Python 3.11.
QUICK_RUN = $(filter-out 0,$(QUICK))
bench: $(TEST_STAMP) redis-server
	$(BIN)/python -m benchmarks $(if $(QUICK_RUN),--quick) $(if $(PLOT),--plot $(PLOT))
	$(if $(QUICK_RUN),,$(BIN)/python benchmarks/startup_cost.py)

# The same scenarios at tiny sizes, so that the benchmarks keep working: the timings mean
# nothing, but a count that is off fails it. CI runs it on Python 3.11.
bench-smoke: $(TEST_STAMP) redis-server
	@if $(BIN)/python -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then \
		$(BIN)/python -m benchmarks --quick; \
	else \
		echo "bench-smoke: the benchmarks need Python 3.11 or newer (httpx2): not run"; \
	fi

clean:
	rm -rf $(VENV) .venv-* .mypy_cache .pytest_cache .ruff_cache
