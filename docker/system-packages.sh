#!/usr/bin/env bash
# The system packages lambda-freeze's runtime clients need: a Python 3 with venv and headers (awslambdaric), and
# the tools the native addon of aws-lambda-ric builds with (make, g++, cmake, autoconf, automake, libtool). Only
# what is missing is installed, with apt-get: in the image (Dockerfile) that is all of it; on a developer's or
# CI's machine usually nothing. Node.js is not installed here: Debian's is older than the nodejs20.x runtime
# needs, and the image's base (node:20) brings it.
#
#   PYTHON=python3   the interpreter to check (the one docker/install.sh creates the virtualenv with)
#   WITH_TEST_PACKAGES=true   also what the tests need (Chromium, for the front door's browser test)
#   --clean          remove apt's package lists afterwards (dead weight in an image layer)
set -euo pipefail

PYTHON=${PYTHON:-python3}
clean=false
for arg in "$@"; do
  case $arg in
    --clean) clean=true ;;
    *) echo "usage: $0 [--clean]" >&2; exit 2 ;;
  esac
done

missing=()
need() {  # need PACKAGE CHECK...: the Debian PACKAGE is missing unless CHECK succeeds
  local package=$1
  shift
  "$@" >/dev/null 2>&1 || missing+=("$package")
}
has_python_headers() {
  "$PYTHON" -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'
}
need python3 command -v "$PYTHON"
need python3-venv "$PYTHON" -c 'import ensurepip, venv'
need python3-dev has_python_headers
need make command -v make
need g++ command -v g++
need cmake command -v cmake
need autoconf command -v autoconf
need automake command -v automake
need libtool command -v libtoolize
# Virtual time (a frozen environment's clocks moved forward) builds a small preload (emulator/engine/vclock.c).
need gcc command -v cc
# The HTTP front door's browser test (a CORS fetch from a real browser): only for a test install, not the image.
if [[ ${WITH_TEST_PACKAGES:-} == true ]]; then
  need chromium command -v chromium
fi

if ((${#missing[@]} == 0)); then
  echo "system packages: all present"
  exit 0
fi
if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
  echo "missing system packages: ${missing[*]}; install them (Debian, Ubuntu: apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "system packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
if $clean; then
  rm -rf /var/lib/apt/lists/*
fi
