//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// A creds read can be response-wrapped; unwrapping yields the token once.
func TestResponseWrapping(t *testing.T) {
	t.Parallel()
	v := StartVaultWithPlugin(t)
	fake := StartFake(t, 0)
	v.WriteConfig("x", fake.ConfigArgs("oauth2")...)

	var wrapped struct {
		Data     map[string]any `json:"data"`
		WrapInfo struct {
			Token        string `json:"token"`
			TTL          int    `json:"ttl"`
			CreationPath string `json:"creation_path"`
		} `json:"wrap_info"`
	}
	out := v.Must("read", "-format=json", "-wrap-ttl=60s", mountPath+"/creds/x")
	if err := json.Unmarshal([]byte(out), &wrapped); err != nil || wrapped.WrapInfo.Token == "" {
		t.Fatalf("wrapped read: %v %s", err, out)
	}
	if wrapped.Data != nil || strings.Contains(out, "access_token") {
		t.Errorf("wrapped response leaks data: %s", out)
	}
	if wrapped.WrapInfo.TTL != 60 || wrapped.WrapInfo.CreationPath != mountPath+"/creds/x" {
		t.Errorf("wrap_info: ttl=%d creation_path=%q", wrapped.WrapInfo.TTL, wrapped.WrapInfo.CreationPath)
	}

	c := decodeCreds(t, v.Must("unwrap", "-format=json", wrapped.WrapInfo.Token))
	if !fake.Valid(c.AccessToken) {
		t.Errorf("unwrapped token is not accepted by the fake")
	}
	if r := v.Run("unwrap", wrapped.WrapInfo.Token); r.Code == 0 {
		t.Errorf("second unwrap succeeded; wrapping tokens are single-use: %s", r)
	}
	if again := v.ReadCreds("x"); again.AccessToken != c.AccessToken {
		t.Errorf("plain read after unwrap returned a different token; want the cached one")
	}
}

// Reloading the plugin keeps the persisted token state: the cached access token
// is served without an upstream call, and the rotated refresh token still works.
func TestPluginReloadKeepsState(t *testing.T) {
	t.Parallel()
	v := StartVaultWithPlugin(t)
	fake := StartFake(t, 0) // Echo360's default: 1h tokens with single-use refresh tokens
	v.WriteConfig("x", fake.ConfigArgs("echo360")...)

	first := v.ReadCreds("x")
	calls := fake.TotalCalls()

	out := v.Must("plugin", "reload", "-plugin="+pluginName, "-type=secret")
	t.Logf("%s", strings.TrimSpace(out))
	if again := v.ReadCreds("x"); again.AccessToken != first.AccessToken {
		t.Errorf("after reload: a new token; want the cached one")
	}
	if got := fake.TotalCalls(); got != calls {
		t.Errorf("after reload: %d upstream call(s); want 0", got-calls)
	}

	// Reload by mount too, then evict the access token: the next read must use
	// the refresh token persisted before the reloads (no new client_credentials
	// grant). (`vault plugin reload -mounts=…` is broken in the 1.21.0 CLI for
	// the root namespace, it PUTs sys/plugins/reload/unknown; this is the same
	// API call it means to make.)
	v.Must("write", "sys/plugins/reload/backend", "mounts="+mountPath+"/")
	baseGrants, refreshGrants := fake.Grants("client_credentials"), fake.Grants("refresh_token")
	v.Must("delete", mountPath+"/creds/x")
	next := v.ReadCreds("x")
	if next.AccessToken == first.AccessToken || !fake.Valid(next.AccessToken) {
		t.Errorf("after evicting: want a new valid token")
	}
	if got := fake.Grants("refresh_token"); got != refreshGrants+1 {
		t.Errorf("after reload + evict: %d refresh grant(s); want 1 (the persisted refresh chain)", got-refreshGrants)
	}
	if got := fake.Grants("client_credentials"); got != baseGrants {
		t.Errorf("after reload + evict: %d new client_credentials grant(s); want 0 (the refresh chain was lost)", got-baseGrants)
	}
	if n := fake.RefreshReuses(); n != 0 {
		t.Errorf("fake saw %d reused refresh token(s); want 0", n)
	}
}

// A file audit device records config writes and creds reads with every secret
// HMAC'd: no client secret, API key, refresh token or access token in clear text.
func TestAuditLogHasNoSecrets(t *testing.T) {
	t.Parallel()
	v := StartVaultWithPlugin(t)
	fake := StartFake(t, 0)
	auditLog := v.Dir + "/audit.log"
	v.Must("audit", "enable", "file", "file_path="+auditLog)

	seedRefresh := fake.SeedRefreshToken(fakeprovider.OAuth2, fakeClientID)
	v.WriteConfig("e", fake.ConfigArgs("echo360")...)
	v.WriteConfig("a", fake.ConfigArgs("apivideo")...)
	v.WriteConfig("seeded", fake.ConfigArgs("oauth2", "refresh_token="+seedRefresh)...)
	v.Must("read", mountPath+"/config/e")
	v.Must("read", mountPath+"/config/seeded")
	if c := v.ReadCreds("seeded"); !fake.Valid(c.AccessToken) { // redeems the seed
		t.Errorf("seeded config: the fake does not accept the token")
	}
	secrets := map[string]string{
		"client_secret":  fakeClientSecret,
		"api_key":        fakeAPIKey,
		"seeded refresh": seedRefresh,
		"e access token": v.ReadCreds("e").AccessToken,
		"a access token": v.ReadCreds("a").AccessToken,
	}
	// Evict and re-read so refresh tokens are exercised too.
	v.Must("delete", mountPath+"/creds/e")
	secrets["e access token 2"] = v.ReadCreds("e").AccessToken

	// Errors and config reads: a provider that echoes the secret back, and
	// every config read, must show none of them.
	seen := v.Must("read", mountPath+"/config/e") + v.Must("read", mountPath+"/config/a") + v.Must("read", mountPath+"/config/seeded")
	v.WriteConfig("fresh", fake.ConfigArgs("echo360")...) // no token yet: the read must mint
	fake.Fail(1, fakeprovider.FailEchoSecret)
	failed := v.Run("read", mountPath+"/creds/fresh")
	if failed.Code == 0 || !strings.Contains(failed.Stderr, "HTTP 400") {
		t.Errorf("echoing provider: %s", failed)
	}
	seen += failed.Stdout + failed.Stderr

	b, err := os.ReadFile(auditLog)
	if err != nil {
		t.Fatal(err)
	}
	log := string(b)
	if !strings.Contains(log, mountPath+"/config/seeded") || !strings.Contains(log, "hmac-sha256:") {
		t.Fatalf("audit log does not look complete (%d bytes)", len(log))
	}
	serverLog, err := os.ReadFile(v.log) // trace level, plugin lines included
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(serverLog), "provider request") {
		t.Fatalf("the server log has no plugin lines (%d bytes)", len(serverLog))
	}
	for what, s := range secrets {
		if strings.Contains(log, s) {
			t.Errorf("audit log contains the %s in clear text", what)
		}
		if strings.Contains(string(serverLog), s) {
			t.Errorf("the trace-level server log contains the %s", what)
		}
		if strings.Contains(seen, s) {
			t.Errorf("a config read or error message contains the %s", what)
		}
	}
}
