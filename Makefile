# `make test` and `make demo` set up what they need by themselves: a fresh clone needs only Python.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest coverage bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when the project's dependencies change.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# The main job: a timed report of what the library does, against the embedded emulator unless
# MOSAIC_CLIENT_ID and MOSAIC_CLIENT_SECRET are set.
demo: $(STAMP)
	$(BIN)/python examples/quickstart.py

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# `coverage run`, not pytest-cov: the emulator's pytest plugin imports the package before
# pytest-cov would start measuring. Branch coverage is held at `fail_under`; the table is
# printed when it falls short (and by `make coverage`), so pytest's summary closes the run.
pytest: $(STAMP)
	$(BIN)/coverage run -m pytest
	@$(BIN)/coverage report > /dev/null || $(BIN)/coverage report

coverage: $(STAMP)
	$(BIN)/coverage report

# Speed goals are shown here, not asserted by timed tests.
bench: $(STAMP)
	$(BIN)/python benchmarks/warm_request.py
	$(BIN)/python benchmarks/cold_start_stall.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
