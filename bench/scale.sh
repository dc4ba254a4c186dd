#!/usr/bin/env bash
# `make bench-scale`: tokenbroker with many chains in one mount, on a
# single-node Vault with integrated (raft) storage on loopback. The driver
# (bench/cmd/scale) starts and stops that Vault itself, runs the fake
# provider in-process, prints a results table and replaces the "## Scale"
# section of bench/results.md (the rest of the file is kept).
#
# Arguments go to the driver; through make: SCALE_ARGS="...". The full run
# (100 000 names, two 20 min steady runs) takes about an hour on 2 cores; a
# quick one, about 7 min:
#   make bench-scale SCALE_ARGS="-names 5000 -duration 2m -lifetime 1m"
# Phases (-only), in this order: write (always), read, steady, restart, list, rotate, capped.
# -apps: one app and N connections of it; -token-size 1500: JWT-like tokens of real size.
# Environment: SCALE_TIMEOUT (4h), a backstop over the driver's own bounds.
# Vault's log of the last run is kept in bench/out/scale-vault.log (git-ignored).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

root="$(tb_root)"
cd "$root"
plugin="$root/bin/vault-plugin-secrets-tokenbroker"
vault="$root/.cache/bin/vault"
# The version `make build` stamps into the plugin, which registration must name.
version="${VERSION:-$(sed -n 's/^VERSION ?= *//p' Makefile)}"
for f in "$plugin" "$vault"; do
	[[ -e "$f" ]] || tb_die "$f is missing; run 'make bench-scale' (it builds the plugin and Vault first)"
done

logs="$root/bench/out"
mkdir -p "$logs"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/tokenbroker-scale.XXXXXX")"
driver_pid=""
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ -n "$driver_pid" ]] && kill -0 "$driver_pid" 2>/dev/null; then
		kill -TERM "$driver_pid" 2>/dev/null || true
		wait "$driver_pid" 2>/dev/null || true
	fi
	# The driver itself (timeout may have gone first): it stops Vault on TERM.
	if [[ -s "$tmp/driver.pid" ]]; then
		local pid i
		pid="$(cat "$tmp/driver.pid")"
		kill -TERM "$pid" 2>/dev/null || true
		for i in $(seq 1 300); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
	fi
	# The driver stops Vault and removes vault.pid; should it have died
	# first, stop Vault's process group (plugin processes included) here.
	if [[ -s "$tmp/vault.pid" ]]; then
		tb_log "stopping the Vault the driver left running"
		tb_stop "$(cat "$tmp/vault.pid")"
	fi
	[[ -f "$tmp/vault.log" ]] && cp "$tmp/vault.log" "$logs/scale-vault.log"
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

tb_log "building the scale driver"
CGO_ENABLED=0 go build -trimpath -o "$tmp/scale" ./bench/cmd/scale

command="make bench-scale"
[[ $# -gt 0 ]] && command+=" SCALE_ARGS=\"$*\""
# In the background with `wait`, so a signal runs the cleanup trap at once;
# --foreground keeps the driver in this process group, where Ctrl-C reaches it.
timeout --foreground --signal=TERM "${SCALE_TIMEOUT:-4h}" "$tmp/scale" \
	-vault "$vault" -plugin "$plugin" -plugin-version "v$version" \
	-work "$tmp" -out "${SCALE_OUT:-$root/bench/results.md}" -command "$command" \
	-revision "$(git describe --always --dirty 2>/dev/null || echo unknown)" \
	"$@" &
driver_pid=$!
wait "$driver_pid"
driver_pid=""
