# cswm-book: every command sets itself up (creates .venv and installs the pinned packages it needs:
# the library plus the pyproject extras named in EXTRAS_<what>, when pyproject.toml changed).
#   make book   execute every chapter at its small defaults and render the HTML book (_build/html)
#   make test   unit tests + every chapter under nbval + the rendered book checked in Chromium
#   make cpu    run every chapter at the `cpu` scale with papermill   (runs/cpu/<chapter>/)
#   make full   run every chapter at the paper's scale with papermill (runs/full/<chapter>/)
#   make lab    JupyterLab on the explorer chapter; every .py chapter opens as a notebook
#   EXECUTOR=local:N | ray (cpu, full): where the sweeps' runs go (cswm_lib.executor; ray: RAY_ADDRESS)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# extras of pyproject.toml each command needs (the library itself needs none)
EXTRAS_book := book
EXTRAS_test := book,test,lab,cluster
EXTRAS_lab := lab
EXTRAS_cluster := book,cluster
EXECUTOR ?=
# `make full EXECUTOR=ray` also installs the cluster extra and passes --executor to the runner
RUN_DEPS := $(VENV)/.installed-book $(if $(filter ray%,$(EXECUTOR)),$(VENV)/.installed-cluster)
RUN_FLAGS := $(if $(EXECUTOR),--executor $(EXECUTOR))
EXTRAS_lint := test

.PHONY: book test cpu full lab browser-deps lint clean

# $(VENV)/.installed-<what>: the venv holds the library and the extras of <what> for this pyproject.toml
$(VENV)/.installed-%: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[$(EXTRAS_$*)]"
	@if $(PY) -c "import ipykernel" 2>/dev/null; then $(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null; fi
	@touch $@

# Chromium + ChromeDriver (Debian packages) for the rendered-book test; installed when missing and
# we are root (CI). Elsewhere the browser test is skipped with a message unless CI=true.
browser-deps:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else echo "note: chromium/chromedriver missing; install them to run the browser test"; fi; \
	fi

book: $(VENV)/.installed-book
	$(VENV)/bin/jupyter-book build -W -n --keep-going .
	@echo "book: $(CURDIR)/_build/html/index.html"

test: $(VENV)/.installed-test browser-deps
	$(VENV)/bin/ruff check cswm_lib tests benchmarks book/chapters
	$(PY) -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider

cpu: $(RUN_DEPS)
	$(PY) -m cswm_lib.book run --params book/params/cpu.yaml --out runs/cpu $(RUN_FLAGS)

full: $(RUN_DEPS)
	$(PY) -m cswm_lib.book run --params book/params/full.yaml --out runs/full $(RUN_FLAGS)

# JUPYTER_CONFIG_PATH adds .jupyter/labconfig: .py chapters open as notebooks (jupytext), no
# news or update checks (nothing leaves the machine).
lab: $(VENV)/.installed-lab
	JUPYTER_CONFIG_PATH=$(CURDIR)/.jupyter $(VENV)/bin/jupyter lab book/chapters/11_explorer.py

lint: $(VENV)/.installed-lint
	$(VENV)/bin/ruff check cswm_lib tests benchmarks book/chapters

clean:
	rm -rf _build
