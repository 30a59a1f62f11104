#!/usr/bin/env bash
# Installs the node_modules of every Node.js sample project (a directory under samples/node/ with a committed
# package-lock.json) with `npm ci`, exactly as locked. A project is skipped when its node_modules was installed
# from the same lock: node_modules/.lambda-freeze-lock.sha256 holds the sha256 of the lock it came from, written
# only after `npm ci` succeeded, so an interrupted install is redone. CI may cache samples/node/*/node_modules
# keyed by the locks' hashes.
#
#   samples/node/install.sh            # every sample project
#   samples/node/install.sh sequelize  # some of them
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
stamp_name=".lambda-freeze-lock.sha256"

if ! command -v npm >/dev/null; then
  echo "samples/node/install.sh: npm is not on PATH (it comes with Node.js 20 or later)" >&2
  exit 1
fi

if [ "$#" -gt 0 ]; then
  projects=()
  for name in "$@"; do projects+=("$here/${name%/}"); done
else
  projects=("$here"/*/)
fi

for project in "${projects[@]}"; do
  project="${project%/}"
  lock="$project/package-lock.json"
  if [ ! -f "$lock" ]; then
    [ "$#" -gt 0 ] && { echo "samples/node/install.sh: $lock is missing" >&2; exit 1; }
    continue
  fi
  want="$(sha256sum "$lock" | cut -d' ' -f1)"
  stamp="$project/node_modules/$stamp_name"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "${project#"$here"/}: node_modules matches package-lock.json"
    continue
  fi
  echo "${project#"$here"/}: npm ci"
  (cd "$project" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" >"$stamp"
done
