# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
JS     := clients/js

.PHONY: run test test-py test-js deps system-deps bench clean

run: $(BIN)/livecart
	$(BIN)/livecart demo

# Serving needs only the package itself; the tests' extras (Playwright, hypothesis, …) come with `make test`.
# setuptools' note on editable installs ("Editable installation.") is information, not a warning: hushed.
PIP_INSTALL := PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install --quiet --disable-pip-version-check

$(BIN)/livecart: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -e .
	touch $@

$(VENV)/.test-deps: pyproject.toml $(BIN)/livecart
	$(PIP_INSTALL) -e '.[test]'
	touch $@

# What the tests need beyond Python: Node packages, Debian's Chromium, redis-server, redis-cli
# (redis-tools: the tests build Redis Clusters with it) and haproxy (deploy/haproxy is tested).
system-deps:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v redis-cli >/dev/null || missing="$$missing redis-tools"; \
	command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing="$$missing haproxy"; \
	if [ -n "$$missing" ]; then \
		echo "installing from Debian:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(JS)/node_modules/.package-lock.json: $(JS)/package-lock.json
	cd $(JS) && npm ci --no-audit --no-fund --loglevel=error

deps: $(VENV)/.test-deps system-deps $(JS)/node_modules/.package-lock.json

test: deps
	$(MAKE) --no-print-directory -j2 --output-sync=target test-py test-js

# Python and browser tests spread over processes per file (servers, Redis and Chromium per test file).
test-py:
	$(BIN)/pytest -q -p no:cacheprovider -n 3 --dist loadfile

test-js:
	cd $(JS) && npm run --silent check-bundle && LIVECART_BIN=$(CURDIR)/$(BIN)/livecart npm test

bench: $(BIN)/livecart
	$(BIN)/python bench/validate.py
	$(BIN)/python bench/room.py
	$(BIN)/python bench/mailing.py
	$(BIN)/python bench/customers.py
	$(BIN)/python bench/browsing.py

clean:
	rm -rf $(VENV) $(JS)/node_modules build *.egg-info
