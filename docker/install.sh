#!/usr/bin/env bash
# Installs lambda-freeze with both runtime interface clients into a virtualenv. The image build (Dockerfile) and
# CI (.ci/run → make test → the Makefile's .venv target) run this same script, so every change exercises the
# image's install path natively, without a Docker engine.
#
#   VENV=.venv       where the virtualenv goes (relative to the repository)
#   PYTHON=python3   the interpreter that creates it
#   EXTRAS=          optional dependencies of the project to add, e.g. "test,dev"
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
EXTRAS=${EXTRAS:-}

# 1. System packages: only what is missing.
WITH_TEST_PACKAGES=$([[ ,$EXTRAS, == *,test,* ]] && echo true || echo false) PYTHON=$PYTHON docker/system-packages.sh

# 2. The emulator, pinned.
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -c constraints.txt -e ".${EXTRAS:+[$EXTRAS]}"
# Compiled once here: a cold start then reads bytecode even where PYTHONDONTWRITEBYTECODE is set (it halves the
# emulator's start).
"$VENV/bin/python" -m compileall -q emulator runtime_api

# 3. The Python runtimes: a virtualenv per interpreter version found (pyenv, uv, PATH) with awslambdaric and the
#    pinned boto3 (emulator/python/requirements.txt), cached under ~/.cache/lambda-freeze (about 12 s a version when
#    new, nothing when current); then the samples' own requirements.txt, built as serve would build them.
"$VENV/bin/lambda-freeze" install-runtime --all-found
"$VENV/bin/lambda-freeze" build samples/python/*/ samples/python/*/*/ benchmarks/functions/*/

# 4. The Node.js runtime client (npm aws-lambda-ric), built from the committed lock into its cache (a current build
#    is kept), and the node_modules of the Node.js samples, as locked. Both need Node.js 20 or later: always there
#    in the image and under CI; elsewhere they are optional.
if command -v node >/dev/null || [[ ${CI:-} == true ]]; then
  "$VENV/bin/lambda-freeze" install-node-ric
  if [[ -x samples/node/install.sh ]]; then
    samples/node/install.sh
    # The front door's tests: Express through serverless-http, and playwright-core for the browser test.
    if [[ ,$EXTRAS, == *,test,* && -f tests/node/package-lock.json ]]; then
      samples/node/install.sh ../../tests/node
    fi
  fi
else
  echo "node is not on PATH: skipping the Node.js runtime client and the Node.js samples (nodejs20.x functions" \
    "need them; install Node.js 20, then run this script again)" >&2
fi
