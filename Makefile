# Two entry points for a fresh clone: `make run` (extract) and `make test` (the whole suite, as CI runs it).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Meltano has its own venv (its dependencies are not the tap's); it builds each plugin's venv under .meltano/.
MELTANO_VERSION := 4.4.1
MELTANO_VENV := $(VENV)/meltano
MELTANO_STAMP := $(MELTANO_VENV)/.meltano-$(MELTANO_VERSION)

.PHONY: install meltano run ask test lint bench wheel

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

# SQL on the DuckDB file `make run` loaded last, as a small table: make ask Q="select count(*) from tap_aha.ideas"
# (DB=path for another file). Runs with the DuckDB loader's Python, which `make run` installed.
LOADER_PYTHON = $(or $(MELTANO_SYS_DIR_ROOT),.meltano)/loaders/target-duckdb/venv/bin/python
ask:
	@test -x $(LOADER_PYTHON) || { echo "make ask reads what make run loaded: run make run first" >&2; exit 1; }
	@$(LOADER_PYTHON) scripts/ask.py $(if $(DB),--db "$(DB)") "$$Q"

# The wheel a Databricks cluster or pipeline installs (docs/databricks.md): $(DIST)/tap_aha-<version>-py3-none-any.whl.
DIST ?= dist
wheel:
	rm -rf build  # setuptools' staging folder: a module removed since the last build would stay in the wheel
	$(PYTHON) -m pip wheel --quiet --no-deps --wheel-dir $(DIST) .
	@ls $(DIST)/tap_aha-*.whl

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy tap_aha tests scripts

# The test files run on TEST_WORKERS pytest-xdist workers: most of the suite's time is waiting (Meltano and pip
# installs, rate-limit pacing, Spark), so more workers than cores pay. A file runs on one worker (tests/conftest.py).
TEST_WORKERS ?= 4
test: lint meltano
	MELTANO_FOR_TESTS=$(abspath $(MELTANO_VENV))/bin/meltano $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# Requests, wall time against the rate-limit floor, CPU against a bare loop, memory, state (docs/performance.md).
bench: install
	$(PY) -m bench
