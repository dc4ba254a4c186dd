#!/usr/bin/env bash
# Build the pinned Vault server (tools/vault/go.mod) into .cache/bin, once.
#
# The binary is cached as .cache/bin/vault-<key>, where <key> is derived from the
# sha256 of tools/vault/go.mod + go.sum, so it is rebuilt only when the pin changes.
# .cache/bin/vault is a symlink to the current one. Prints the binary's path.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
moddir="$root/tools/vault"
bindir="$root/.cache/bin"

key="$(cat "$moddir/go.mod" "$moddir/go.sum" | sha256sum | cut -c1-16)"
version="$(awk '$1 == "github.com/hashicorp/vault" { sub(/^v/, "", $2); print $2; exit }' "$moddir/go.mod")"
out="$bindir/vault-${version:-unknown}-$key"

mkdir -p "$bindir"
if command -v flock >/dev/null; then # one build at a time (e.g. under make -j)
	exec 9>"$bindir/.build.lock"
	flock 9
fi
if [[ ! -x "$out" ]]; then
	echo "building Vault ${version:-?} (cache key $key); a cold build takes ~20-30 min on 2 cores..." >&2
	tmp="$(mktemp "$bindir/.vault-build.XXXXXX")"
	trap 'rm -f "$tmp"' EXIT
	start=$SECONDS
	(cd "$moddir" && CGO_ENABLED=0 go build -o "$tmp" github.com/hashicorp/vault)
	chmod 0755 "$tmp"
	mv -f "$tmp" "$out"
	trap - EXIT
	echo "built Vault in $((SECONDS - start))s" >&2
fi

# Point .cache/bin/vault at this build (atomically: new link, then rename over).
ln -sfn "$(basename "$out")" "$bindir/.vault.link.$$"
mv -Tf "$bindir/.vault.link.$$" "$bindir/vault"
echo "$bindir/vault"
