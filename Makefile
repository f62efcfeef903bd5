# Two entry points for a fresh clone: `make run` (extract) and `make test` (the whole suite, as CI runs it).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Meltano has its own venv (its dependencies are not the tap's); it builds each plugin's venv under .meltano/.
MELTANO_VERSION := 4.4.1
MELTANO_VENV := $(VENV)/meltano
MELTANO_STAMP := $(MELTANO_VENV)/.meltano-$(MELTANO_VERSION)

.PHONY: install meltano run test lint bench

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Python 3.11 to 3.13: Meltano builds the plugins' venvs with its own Python, and the DuckDB loader's duckdb
# (pinned below 1.3, see meltano.yml) has no wheel for 3.14.
$(MELTANO_STAMP):
	$(PYTHON) -c 'import sys; v = sys.version_info; sys.exit(f"Meltano here needs Python 3.11 to 3.13, not {v[0]}.{v[1]}: make PYTHON=python3.13 ...") if not (3, 11) <= v[:2] <= (3, 13) else None'
	rm -rf $(MELTANO_VENV)
	$(PYTHON) -m venv $(MELTANO_VENV)
	$(MELTANO_VENV)/bin/python -m pip install --quiet meltano==$(MELTANO_VERSION)
	touch $@

meltano: $(MELTANO_STAMP)

# meltano run tap-aha target-duckdb: against Aha! with TAP_AHA_API_KEY and TAP_AHA_SUBDOMAIN set, else
# against the offline simulator; ends by saying which, where the data is and how to query it.
run: meltano
	$(MELTANO_VENV)/bin/python scripts/run_local.py

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy tap_aha tests scripts

test: lint meltano
	MELTANO_FOR_TESTS=$(abspath $(MELTANO_VENV))/bin/meltano $(PY) -m pytest

# Requests, wall time against the rate-limit floor, CPU against a bare loop, memory, state (README, Benchmark).
bench: install
	$(PY) -m bench
