# PopCompliance: `make run` serves the dashboard, `make test` runs every test.
# Both install what is missing first: Python packages into .venv, Debian packages when root.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# `make run` needs only the runtime packages; the tests, linters and benchmarks add the tools.
RUNTIME_STAMP := $(VENV)/.installed-runtime
DEV_STAMP := $(VENV)/.installed-dev
# pip's output goes here, not to the terminal (private, like the rest of var/).
INSTALL_LOG := var/run.log

.PHONY: run test lint format bench deps system-deps clean

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "PopCompliance needs Python 3.11 or newer (found $$($(PYTHON) --version))."; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(RUNTIME_STAMP): requirements.txt | $(PY)
	@mkdir -p -m 700 var
	@scripts/system-deps.sh build
	@echo "Installing the Python packages into $(VENV) (log: $(INSTALL_LOG))."
	@$(PY) -m pip install --upgrade pip -r requirements.txt >>$(INSTALL_LOG) 2>&1 || \
		{ tail -n 20 $(INSTALL_LOG); echo "pip install failed; the whole log is in $(INSTALL_LOG)."; exit 1; }
	@touch $(RUNTIME_STAMP)

$(DEV_STAMP): requirements-dev.txt $(RUNTIME_STAMP)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(DEV_STAMP)

deps: $(DEV_STAMP)

# Debian packages the test suite talks to for real: Dovecot, Courier and Mailutils (real POP3 and
# IMAP servers), Postfix (SMTP submission, unpacked privately), Redis and PostgreSQL (started
# when installed but not running, as root).
system-deps:
	@scripts/system-deps.sh test

# Tests that store data run on PostgreSQL; the pipeline's own tests, and the reports' (two cursors
# read at once), run again on SQLite, the embedded default of `make run`.
EMBEDDED_TESTS := tests/test_recording.py tests/test_schedule.py tests/test_scan_command.py \
	tests/test_import_export.py tests/test_dispatch.py tests/test_leases.py \
	tests/test_reports.py tests/test_report_numbers_agree.py

test: deps system-deps lint
	$(PY) -m pytest
	mkdir -p var
	POPC_TEST_DATABASE_URL=sqlite:///var/test-embedded.sqlite3 $(PY) -m pytest -q $(EMBEDDED_TESTS)

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy scanner
	# Development settings: the checks need no SECRET_KEY of their own.
	DEBUG=true $(PY) manage.py check
	DEBUG=true $(PY) manage.py makemigrations --check --dry-run

format: deps
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Debian packages the benchmarks use: Redis, PostgreSQL, testssl.sh (bench/peers.py).
bench: deps
	@scripts/system-deps.sh bench
	$(PY) bench/scan_fleet.py
	$(PY) bench/peers.py
	$(PY) bench/pipeline.py
	$(PY) bench/dashboard.py
	$(PY) bench/digest.py
	$(PY) bench/csv_io.py
	$(PY) bench/reports.py

# Migrates, creates the admin account, then web + worker + beat until Ctrl-C (popcompliance/run.py).
run: $(RUNTIME_STAMP)
	@$(PY) -m popcompliance.run

clean:
	rm -rf $(VENV) var .courier .postfix .pytest_cache .mypy_cache .ruff_cache
