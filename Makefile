# escape-snn: every target bootstraps .venv from constraints.txt when it is missing or stale.
# Stages are targets and settings are Make variables (make help lists both, from their one declaration in
# pipeline/settings.py).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BASE_STAMP := $(VENV)/.installed
SIMS_STAMP := $(VENV)/.installed-sims
# The peers' own environment (PyTorch, snnTorch; nir>=1.0.6): never mixed into .venv.
INTEROP_VENV := .venv-interop
INTEROP_STAMP := $(INTEROP_VENV)/.installed

# The names come from pipeline/settings.py (standard library only: no .venv needed); each one set
# goes to the pipeline as NAME=value, which parses and checks it. So does any other variable given on
# the command line that is not one of this file's own: the pipeline refuses it by name (a typo such
# as TT=100 would otherwise be ignored).
SETTING_NAMES := $(shell $(PYTHON) -m pipeline.settings names)
OWN_NAMES := PYTHON VENV PY BASE_STAMP SIMS_STAMP INTEROP_VENV INTEROP_STAMP SETTING_NAMES OWN_NAMES OTHER_NAMES \
	ARGS STAGES
OTHER_NAMES = $(filter-out $(SETTING_NAMES) $(OWN_NAMES),\
	$(foreach v,$(.VARIABLES),$(if $(filter command line,$(origin $(v))),$(v))))
ARGS = $(strip $(foreach v,$(SETTING_NAMES) $(OTHER_NAMES),$(if $($(v)),'$(v)=$($(v))')))

# The stages, from their one declaration in pipeline/settings.py; compare, bench and interop have rules of
# their own below (each may need another environment first).
STAGES := $(shell $(PYTHON) -m pipeline.settings stages)
OWN_RULES := compare bench interop

.PHONY: $(STAGES) $(INTEROP_VENV) all test test-fast venv clean-venv help

help:
	@$(PYTHON) -m pipeline.settings help

venv: $(BASE_STAMP)

$(BASE_STAMP): constraints.txt setup.cfg pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	@touch $@

$(SIMS_STAMP): $(BASE_STAMP)
	$(PY) -m pip install -q -c constraints.txt -e '.[test,sims]'
	@touch $@

$(INTEROP_STAMP): constraints-interop.txt
	@test -x $(INTEROP_VENV)/bin/python || $(PYTHON) -m venv $(INTEROP_VENV)
	$(INTEROP_VENV)/bin/python -m pip install -q -r constraints-interop.txt
	@touch $@

$(INTEROP_VENV): $(INTEROP_STAMP)

$(filter-out $(OWN_RULES),$(STAGES)): $(BASE_STAMP)
	$(PY) -m pipeline $@ $(ARGS)

# brian2 comes with the `sims` extra, installed here when a listed simulator needs it.
compare: $(BASE_STAMP) $(if $(filter brian2,$(SIMS)),$(SIMS_STAMP))
	$(PY) -m pipeline compare $(ARGS)

# snnTorch runs in .venv-interop, built here when it is needed.
bench: $(BASE_STAMP) $(if $(filter snntorch,$(PEERS)),$(INTEROP_STAMP))
	$(PY) -m pipeline bench $(ARGS)

interop: $(BASE_STAMP) $(INTEROP_STAMP)
	$(PY) -m pipeline interop $(ARGS)

all: $(BASE_STAMP)
	$(MAKE) convert T=300
	$(MAKE) sweep TS="50 75 100 200 300"
	$(MAKE) stdb T=28
	$(MAKE) energy T=28 NET=stdb
	$(MAKE) report

# ruff (pinned in constraints.txt, configured in pyproject.toml) first: a lint error fails in seconds.
# Two pytest workers (pytest-xdist): many tests wait on process start-up, TensorFlow imports and child
# processes, so two halve the suite's wall time on 2 cores; every test writes only under its own tmp_path.
test: $(SIMS_STAMP) $(INTEROP_STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q -n 2

# The inner loop: the tests that need no trained network, no toolbox run and no other environment.
test-fast: $(BASE_STAMP)
	$(PY) -m pytest -q -n 2 -m "not slow"

clean-venv:
	rm -rf $(VENV) $(INTEROP_VENV)
