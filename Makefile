# Kay — developer entry points. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= $(shell grep -E '^PORT=' .env 2>/dev/null | cut -d= -f2 || true)
PORT := $(or $(PORT),4000)
PYTEST_ARGS ?=

.PHONY: run test setup mcp-atlassian lint typecheck check lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall only when the lock file changes.
$(VENV)/.installed: requirements.lock | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.lock
	touch $@

.env:
	$(BIN)/python -m core.envfile

setup: $(VENV)/.installed .env

## Set up (venv, pinned packages, .env, SQLite) and start web + Celery worker + beat.
run: setup
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py sync_models --from-backup --if-empty --no-progress
	@echo ""
	@echo "  Kay is starting on http://localhost:$(PORT)/  (Ctrl-C stops web, worker and beat)"
	@echo "  Create an operator account:  $(BIN)/python manage.py createsuperuser"
	@echo "  Or sign in as anyone at:     http://localhost:$(PORT)/accounts/fake-login/ (DEBUG only)"
	@echo ""
	$(BIN)/honcho -f Procfile.dev start -p $(PORT)

## mcp-atlassian (the assistant's Jira/Confluence MCP server) in its own venv: it pins mcp<2,
## Kay uses mcp 2. Reinstalled only when its lock file changes.
MCP_ATLASSIAN := var/mcp-atlassian
$(MCP_ATLASSIAN)/.installed: requirements-mcp-atlassian.lock
	$(PYTHON) -m venv $(MCP_ATLASSIAN)
	$(MCP_ATLASSIAN)/bin/pip install --quiet -r requirements-mcp-atlassian.lock
	touch $@

mcp-atlassian: $(MCP_ATLASSIAN)/.installed

## Set up the same environment and run the whole test suite (the MCP tests skip, saying
## why, if mcp-atlassian cannot be installed; CI sets KAY_REQUIRE_MCP_ATLASSIAN to fail).
test: setup
	@$(MAKE) --no-print-directory mcp-atlassian || echo "mcp-atlassian could not be installed"
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy .

check: lint typecheck test

## Re-resolve requirements.lock from pyproject.toml (needs network access to PyPI).
lock: | $(BIN)/python
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) var
