# Two commands do all set-up on a fresh machine (see README):
#   make run    creates .venv, installs shopassist, loads the demo catalog, starts the main job
#   make test   creates .venv, installs shopassist with test extras, runs the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test browser lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,torch]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/shopassist ui

test: $(STAMP) browser
	$(BIN)/python -m pytest

# Debian's chromium (and a CJK font for readable screenshots) for the Playwright test; where it
# cannot be installed (not root, no apt), that one test is skipped with the reason
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-wqy-zenhei >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-wqy-zenhei >/dev/null 2>&1; } || \
	    echo "could not install chromium: the browser test will be skipped"; \
	  else echo "no apt or not root: install chromium to run the browser test"; fi; }

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shopassist retrieval assistant evals ranking ui

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_retrieval.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
