# Two entry points do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean system-deps front-deps

$(BIN)/python:
	$(shell command -v $(PYTHON) || command -v python3) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

# Debian packages the browser test, the serving front (nginx) and the benchmarks need; skipped
# when already present.
system-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v wrk >/dev/null \
	  && command -v nginx >/dev/null \
	  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver wrk curl nginx; }

test: $(STAMP) system-deps
	$(BIN)/ruff check model_contract registry_sync local_registry serving tests bench
	$(BIN)/python -m pytest

# nginx alone, for the demo (serving runs behind it, as in the image).
front-deps:
	@command -v nginx >/dev/null \
	  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx; }

demo: $(STAMP) front-deps
	$(BIN)/python -m registry_sync.demo

bench: $(STAMP) system-deps
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .demo .pytest_cache
