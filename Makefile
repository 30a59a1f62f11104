# The two commands of README.md. Everything installs into .venv from pinned versions (constraints.txt).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8080

.PHONY: serve test lint bench mutation clean

# docker/install.sh is the install step of the Docker image too: CI (make test) runs it natively on every change.
$(VENV)/.installed: pyproject.toml constraints.txt docker/install.sh docker/system-packages.sh emulator/nodejs/package-lock.json \
		emulator/python/requirements.txt \
		samples/node/install.sh samples/node/sequelize/package-lock.json samples/node/sqs_consumer/package-lock.json \
		samples/node/node_postgres/package-lock.json \
		tests/node/package-lock.json
	PYTHON=$(PYTHON) VENV=$(VENV) EXTRAS=test,dev,aws docker/install.sh
	touch $@

serve: $(VENV)/.installed
	$(VENV)/bin/lambda-freeze serve --code-dir samples/python/hello --handler app.handler --name hello --port $(PORT)

test: $(VENV)/.installed
	$(PY) -m pytest -n 4 --dist worksteal -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check emulator runtime_api tests benchmarks
	$(VENV)/bin/mypy

bench: $(VENV)/.installed
	$(PY) benchmarks/warm_invoke.py

# Mutation testing of the engine's core (lifecycle, environment, pool, invocation, freezer, async invocation, the
# proxy's toxics): slow, so not part of `make test` nor of CI. `make mutation GROUPS="lifecycle toxics"` runs some.
mutation: $(VENV)/.installed
	$(PY) tests/mutation/run.py $(GROUPS)

clean:
	rm -rf $(VENV) *.egg-info
