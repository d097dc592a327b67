# peerlearn: `make run` starts the whole service on this machine, `make test` runs the suite.
# Both create .venv with Python 3.11 and install the project the first time (and again
# whenever pyproject.toml changes), then prepare the embedding model once.

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.peerlearn-pyproject.sha256
PYTEST_ARGS ?=

.PHONY: help install model browser run test test-fast lint bench-help clean-state

help:
	@echo "make run    - start PostgreSQL, Temporal (+ Web UI), a worker and the API; Ctrl-C stops all"
	@echo "make test   - run the whole test suite"
	@echo "make test-fast - the unit tier only (tests/unit: pure functions, no database, Temporal or model)"
	@echo "make lint   - ruff + mypy"
	@echo "make install / make model - only create the venv / prepare the embedding model"

# Reinstall only when pyproject.toml's content changed since the last install
# (a content hash, not mtimes: git checkouts touch mtimes).
install:
	@test -x $(BIN)/python || { echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	@want=$$(sha256sum pyproject.toml | cut -d' ' -f1); \
	if [ "$$(cat $(STAMP) 2>/dev/null)" != "$$want" ]; then \
		echo "installing peerlearn and its pinned dependencies into $(VENV) (first time: a few minutes)"; \
		$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]' && echo "$$want" > $(STAMP); \
	fi

model: install
	@$(BIN)/peerlearn model prepare

run: model
	exec $(BIN)/peerlearn run

# The analyst page is tested in Debian's headless Chromium; install it when missing
# (as root, from the distribution's registry). Without it the browser tests skip.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing Debian's chromium for the browser tests"; \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
				|| echo "chromium could not be installed: browser tests will skip"; \
		else echo "no /usr/bin/chromium: browser tests will skip (apt-get install chromium)"; fi; \
	fi

test: model browser
	$(BIN)/python -m pytest -q -p no:cacheprovider --maxfail=10 $(PYTEST_ARGS)

# The fast tier: pure functions only, no PostgreSQL, Temporal or model, under a minute.
test-fast: install
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/unit

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy .

bench-help:
	@echo "Benchmarks run against a live stack: start 'make run' in another terminal, then e.g."
	@echo "  $(BIN)/python bench/cycles.py --help"
	@ls bench/*.py 2>/dev/null || true

# Removes all local state (database, Temporal history, model). Asks first.
clean-state:
	@read -p "delete .peerlearn (database, workflow history, model)? [y/N] " a && [ "$$a" = y ] && rm -rf .peerlearn
