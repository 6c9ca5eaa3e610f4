# Two entry points do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test typecheck min-deps lint bench peers clean system-deps image-deps images test-images
MIN_VENV := .venv-min
# what exercises each direct dependency: client + retries, loader + fast path, Flask API, the front,
# own models (pandas, skops on pipelines), the Kubernetes client, the local registry
MIN_TESTS := tests/unit tests/integration/test_comet_client.py tests/serving/test_loader.py \
	tests/serving/test_api.py tests/serving/test_workers.py tests/serving/test_front.py \
	tests/serving/test_own_models.py \
	tests/k8s/test_kube.py \
	tests/local_registry/test_endpoints.py

$(BIN)/python:
	$(shell command -v $(PYTHON) || command -v python3) -m venv $(VENV)

# The pins of the images hold for the test venv too, so the tests run what the images run.
$(STAMP): pyproject.toml docker/constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,bench]' \
	    --constraint docker/constraints.txt
	touch $(STAMP)

# moto_server (the S3-compatible server of the remote-asset tests) in a venv of its own: see
# tests/support/stores-requirements.txt
STORES_VENV := .venv-stores
$(STORES_VENV)/.installed: tests/support/stores-requirements.txt
	rm -rf $(STORES_VENV)
	$(shell command -v $(PYTHON) || command -v python3) -m venv $(STORES_VENV)
	$(STORES_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
	    -r tests/support/stores-requirements.txt
	touch $@

# The peers of bench part 13 (MLServer + mlserver-sklearn, KServe), each in a venv of its own
# under .venv-peers: their pins conflict with ours and with each other's (fastapi).
PEERS_VENV := .venv-peers
$(PEERS_VENV)/%/.installed: bench/peer_servers/%-requirements.txt
	rm -rf $(PEERS_VENV)/$*
	$(shell command -v $(PYTHON) || command -v python3) -m venv $(PEERS_VENV)/$*
	$(PEERS_VENV)/$*/bin/python -m pip install --quiet --disable-pip-version-check -r $<
	touch $@

peers: $(PEERS_VENV)/mlserver/.installed $(PEERS_VENV)/kserve/.installed

# Debian packages the browser test, the benchmarks (wrk, curl, and nginx as a baseline front) and
# the alert-rule tests (promtool, from `prometheus`) need; skipped when already present.
system-deps: | $(BIN)/python
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v wrk >/dev/null \
	  && command -v promtool >/dev/null && command -v nginx >/dev/null \
	  || { echo "installing chromium, chromium-driver, wrk, curl, prometheus, nginx with apt (log: $(VENV)/apt.log)"; \
	       { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	           chromium chromium-driver wrk curl prometheus nginx; } >$(VENV)/apt.log 2>&1 \
	       || { tail -n 30 $(VENV)/apt.log; exit 1; }; }

# mypy, configured in pyproject.toml: strict on common/ and the seams (the Registry protocol, the
# SyncContext), lenient on the rest of the sidecar
typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) $(STORES_VENV)/.installed system-deps
	$(BIN)/ruff check model_contract common registry_sync local_registry serving devkit tests bench
	$(MAKE) typecheck
	$(BIN)/python -m pytest

# The lower bounds of pyproject.toml, tested: a venv with every direct dependency at its minimum.
min-deps: $(STAMP)
	rm -rf $(MIN_VENV)
	$(BIN)/python -m venv $(MIN_VENV)
	$(BIN)/python docker/pin_constraints.py --minimum >$(MIN_VENV)/minimum.txt
	$(MIN_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
	    -e '.[sidecar,serving,registry]' pytest pytest-timeout hypothesis psutil \
	    --constraint $(MIN_VENV)/minimum.txt
	$(MIN_VENV)/bin/python -m pytest -q -p no:cacheprovider $(MIN_TESTS)

# The images, built here without a Docker daemon (docker/local_images.py): Debian's buildah and
# debootstrap (the base is Debian bookworm made locally; no image can be pulled on this machine).
image-deps: | $(BIN)/python
	@command -v buildah >/dev/null && command -v debootstrap >/dev/null \
	  || { echo "installing buildah, debootstrap with apt (log: $(VENV)/apt-images.log)"; \
	       { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	           buildah debootstrap; } >$(VENV)/apt-images.log 2>&1 \
	       || { tail -n 30 $(VENV)/apt-images.log; exit 1; }; }

# Both images from the unchanged Dockerfiles of docker/, on a local base cached in .images/;
# prints each image's size and build time. nice: the build shares the cores with the tests.
images: image-deps
	nice -n 10 $(BIN)/python docker/local_images.py

# The pod run from the built images against the local registry (tests/images); here a missing
# or stale image fails the tests instead of skipping them.
test-images: $(STAMP) images
	REQUIRE_IMAGES=1 $(BIN)/python -m pytest -q -p no:cacheprovider -m images tests/images

# exec: the demo is make's own child, so `kill -TERM` of make (which make forwards) stops it.
# DEMO_ARGS passes options, e.g. make demo DEMO_ARGS='--reset --port 8080'.
demo: $(STAMP)
	exec $(BIN)/python -m devkit.demo $(DEMO_ARGS)

bench: $(STAMP) system-deps peers
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(MIN_VENV) $(STORES_VENV) $(PEERS_VENV) .demo .pytest_cache .images
