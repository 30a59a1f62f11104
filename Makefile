# The two commands of README.md. Everything installs into .venv from pinned versions (constraints.txt).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8080

.PHONY: serve test lint bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test,dev]'
	touch $@

serve: $(VENV)/.installed
	$(VENV)/bin/lambda-freeze serve --code-dir samples/python/hello --handler app.handler --name hello --port $(PORT)

test: $(VENV)/.installed
	$(PY) -m pytest -n 4 -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check emulator runtime_api tests benchmarks
	$(VENV)/bin/mypy

bench: $(VENV)/.installed
	$(PY) benchmarks/warm_invoke.py

clean:
	rm -rf $(VENV) *.egg-info
