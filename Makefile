# transferlab: `make app` to play, `make test` to check everything. Both set up what they need.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt pyproject.toml | cksum | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8501
# tcmalloc makes CPU training 1.05-2.7x faster (DESIGN.md); used when Debian's package is there.
TCMALLOC := /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
RUN := $(if $(wildcard $(TCMALLOC)),LD_PRELOAD=$(TCMALLOC)) PYTHONPATH=$(CURDIR)
DEBIAN_PACKAGES := dataset-fashion-mnist wordnet-base libtcmalloc-minimal4 chromium

.PHONY: setup system app test unit lessons browser lint format bench lab clean

setup: system $(STAMP)

# As root on Debian: the Fashion-MNIST files, WordNet (glosses for the text lessons), tcmalloc and Chromium (for the browser test).
# Elsewhere this step is skipped; the engine then downloads Fashion-MNIST when online.
system:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian packages: $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  fi; \
	else echo "not root on Debian: skipping $(DEBIAN_PACKAGES) (see README)"; fi

# The pinned requirements, then the project itself in editable mode: `.venv/bin/transferlab` runs this clone.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	rm -f $(VENV)/.installed-*; touch $@

app: setup
	$(RUN) $(VENV)/bin/transferlab app --host $(HOST) --port $(PORT)

lab: setup
	$(RUN) $(VENV)/bin/transferlab lab

test: setup lint unit lessons browser

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format:
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

unit:
	$(RUN) $(PY) -m pytest tests -m "not browser" -q

lessons:
	@if ls lessons/*.ipynb >/dev/null 2>&1; then \
	  $(RUN) $(PY) -m pytest --nbval-lax --nbval-sanitize-with lessons/nbval_sanitize.cfg lessons -q -p no:cacheprovider; \
	else echo "no lessons yet"; fi

browser:
	@if ls tests/test_browser*.py >/dev/null 2>&1; then $(RUN) $(PY) -m pytest tests -m browser -q; \
	else echo "no browser test yet"; fi

bench: setup
	$(RUN) $(PY) -m transferlab.bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache data/cache artifacts build *.egg-info
