# PopCompliance: `make run` serves the dashboard, `make test` runs every test.
# Both install what is missing first: Python packages into .venv, Debian packages when root.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench deps system-deps clean

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "PopCompliance needs Python 3.11 or newer (found $$($(PYTHON) --version))."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

deps: $(STAMP)

# Debian packages the test suite talks to for real: Dovecot (a second POP3 server), Redis and
# PostgreSQL (started when installed but not running, as root).
system-deps:
	@scripts/system-deps.sh test

# Tests that store data run on PostgreSQL; the pipeline's own tests run again on SQLite, the
# embedded default of `make run`.
EMBEDDED_TESTS := tests/test_recording.py tests/test_schedule.py tests/test_scan_command.py \
	tests/test_import_export.py tests/test_dispatch.py tests/test_leases.py

test: deps system-deps lint
	$(PY) -m pytest
	mkdir -p var
	POPC_TEST_DATABASE_URL=sqlite:///var/test-embedded.sqlite3 $(PY) -m pytest -q $(EMBEDDED_TESTS)

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy scanner
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run

format: deps
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: deps
	$(PY) bench/scan_fleet.py
	$(PY) bench/pipeline.py
	$(PY) bench/dashboard.py
	$(PY) bench/digest.py

# Migrates, creates the admin account, then web + worker + beat until Ctrl-C (popcompliance/run.py).
run: deps
	$(PY) -m popcompliance.run

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
