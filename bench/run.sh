#!/usr/bin/env bash
# `make bench`: tokenbroker's benchmarks, against one real Vault dev server on
# loopback, plus the in-process ones. Prints the results table and writes it
# to bench/results.md. Expects `make build vault` to have run (make bench
# does). Takes 6-8 minutes on a 2-core machine (the waits for Vault's
# once-a-minute periodic pass vary).
#
# The scenarios, by the number their rows carry in bench/results.md:
#   1  cached read throughput: creds vs a no-op external plugin vs KV-v2
#   2  reads never wait on the provider (2 s provider, refresh window)
#   3  stampede: 1000 concurrent reads of an evicted / expired token
#   4  upstream economy over 24 simulated hours (go test, in-process)
#   5  scale: 10 000 configs, LIST, plugin RSS, background pass
#   6  in-process micro-benchmarks (go test -bench -benchmem)
#
# Knobs (environment): BENCH_DURATION (3s), BENCH_REPS (8), BENCH_CONC (1,16,64),
# BENCH_SCALE (10000), BENCH_ONLY (throughput,window,stampede,scale),
# BENCH_OUT (bench/results.md), BENCH_STRICT=1 (exit 1 when a target is missed).
# Logs of the last run are kept in bench/out/ (git-ignored).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

root="$(tb_root)"
cd "$root"
plugin_name=vault-plugin-secrets-tokenbroker
plugin_version="v${VERSION:-0.2.0}"
noop_name=tokenbroker-bench-noop
noop_version=v0.0.0-bench # must match RunningVersion in bench/noop
vault="$root/.cache/bin/vault"
for f in "$root/bin/$plugin_name" "$root/bin/$plugin_name.sha256" "$vault"; do
	[[ -e "$f" ]] || tb_die "$f is missing; run 'make bench' (it builds the plugin and Vault first)"
done

out_md="${BENCH_OUT:-$root/bench/results.md}"
logs="$root/bench/out"
mkdir -p "$logs"
rm -f "$logs"/*.log "$logs"/*.txt
tmp="$(mktemp -d "${TMPDIR:-/tmp}/tokenbroker-bench.XXXXXX")"
vault_pid="" load_pid=""
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ -n "$load_pid" ]] && kill -0 "$load_pid" 2>/dev/null; then
		kill -TERM "$load_pid" 2>/dev/null || true
		wait "$load_pid" 2>/dev/null || true
	fi
	if [[ -n "$vault_pid" ]]; then
		tb_log "stopping Vault"
		tb_stop "$vault_pid" # its process group holds the plugin processes too
	fi
	[[ -f "$tmp/vault.log" ]] && cp "$tmp/vault.log" "$logs/vault.log"
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 1. Binaries: the plugin as built by `make build`, the no-op floor plugin, the driver.
tb_log "building the no-op plugin and the load driver"
mkdir -p "$tmp/plugins"
cp "$root/bin/$plugin_name" "$tmp/plugins/$plugin_name"
CGO_ENABLED=0 go build -trimpath -o "$tmp/plugins/$noop_name" ./bench/noop
CGO_ENABLED=0 go build -trimpath -o "$tmp/load" ./bench/cmd/load
chmod 0755 "$tmp/plugins/"*
plugin_sha="$(cat "$root/bin/$plugin_name.sha256")"
noop_sha="$(sha256sum "$tmp/plugins/$noop_name" | cut -d' ' -f1)"

# 2. The in-process scenarios first, while nothing else runs (each bounded by -timeout).
tb_log "upstream economy (go test, 24 h simulated)"
go test -count=1 -timeout 5m -run '^TestUpstreamEconomy24h$' -v . >"$logs/econ.txt" 2>&1 ||
	tb_log "the economy test failed; see bench/out/econ.txt"
tb_log "micro-benchmarks (go test -bench -benchmem)"
{
	go test -count=1 -timeout 5m -run '^$' -bench '^(BenchmarkCredsReadCached|BenchmarkCredsReadCachedEnding|BenchmarkNoopReadInProcess|BenchmarkMetricsScrape)$' -benchmem . &&
		go test -count=1 -timeout 5m -run '^$' -bench . -benchmem ./bench/
} >"$logs/micro.txt" 2>&1 || tb_log "a micro-benchmark failed; see bench/out/micro.txt"

# 3. One dev Vault on a free loopback port, with both plugins in its plugin dir.
port="$(tb_free_port)" || tb_die "no free port"
export VAULT_ADDR="http://127.0.0.1:$port"
export VAULT_TOKEN="bench-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
unset VAULT_NAMESPACE VAULT_CACERT VAULT_CAPATH VAULT_CLIENT_CERT VAULT_CLIENT_KEY
vault_version="$("$vault" version | head -n1 | sed 's/, built .*//')" # a source build has no real build date
tb_log "starting $vault_version at $VAULT_ADDR"
setsid "$vault" server -dev -dev-no-store-token \
	-dev-listen-address="127.0.0.1:$port" -dev-root-token-id="$VAULT_TOKEN" \
	-dev-plugin-dir="$tmp/plugins" -dev-plugin-init=false \
	>"$tmp/vault.log" 2>&1 &
vault_pid=$!
tb_wait_vault "$vault" "$vault_pid" 60 || { tail -n 30 "$tmp/vault.log" >&2; tb_die "Vault did not become ready"; }

# 4. Register both plugins by sha256 and version; mount them.
tb_log "registering and mounting tokenbroker/ and noop/"
"$vault" plugin register -sha256="$plugin_sha" -version="$plugin_version" secret "$plugin_name" >/dev/null
"$vault" plugin register -sha256="$noop_sha" -version="$noop_version" secret "$noop_name" >/dev/null
"$vault" secrets enable -path=tokenbroker -plugin-version="$plugin_version" "$plugin_name" >/dev/null
"$vault" secrets enable -path=noop -plugin-version="$noop_version" "$noop_name" >/dev/null

# 5. The driver: fake providers in-process, every scenario, the table.
tb_log "running the scenarios (driver: bench/cmd/load)"
strict=false
[[ "${BENCH_STRICT:-}" == 1 ]] && strict=true
# In the background with `wait`, so a signal runs the cleanup trap at once;
# --foreground keeps timeout (and the driver) in this process group, where
# Ctrl-C reaches them. The driver bounds every scenario itself; this is a backstop.
timeout --foreground --signal=TERM 20m "$tmp/load" \
	-addr "$VAULT_ADDR" -token "$VAULT_TOKEN" \
	-plugin-bin "$tmp/plugins/$plugin_name" \
	-out "$out_md" \
	-duration "${BENCH_DURATION:-3s}" -reps "${BENCH_REPS:-8}" -conc "${BENCH_CONC:-1,16,64}" \
	-scale "${BENCH_SCALE:-10000}" -only "${BENCH_ONLY:-throughput,window,stampede,scale}" \
	-econ-log "$logs/econ.txt" -micro-log "$logs/micro.txt" -vault-log "$tmp/vault.log" \
	-vault-version "$vault_version" -command "${BENCH_COMMAND:-make bench}" -strict="$strict" \
	-revision "$(git describe --always --dirty 2>/dev/null || echo unknown)" &
load_pid=$!
wait "$load_pid"
load_pid=""
tb_log "results written to ${out_md#"$root/"} (logs in bench/out/)"
