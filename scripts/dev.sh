#!/usr/bin/env bash
# `make dev`: a dev Vault on loopback with the tokenbroker plugin registered the
# production way (sha256 + version), mounted at tokenbroker/, and
#   - a demo config "demo" pointing at a local fake Echo360 token server over HTTPS;
#   - a demo app "demo-app" against a second fake over plain loopback HTTP with a
#     consent page a person clicks in a browser, a userpass user "demo-user"
#     (random password, printed) whose policy allows tokenbroker/self/*, and
#     the commands that connect the user's own account and read its token.
# Stays in the foreground; Ctrl-C (or SIGTERM) stops every server and removes
# the temporary directory. Expects `make build vault fakeprovider` to have run.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

root="$(tb_root)"
plugin_name=vault-plugin-secrets-tokenbroker
plugin_version="v${VERSION:-0.2.0}"
plugin_bin="$root/bin/$plugin_name"
plugin_sha_file="$root/bin/$plugin_name.sha256"
fake_bin="$root/bin/fakeprovider"
vault="$root/.cache/bin/vault"
for f in "$plugin_bin" "$plugin_sha_file" "$fake_bin" "$vault"; do
	[[ -e "$f" ]] || tb_die "$f is missing; run 'make dev' (it builds everything first)"
done

tmp="$(mktemp -d "${TMPDIR:-/tmp}/tokenbroker-dev.XXXXXX")"
fake_pid="" apps_pid="" vault_pid=""
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	echo >&2
	tb_log "stopping Vault and the fake providers"
	tb_stop "$vault_pid" "$fake_pid" "$apps_pid"
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 1. The fake upstream: an Echo360-style token endpoint over TLS with its own CA.
tb_log "starting the fake provider"
setsid "$fake_bin" -addr 127.0.0.1:0 -tls -ca-out "$tmp/ca.pem" -addr-out "$tmp/fake.addr" \
	-client-id demo-client -client-secret demo-secret -api-key demo-api-key \
	>"$tmp/fake.log" 2>&1 &
