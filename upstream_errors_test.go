package tokenbroker

// What a read says when the provider fails, and that a still-valid token is
// served through an outage.

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

func TestProviderErrorsCarryNoSecret(t *testing.T) {
	for _, dialect := range []fakeprovider.Dialect{fakeprovider.OAuth2, fakeprovider.Echo360, fakeprovider.APIVideo, fakeprovider.Endorsed} {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t)
			e.config("x", dialect, nil)
			e.fake.Fail(1, fakeprovider.FailEchoSecret) // the error repeats every secret sent
			_, err := e.creds("x", nil)
			expectErr(t, "read answered by an error that echoes the secrets", err, "HTTP 400")
			for _, secret := range []string{testClientSecret, testAPIKey} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error shows the secret %q: %v", secret, err)
				}
			}
		})
	}
}

func TestWrongSecretIsClear(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.OAuth2, map[string]any{"client_secret": "wrong"})
	_, err := e.creds("x", nil)
	expectErr(t, "read with a wrong client secret", err, "invalid_client")
	if strings.Contains(err.Error(), "wrong") {
		t.Fatalf("error shows the client secret %q: %v", "wrong", err)
	}
}

func TestMalformedResponses(t *testing.T) {
	for _, tc := range []struct {
		mode fakeprovider.FailMode
		want string
	}{
		{fakeprovider.FailHTML200, "HTML page"},
		{fakeprovider.Fail503HTML, "HTML page"},
		{fakeprovider.FailNoAccessToken, "no access_token"},
		{fakeprovider.FailHugeBody, "larger than 1 MiB"},
		{fakeprovider.FailWrongTypes, "not a usable token response"},
		{fakeprovider.Fail500, "HTTP 500"},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			e := newEnv(t)
			e.config("x", fakeprovider.OAuth2, nil)
			e.fake.Fail(1, tc.mode)
			before := e.storageDump()
			_, err := e.creds("x", nil)
			expectErr(t, "mint answered by "+tc.mode.String(), err, tc.want)
			if after := e.storageDump(); after != before {
				t.Fatalf("a failed mint changed storage:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			e.token("x") // the next read recovers
		})
	}
}

func TestOutageServesCachedToken(t *testing.T) {
	e := newEnv(t)
	e.fake.SetLifetime(time.Hour)
	e.config("x", fakeprovider.Echo360, nil)
	first := e.token("x")
	e.clock.Add(57 * time.Minute) // inside the window
	e.fake.Fail(100, fakeprovider.Fail503HTML)
	e.token("x") // starts a background refresh that fails
	e.settle("x")

	resp := e.mustDo(logical.ReadOperation, "creds/x", nil)
	expectField(t, resp.Data, "access_token", first)
	if len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "HTML") {
		t.Fatalf("warnings = %q, want one saying the last refresh failed on an HTML page", resp.Warnings)
	}

	// min_ttl forces a mint, which fails; the still-valid token is served with a warning.
	resp = e.mustDo(logical.ReadOperation, "creds/x", map[string]any{"min_ttl": "10m"})
	expectField(t, resp.Data, "access_token", first)
	if len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "returning the cached one") {
		t.Fatalf("warnings = %q, want one saying the cached token is returned", resp.Warnings)
	}

	e.clock.Add(5 * time.Minute) // expired
	_, err := e.creds("x", nil)
	expectErr(t, "read of an expired token during the outage", err, "HTML")

	e.fake.ClearFailures()
	if next := e.token("x"); next == first {
		t.Fatalf("token after the outage = %q, the expired one", next)
	}
	expect(t, "refresh token reuses", e.fake.RefreshReuses(), 0)
}
