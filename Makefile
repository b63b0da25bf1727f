# Two entry points on a fresh machine: `make run` and `make test`.
PY      ?= python3.11
VENV    := .venv
VPY     := $(VENV)/bin/python
PORT    ?= 8501

.PHONY: run test test-fast lint install test-deps system-deps init bench bench-browser clean

$(VPY):
	@command -v $(PY) >/dev/null 2>&1 || { echo "$(PY) not found; set PY=python3.x (3.10+)"; exit 1; }
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip

# Re-install only when the requirement files change.
# Shows what it installs (a fresh machine takes minutes: silence looked like a hang).
.stamp-install: requirements.txt | $(VPY)
	@echo "Installing Rebal's dependencies into $(VENV) (streamlit, plotly, pandas, ortools, statsforecast...; a few minutes the first time)"
	$(VPY) -m pip install --progress-bar on -r requirements.txt
	@touch $@

.stamp-test-install: requirements.txt requirements-test.txt requirements-ray.txt .stamp-install
	$(VPY) -m pip install -q -r requirements-test.txt
	@touch $@

install: .stamp-install

# Loads the sample network into the store on first start (progress on stdout).
init: install
	$(VPY) -m rebal_core init

run: init
	$(VPY) -m streamlit run app.py --server.port $(PORT)

# Debian's chromium (browser tests) and PostgreSQL (store tests) come from apt;
# CI runs as root on a fresh machine, so the project installs them itself.
system-deps:
	@if [ ! -x /usr/bin/chromium ] || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium postgresql >/dev/null; \
	  else \
	    echo "Install Debian packages 'chromium' and 'postgresql' (sudo apt-get install chromium postgresql)"; exit 1; \
	  fi; \
	fi

test-deps: .stamp-test-install system-deps

# Style is part of the test: ruff's formatter and linter (isort included), configured in pyproject.toml.
lint: .stamp-test-install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

test: test-deps lint
	$(VPY) -m pytest -q tests

# The pure unit tests (no files, no database, no browser): seconds, for the edit-test loop.
test-fast: .stamp-test-install
	$(VPY) -m pytest -q -m "not slow" tests/unit tests/architecture

bench: install
	PYTHONPATH=. $(VPY) bench/bench_import.py
	PYTHONPATH=. $(VPY) bench/bench_kpis.py
	PYTHONPATH=. $(VPY) bench/bench_plan.py
	PYTHONPATH=. $(VPY) bench/bench_workflow.py
	PYTHONPATH=. $(VPY) bench/bench_backtest.py

# In a real browser (Playwright + Debian's chromium, as the browser tests): the lab's slider, a fresh clone's first start.
bench-browser: test-deps
	PYTHONPATH=. $(VPY) bench/bench_lab_slider.py
	PYTHONPATH=. $(VPY) bench/bench_first_start.py

clean:
	rm -rf $(VENV) .stamp-* data/*.db data/sample data/bench