fake_pid=$!
tb_wait_file "$tmp/fake.addr" "$fake_pid" 20 || { cat "$tmp/fake.log" >&2; tb_die "fake provider did not start"; }
tb_wait_file "$tmp/ca.pem" "$fake_pid" 5 || tb_die "fake provider wrote no CA"
fake_url="$(head -n1 "$tmp/fake.addr")"
[[ "$fake_url" == https://* ]] || fake_url="https://$fake_url"

# 1b. The fake upstream of the demo app: plain HTTP on loopback (no certificate
# warning in a browser), its consent page on, the demo user's account approving.
apps_secret="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
setsid "$fake_bin" -addr 127.0.0.1:0 -addr-out "$tmp/apps.addr" -consent-page \
	-account-email demo-user@example.test -client-id demo-app-client -client-secret "$apps_secret" \
	>"$tmp/apps.log" 2>&1 &
apps_pid=$!
tb_wait_file "$tmp/apps.addr" "$apps_pid" 20 || { cat "$tmp/apps.log" >&2; tb_die "the demo app's fake provider did not start"; }
apps_url="$(head -n1 "$tmp/apps.addr")"

# 2. A dev Vault on a free loopback port with its own plugin directory.
mkdir -p "$tmp/plugins"
cp "$plugin_bin" "$tmp/plugins/$plugin_name"
chmod 0755 "$tmp/plugins/$plugin_name"
port="$(tb_free_port "${VAULT_DEV_PORT:-8200}")" || tb_die "no free port"
export VAULT_ADDR="http://127.0.0.1:$port"
export VAULT_TOKEN="dev-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
unset VAULT_NAMESPACE VAULT_CACERT VAULT_CAPATH VAULT_CLIENT_CERT VAULT_CLIENT_KEY
tb_log "starting Vault ($("$vault" version | head -n1)) at $VAULT_ADDR"
setsid "$vault" server -dev -dev-no-store-token \
	-dev-listen-address="127.0.0.1:$port" -dev-root-token-id="$VAULT_TOKEN" \
	-dev-plugin-dir="$tmp/plugins" -dev-plugin-init=false \
	>"$tmp/vault.log" 2>&1 &
vault_pid=$!
tb_wait_vault "$vault" "$vault_pid" 60 || { tail -n 30 "$tmp/vault.log" >&2; tb_die "Vault did not become ready"; }

# 3. Register and mount the plugin as in production: pinned sha256 and version.
sha="$(cat "$plugin_sha_file")"
tb_log "registering $plugin_name $plugin_version (sha256 ${sha:0:12}…)"
"$vault" plugin register -sha256="$sha" -version="$plugin_version" secret "$plugin_name" >/dev/null
"$vault" secrets enable -path=tokenbroker -plugin-version="$plugin_version" "$plugin_name" >/dev/null
"$vault" write tokenbroker/config/demo provider=echo360 \
	token_url="$fake_url/oauth2/access_token" \
	client_id=demo-client client_secret=demo-secret ca_pem=@"$tmp/ca.pem" >/dev/null
tb_log "vault read tokenbroker/creds/demo"
"$vault" read tokenbroker/creds/demo

# 4. The demo app and a Vault user who connects their own account to it.
# The user's entity is made first, with the email identity_match=email checks
# (the fake's consent page offers that account); userpass logins join it.
"$vault" write tokenbroker/app/demo-app issuer="$apps_url" \
	client_id=demo-app-client client_secret="$apps_secret" scopes=openid,email \
	redirect_uri="$VAULT_ADDR/v1/tokenbroker/callback" identity_match=email >/dev/null
"$vault" policy write tokenbroker-self - >/dev/null <<'HCL'
# Every user reaches their own connections, and nobody else's.
path "tokenbroker/self/*" { capabilities = ["read", "update", "delete"] }
HCL
user_password="$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
"$vault" auth enable userpass >/dev/null
"$vault" write auth/userpass/users/demo-user password="$user_password" token_policies=tokenbroker-self >/dev/null
entity_id="$("$vault" write -field=id identity/entity name=demo-user metadata=email=demo-user@example.test)"
"$vault" write identity/entity-alias name=demo-user canonical_id="$entity_id" \
	mount_accessor="$("$vault" read -field=accessor sys/auth/userpass)" >/dev/null
tb_log "app demo-app (fake at $apps_url, consent page on); userpass user demo-user (entity $entity_id)"

cat <<MSG

tokenbroker is running (Vault log: $tmp/vault.log, fake provider logs: $tmp/fake.log, $tmp/apps.log).
In another shell:

    export VAULT_ADDR=$VAULT_ADDR VAULT_TOKEN=$VAULT_TOKEN
    export PATH="$root/.cache/bin:\$PATH"     # the pinned vault CLI, if you have none
    vault read tokenbroker/creds/demo
    vault read tokenbroker/config/demo
    vault read tokenbroker/app/demo-app
    vault list -detailed tokenbroker/app/demo-app/connections    # after the user connects

Connect a user's own account to the app (app/demo-app), as demo-user, in a third shell:

    export VAULT_ADDR=$VAULT_ADDR
    export PATH="$root/.cache/bin:\$PATH"
    # vault login -method=userpass username=demo-user, without touching ~/.vault-token:
    export VAULT_TOKEN="\$(vault login -token-only -method=userpass username=demo-user password=$user_password)"
    vault write -f tokenbroker/self/demo-app/authorize
    #   open its url in your browser, keep demo-user@example.test, click Approve:
    #   Vault's callback page says demo-app.$entity_id connected
    vault read tokenbroker/self/demo-app            # your access token
    vault read tokenbroker/self/demo-app/status     # connected_by, account_email, health
    vault delete tokenbroker/self/demo-app          # disconnect: revoked at the fake, then deleted

(Approving as another email shows identity_match=email refusing an account that is not the user's.)

Press Ctrl-C to stop and clean up.
MSG

# Stay in the foreground until Ctrl-C / SIGTERM, or until a server dies.
while kill -0 "$vault_pid" 2>/dev/null && kill -0 "$fake_pid" 2>/dev/null && kill -0 "$apps_pid" 2>/dev/null; do
	sleep 1 &
	wait $! || true
done
kill -0 "$vault_pid" 2>/dev/null || { tail -n 30 "$tmp/vault.log" >&2; tb_die "Vault exited"; }
for log in fake apps; do
	tail -n 30 "$tmp/$log.log" >&2
done
tb_die "a fake provider exited"
