#!/usr/bin/env bash
# Runs every fuzz target for a short time each (default 5s): `make fuzz` in CI,
# `bash scripts/fuzz.sh 10m` for a long run. Crashers land in testdata/fuzz/
# and become regression cases of the ordinary test run once committed.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-5s}
for pkg in $(go list ./... | grep -v /e2e); do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "fuzz $pkg $target ($fuzztime)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" >/dev/null
  done
done
echo "fuzz: all targets clean"
