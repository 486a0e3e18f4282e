# The README's two commands: `make demo` and `make test`. Both create .venv on first use.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export TAILOR_HOME ?= $(CURDIR)/var

.PHONY: demo test test-slow test-all lint format install clean browser postgres ui dashboard

$(BIN)/tailor: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and on its own, so pip takes the local CPU build instead of a CUDA one
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/tailor

install: $(BIN)/tailor

demo: install
	$(BIN)/tailor demo

# The report and UI tests drive the distribution's headless Chromium (CJK font for the zh-CN report).
# Fails when it is missing and cannot be installed (needs apt and root): the test targets require it.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  (apt-get update -qq && apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null) || \
	  { echo "error: chromium is missing and could not be installed (needs apt and root)" >&2; exit 1; }
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { echo "error: chromium is still not on PATH after installing it" >&2; exit 1; }

# The distributed-sweep test starts its own throwaway server from the distribution's PostgreSQL binaries.
# Fails when they are missing and cannot be installed (needs apt and root).
PG_FOUND := ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null 2>&1
postgres:
	@$(PG_FOUND) || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null) || \
	  { echo "error: postgresql is missing and could not be installed (needs apt and root)" >&2; exit 1; }
	@$(PG_FOUND) || { echo "error: pg_ctl is still missing after installing postgresql" >&2; exit 1; }

# The test targets require every component their tests use: without one, pytest stops at its start (tests/conftest.py)
# and the tests that need it fail instead of skipping. `make test REQUIRE=` relaxes that to skipping.
REQUIRE ?= TAILOR_REQUIRE_BROWSER=1 TAILOR_REQUIRE_POSTGRES=1

test: install browser postgres
	$(REQUIRE) $(BIN)/python -m pytest -q -n 2

# The slow-marked tests (Lightning DDP on two CPU ranks); CI runs them after `make test`.
test-slow: install browser postgres
	$(REQUIRE) $(BIN)/python -m pytest -q -n 2 -m slow

test-all: install browser postgres
	$(REQUIRE) $(BIN)/python -m pytest -q -n 2 -m ''

# Style, and the one-way imports (pyproject.toml [tool.importlinter]: tailor > training | serving > datasets).
lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports

format: install
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

ui: install  ## a lean MLflow UI on the TAILOR_HOME store (one worker)
	@echo "MLflow UI on http://127.0.0.1:5000 (store $(TAILOR_HOME)/mlflow.db)"
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(TAILOR_HOME)/mlflow.db --workers 1 --host 127.0.0.1 --port 5000

dashboard: install  ## Optuna's dashboard on the sweeps' storage
	@echo "Optuna dashboard on http://127.0.0.1:8080 (storage $(TAILOR_HOME)/optuna.db)"
	$(BIN)/optuna-dashboard sqlite:///$(TAILOR_HOME)/optuna.db --host 127.0.0.1 --port 8080

clean:
	rm -rf $(VENV) var
