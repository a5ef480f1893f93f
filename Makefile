# cswm-book: every command sets itself up (creates .venv and installs pinned packages when needed).
#   make book   execute every chapter at its small defaults and render the HTML book (_build/html)
#   make test   unit tests + every chapter under nbval + the rendered book checked in Chromium
#   make cpu    run every chapter at the `cpu` scale with papermill   (runs/cpu/<chapter>/)
#   make full   run every chapter at the paper's scale with papermill (runs/full/<chapter>/)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: book test cpu full browser-deps lint clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $@

# Chromium + ChromeDriver (Debian packages) for the rendered-book test; installed when missing and
# we are root (CI). Elsewhere the browser test is skipped with a message unless CI=true.
browser-deps:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else echo "note: chromium/chromedriver missing; install them to run the browser test"; fi; \
	fi

book: $(STAMP)
	$(VENV)/bin/jupyter-book build -W -n --keep-going .
	@echo "book: $(CURDIR)/_build/html/index.html"

test: $(STAMP) browser-deps
	$(VENV)/bin/ruff check cswm_lib tests benchmarks book/chapters
	$(PY) -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider

cpu: $(STAMP)
	$(PY) -m cswm_lib.book run --params book/params/cpu.yaml --out runs/cpu

full: $(STAMP)
	$(PY) -m cswm_lib.book run --params book/params/full.yaml --out runs/full

lint: $(STAMP)
	$(VENV)/bin/ruff check cswm_lib tests benchmarks book/chapters

clean:
	rm -rf _build
