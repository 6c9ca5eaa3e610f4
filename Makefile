# Two entry points do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean system-deps

$(BIN)/python:
	$(shell command -v $(PYTHON) || command -v python3) -m venv $(VENV)

# The pins of the images hold for the test venv too, so the tests run what the images run.
$(STAMP): pyproject.toml docker/constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,bench]' \
	    --constraint docker/constraints.txt
	touch $(STAMP)

# Debian packages the browser test, the benchmarks and the alert-rule tests (promtool, from
# `prometheus`) need; skipped when already present.
system-deps: | $(BIN)/python
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v wrk >/dev/null \
	  && command -v promtool >/dev/null \
	  || { echo "installing chromium, chromium-driver, wrk, curl, prometheus with apt (log: $(VENV)/apt.log)"; \
	       { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	           chromium chromium-driver wrk curl prometheus; } >$(VENV)/apt.log 2>&1 \
	       || { tail -n 30 $(VENV)/apt.log; exit 1; }; }

test: $(STAMP) system-deps
	$(BIN)/ruff check model_contract registry_sync local_registry serving tests bench
	$(BIN)/python -m pytest

demo: $(STAMP)
	$(BIN)/python -m registry_sync.demo

bench: $(STAMP) system-deps
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .demo .pytest_cache
