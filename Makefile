# Two commands: `make run` and `make test`. Everything else is set up on demand.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint format messages clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m enterprise_portal.launcher run

test: $(STAMP)
	$(PY) -m enterprise_portal.launcher test $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/lint-imports

format: $(STAMP)
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

messages: $(STAMP)
	$(PY) -m enterprise_portal.launcher manage makemessages -l pt_BR --ignore '.venv/*' --ignore 'var/*'
	$(PY) -m enterprise_portal.launcher manage compilemessages --ignore '.venv/*'

clean:
	rm -rf $(VENV) var
