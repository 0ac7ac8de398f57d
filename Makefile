# escape-snn: every target bootstraps .venv from constraints.txt when it is missing or stale.
# Variables (see README): RUN DATA EPOCHS WIDTH SCALE SEED T TS N NTRAIN STDB_EPOCHS LEAK SURROGATE LR
# TRAIN_THRESHOLDS TRAIN_LEAK NEURON_LR THRESHOLDS CODING NET PRESET MAC_PJ AC_PJ L SIM SIMS CONFIG STDB FORCE

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BASE_STAMP := $(VENV)/.installed
SIMS_STAMP := $(VENV)/.installed-sims

opt = $(if $($(1)),--$(2) "$($(1))")
flag = $(if $(filter 1 yes true,$($(1))),--$(2))
ARGS = $(call opt,RUN,run) $(call opt,DATA,data) $(call opt,EPOCHS,epochs) $(call opt,WIDTH,width) \
       $(call opt,SCALE,scale) $(call opt,SEED,seed) $(call opt,T,timesteps) $(call opt,TS,timesteps-list) \
       $(call opt,N,num-samples) $(call opt,NTRAIN,ntrain) $(call opt,STDB_EPOCHS,stdb-epochs) \
       $(call opt,LEAK,leak) $(call opt,SURROGATE,surrogate) $(call opt,LR,lr) \
       $(call flag,TRAIN_THRESHOLDS,train-thresholds) $(call flag,TRAIN_LEAK,train-leak) \
       $(call opt,NEURON_LR,neuron-lr) \
       $(call opt,THRESHOLDS,thresholds) $(call opt,CODING,coding) $(call opt,NET,net) \
       $(call opt,PRESET,preset) $(call opt,MAC_PJ,mac-pj) $(call opt,AC_PJ,ac-pj) $(call opt,L,levels) \
       $(call opt,SIM,sim) $(call opt,SIMS,sims) $(call opt,CONFIG,config) $(call flag,STDB,stdb) \
       $(call flag,FORCE,force)

STAGES := convert sweep stdb stdb-sweep energy bench latency report

.PHONY: $(STAGES) compare all test venv clean-venv

venv: $(BASE_STAMP)

$(BASE_STAMP): constraints.txt setup.cfg pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	@touch $@

$(SIMS_STAMP): $(BASE_STAMP)
	$(PY) -m pip install -q -c constraints.txt -e '.[test,sims]'
	@touch $@

$(STAGES): $(BASE_STAMP)
	$(PY) -m pipeline $@ $(ARGS)

# brian2 comes with the `sims` extra, installed here when a listed simulator needs it.
compare: $(BASE_STAMP) $(if $(filter brian2,$(SIMS)),$(SIMS_STAMP))
	$(PY) -m pipeline compare $(ARGS)

all: $(BASE_STAMP)
	$(MAKE) convert T=300
	$(MAKE) sweep TS="50 75 100 200 300"
	$(MAKE) stdb T=28
	$(MAKE) energy T=28 NET=stdb
	$(MAKE) report

test: $(SIMS_STAMP)
	$(PY) -m pytest -q

clean-venv:
	rm -rf $(VENV)
