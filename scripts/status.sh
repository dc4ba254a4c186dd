#!/usr/bin/env bash
# Prints a table of every tokenbroker name and its health (status/<name>).
# Usage: VAULT_ADDR=… VAULT_TOKEN=… scripts/status.sh [-mount tokenbroker] [-unhealthy]
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./cmd/tokenbroker-status "$@"
