package tokenbroker

// status/<name>: a name's token and refresh health, without secrets.

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

func TestStatusBeforeAnyRead(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.Echo360, nil)
	status := e.status("x")
	for key, want := range map[string]any{
		"provider":             "echo360",
		"token_cached":         false,
		"refresh_token_held":   false,
		"needs_refresh_token":  false,
		"state_saved":          true,
		"last_grant":           "",
		"mints":                0,
		"refreshes":            0,
		"failures":             0,
		"consecutive_failures": 0,
		"last_error":           "",
		"backoff_until":        "",
		"expires_at":           "",
		"healthy":              true,
	} {
		expectField(t, status, key, want)
	}
	if v, ok := status["expires_in_seconds"]; ok {
		t.Fatalf("expires_in_seconds = %v, want no field before a token exists", v)
	}
}

func TestStatusAfterFailureAndRecovery(t *testing.T) {
	e := newEnv(t)
	e.fake.SetLifetime(time.Hour)
	e.config("x", fakeprovider.Echo360, nil)
	e.token("x")
	e.clock.Add(2 * time.Hour)
	e.fake.Fail(1, fakeprovider.Fail500)
	_, err := e.creds("x", nil)
	expectErr(t, "read during an injected failure", err, "HTTP 500")

	status := e.status("x")
	expectField(t, status, "healthy", false)
	expectField(t, status, "failures", 1)
	expectField(t, status, "consecutive_failures", 1)
	expectField(t, status, "refresh_token_held", true)
	expectField(t, status, "token_cached", false)
	if msg, _ := status["last_error"].(string); !strings.Contains(msg, "HTTP 500") {
		t.Fatalf("last_error = %q, want it to mention HTTP 500", msg)
	}
	if status["backoff_until"] == "" || status["last_error_at"] == "" {
		t.Fatalf("backoff_until = %q, last_error_at = %q; want both set after a failure", status["backoff_until"], status["last_error_at"])
	}

	e.token("x")
	status = e.status("x")
	for key, want := range map[string]any{
		"healthy":              true,
		"refreshes":            1,
		"mints":                1,
		"failures":             1, // since the plugin started, not reset by success
		"consecutive_failures": 0,
		"last_grant":           "refresh_token",
		"token_cached":         true,
		"backoff_until":        "",
		"last_success_at":      e.clock.Now().Format(time.RFC3339),
		"expires_at":           e.clock.Now().Add(time.Hour).Format(time.RFC3339),
		"expires_in_seconds":   int64(3600),
	} {
		expectField(t, status, key, want)
	}

	raw, _ := json.Marshal(status)
	st := e.storedState("x")
	for _, secret := range []string{testClientSecret, st.AccessToken, st.RefreshToken} {
		if strings.Contains(string(raw), secret) {
			t.Fatalf("status shows the secret %q: %s", secret, raw)
		}
	}
}

func TestStatusListAndUnknownName(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.Echo360, nil)
	expect(t, "status list", fmt.Sprint(e.mustDo(logical.ListOperation, "status/", nil).Data["keys"]), "[x]")
	_, err := e.do(logical.ReadOperation, "status/missing", nil)
	expectErr(t, "status/missing", err, `no config named "missing"`)
	_, err = e.do(logical.ReadOperation, "status/bad!name", nil)
	expectErr(t, "status/bad!name", err, "invalid name")
}
