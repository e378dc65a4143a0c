# Two commands do all set-up on a fresh machine (see README):
#   make run    creates .venv, installs shopassist, loads the demo catalog, starts the main job
#   make stop   stops the shared background model server (it also stops itself after 15 idle minutes)
#   make test   creates .venv, installs shopassist with test extras, runs the checks (make check),
#               then the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run stop test check browser servers lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,torch]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/shopassist ui

stop:
	test ! -x $(BIN)/shopassist || $(BIN)/shopassist model stop

# the fast static checks first (lint, format, types, the import-layer contract), then the suite
test: check browser servers
	$(BIN)/python -m pytest

check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shopassist retrieval assistant evals ranking ui
	$(BIN)/python scripts/check_layers.py

# Debian's chromium (and a CJK font for readable screenshots) for the Playwright test; where it
# cannot be installed (not root, no apt), that one test is skipped with the reason
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-wqy-zenhei >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-wqy-zenhei >/dev/null 2>&1; } || \
	    echo "could not install chromium: the browser test will be skipped"; \
	  else echo "no apt or not root: install chromium to run the browser test"; fi; }

# Debian's redis-server and postgresql for the shared-backend contract tests (issue 16); where
# they cannot be installed, those tests are skipped with the reason
servers:
	@{ command -v redis-server >/dev/null 2>&1 && { command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }; } || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server postgresql >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server postgresql >/dev/null 2>&1; } || \
	    echo "could not install redis-server/postgresql: the shared-backend tests will be skipped"; \
	  else echo "no apt or not root: install redis-server and postgresql to run the shared-backend tests"; fi; }

lint: check

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_retrieval.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
