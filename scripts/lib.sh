# Shared shell helpers for scripts/*.sh. Source it; it defines functions only.

# tb_root: the repository root (the parent of scripts/).
tb_root() { (cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd); }

tb_log() { printf '==> %s\n' "$*" >&2; }
tb_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# tb_port_busy PORT: true when something accepts connections on 127.0.0.1:PORT.
tb_port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# tb_free_port [PREFERRED]: print PREFERRED if it is free, else a free-looking
# port in 20000-59999 (there is a small race until the server binds it).
tb_free_port() {
	local p="${1:-}" i
	if [[ -n "$p" ]] && ! tb_port_busy "$p"; then echo "$p"; return; fi
	for i in $(seq 1 100); do
		p=$((20000 + RANDOM % 40000))
		tb_port_busy "$p" || { echo "$p"; return; }
	done
	return 1
}

# tb_wait_file FILE PID SECONDS: wait until FILE is non-empty while PID lives.
tb_wait_file() {
	local file="$1" pid="$2" deadline=$((SECONDS + $3))
	until [[ -s "$file" ]]; do
		kill -0 "$pid" 2>/dev/null || return 1
		((SECONDS < deadline)) || return 1
		sleep 0.1
	done
}

# tb_wait_vault VAULT_BIN PID SECONDS: wait until the Vault at $VAULT_ADDR is
# initialized and unsealed (`vault status` exits 0) while PID lives.
tb_wait_vault() {
	local vault="$1" pid="$2" deadline=$((SECONDS + $3))
	until "$vault" status >/dev/null 2>&1; do
		kill -0 "$pid" 2>/dev/null || return 1
		((SECONDS < deadline)) || return 1
		sleep 0.2
	done
}

# tb_stop PID...: SIGTERM each process group (or process), wait up to 5s, then SIGKILL.
tb_stop() {
	local pid i
	for pid in "$@"; do
		[[ -n "$pid" ]] || continue
		kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
	done
	for i in $(seq 1 50); do
		local alive=0
		for pid in "$@"; do
			[[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && alive=1
		done
		((alive)) || break
		sleep 0.1
	done
	for pid in "$@"; do
		[[ -n "$pid" ]] || continue
		kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
	done
}
