package tokenbroker

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// TestJSONOAuthMintsAgainAtExpiry: the JSON OAuth API's document says to call
// the token endpoint again at expiry. Against a server that also returns a
// refresh token and refuses the refresh grant, every read after an expiry
// succeeds: by default (refresh_grant=never) without ever trying a refresh,
// and with refresh_grant=auto by falling back to the base grant, never
// sending a refused refresh token twice.
func TestJSONOAuthMintsAgainAtExpiry(t *testing.T) {
	cases := []struct {
		name         string
		refreshGrant any // nil: the dialect's default
		wantCalls    int // token endpoint calls in all
	}{
		{"default is never", nil, 5},                             // 5 mints
		{"auto falls back to the base grant", "auto", 1 + 4 + 4}, // a mint, then 4 × (refused refresh + mint)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.fake.SetOAuth2JSONRefreshTokens(true)
			e.config("x", fakeprovider.OAuth2JSON, map[string]any{"refresh_grant": tc.refreshGrant})
			e.token("x")
			for i := range 4 {
				e.clock.Add(2 * time.Hour)
				tok, err := e.creds("x", nil)
				if err != nil {
					t.Fatalf("read %d after expiry: %v", i+1, err)
				}
				expect(t, "token valid", e.fake.Valid(tok.Data["access_token"].(string)), true)
			}
			expect(t, "token endpoint calls", e.fake.Calls(fakeprovider.PathOAuth2JSONToken), tc.wantCalls)
			expect(t, "client credentials grants", e.fake.Grants("client_credentials"), 5)
			expect(t, "refresh token reuses", e.fake.RefreshReuses(), 0)
			if tc.refreshGrant == nil {
				expect(t, "refresh token stored under never", e.storedState("x").RefreshToken, "")
			}
		})
	}
}

// TestRefreshGrantValidation: refresh_grant takes auto or never, and a seed
// refresh token needs a config that uses it.
func TestRefreshGrantValidation(t *testing.T) {
	cases := []struct {
		name    string
		dialect fakeprovider.Dialect
		fields  map[string]any
		wantErr string
	}{
		{"unknown value", fakeprovider.OAuth2, map[string]any{"refresh_grant": "sometimes"}, "refresh_grant"},
		{"seed with never", fakeprovider.OAuth2, map[string]any{"refresh_grant": "never", "refresh_token": "rt"}, "refresh_grant is never"},
		{"seed with oauth2_json's default", fakeprovider.OAuth2JSON, map[string]any{"refresh_token": "rt"}, "set refresh_grant=auto"},
		{"grace too long", fakeprovider.OAuth2, map[string]any{"refresh_reuse_grace": "48h"}, "refresh_reuse_grace must be between"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			data := withFields(map[string]any{
				"provider": string(tc.dialect), "token_url": e.fake.URL() + tc.dialect.TokenPath(),
				"client_id": testClientID, "client_secret": testClientSecret,
			}, tc.fields)
			_, err := e.do(logical.CreateOperation, "config/x", data)
			expectErr(t, "config write", err, tc.wantErr)
			expect(t, "storage after a refused write", e.storageDump(), "")
		})
	}
	t.Run("config read shows what is in force", func(t *testing.T) {
		e := newEnv(t)
		e.config("json", fakeprovider.OAuth2JSON, nil)
		e.config("echo", fakeprovider.Echo360, map[string]any{"refresh_reuse_grace": "30m"})
		expectField(t, e.mustDo(logical.ReadOperation, "config/json", nil).Data, "refresh_grant", "never")
		echo := e.mustDo(logical.ReadOperation, "config/echo", nil).Data
		expectField(t, echo, "refresh_grant", "auto")
		expectField(t, echo, "refresh_reuse_grace", int64(1800))
	})
}

// TestRefreshTokenLifetime: a refresh token's announced expiry is kept; a
// chain that cannot mint shows when an operator must act, turns unhealthy
// and warns on reads 7 days before; an expired refresh token is never sent.
func TestRefreshTokenLifetime(t *testing.T) {
	for _, field := range []fakeprovider.RefreshExpiryField{fakeprovider.RefreshTokenExpiresIn, fakeprovider.XRefreshTokenExpiresIn} {
		t.Run("announced as "+field.String(), func(t *testing.T) {
			e := newEnv(t)
			e.fake.SetRefreshTokenLifetime(5*24*time.Hour, field)
			e.seedConfig("x", fakeprovider.Echo360, map[string]any{"client_secret": nil})
			e.token("x") // the refresh answer announces the new token's expiry
			want := e.clock.Now().Add(5 * 24 * time.Hour).UTC().Format(time.RFC3339)
			st := e.status("x")
			expectField(t, st, "refresh_token_expires_at", want)
			expectField(t, st, "reauthorize_by", want)
			expectField(t, st, "healthy", false) // 5 days < the 7-day notice
			resp := e.mustDo(logical.ReadOperation, "creds/x", nil)
			if !strings.Contains(strings.Join(resp.Warnings, " "), "write a new refresh_token to config/x before then") {
				t.Fatalf("creds warnings = %q, want the reauthorization notice", resp.Warnings)
			}
		})
	}
	t.Run("a config that can mint has no reauthorize_by", func(t *testing.T) {
		e := newEnv(t)
		e.fake.SetRefreshTokenLifetime(5*24*time.Hour, fakeprovider.RefreshTokenExpiresIn)
		e.config("x", fakeprovider.Echo360, nil)
		e.token("x")
		st := e.status("x")
		expectField(t, st, "reauthorize_by", "")
		expectField(t, st, "healthy", true)
		if st["refresh_token_expires_at"] == "" {
			t.Fatalf("refresh_token_expires_at empty; want the announced expiry")
		}
	})
	t.Run("an expired refresh token is not sent", func(t *testing.T) {
		e := newEnv(t)
		e.fake.SetRefreshTokenLifetime(30*time.Minute, fakeprovider.RefreshTokenExpiresIn)
		e.seedConfig("x", fakeprovider.Echo360, map[string]any{"client_secret": nil})
		e.token("x")
		e.clock.Add(2 * time.Hour) // past the refresh token's 30 minutes
		calls := e.fake.TotalCalls()
		_, err := e.creds("x", nil)
		expectErr(t, "read with an expired refresh token", err, "expired at")
		expect(t, "upstream calls", e.fake.TotalCalls()-calls, 0)
		expectField(t, e.status("x"), "needs_refresh_token", true)
	})
}

// TestRefreshReuseGrace: inside a configured grace, a refresh whose answer was
// lost is sent once more and the seed-only chain survives; without a grace
// the token is never resent.
func TestRefreshReuseGrace(t *testing.T) {
	cases := []struct {
		name               string
		configGrace        any
		wantChainLives     bool
		wantGraceReuses    int
		wantOutsideReuses  int
		wantRefreshPending bool
	}{
		{"no grace configured: never resent", nil, false, 0, 0, false},
		{"grace configured: resent once", "30m", true, 1, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.fake.SetRefreshReuseGrace(30 * time.Minute)
			e.seedConfig("x", fakeprovider.Echo360, map[string]any{"client_secret": nil, "refresh_reuse_grace": tc.configGrace})
			e.token("x")
			e.clock.Add(2 * time.Hour)
			e.fake.Fail(1, fakeprovider.FailDropAfterConsume)
			_, err := e.creds("x", nil)
			if tc.wantChainLives && err != nil {
				t.Fatalf("read after a lost refresh: %v; want the resent refresh to succeed", err)
			}
			if !tc.wantChainLives {
				expectErr(t, "read after a lost refresh", err, "write a new refresh_token")
			}
			expect(t, "reuses inside the provider's grace", e.fake.RefreshGraceReuses(), tc.wantGraceReuses)
			expect(t, "reuses outside any grace", e.fake.RefreshReuses(), tc.wantOutsideReuses)
		})
	}
	t.Run("resent at most once", func(t *testing.T) {
		e := newEnv(t)
		e.fake.SetRefreshReuseGrace(30 * time.Minute)
		e.seedConfig("x", fakeprovider.Echo360, map[string]any{"client_secret": nil, "refresh_reuse_grace": "30m"})
		e.token("x")
		e.clock.Add(2 * time.Hour)
		e.fake.Fail(2, fakeprovider.FailDropAfterConsume)
		_, err := e.creds("x", nil)
		expectErr(t, "read after two lost answers", err, "write a new refresh_token")
		expect(t, "reuses inside the grace", e.fake.RefreshGraceReuses(), 1)
		expect(t, "reuses outside any grace", e.fake.RefreshReuses(), 0)
	})
	for _, tc := range []struct {
		name        string
		configGrace any
		wantErr     string
	}{
		{"a refresh found pending after a restart is resent within the grace", "30m", ""},
		{"a refresh found pending after a restart is not resent without a grace", nil, "write a new refresh_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.fake.SetRefreshReuseGrace(30 * time.Minute)
			e.seedConfig("x", fakeprovider.Echo360, map[string]any{"client_secret": nil, "refresh_reuse_grace": tc.configGrace})
			e.token("x")
			e.clock.Add(2 * time.Hour)
			// The process sent the refresh and died before saving the answer.
			held := e.storedState("x")
			refreshAtProvider(t, e, held.RefreshToken)
			e.storeState("x", held.edited(func(st *tokenState) {
				st.RefreshPending, st.RefreshSends, st.RefreshSentAt = true, 1, e.clock.Now()
			}))
			e.restart()
			e.clock.Add(time.Minute)
			_, err := e.creds("x", nil)
			if tc.wantErr != "" {
				expectErr(t, "read after the restart", err, tc.wantErr)
			} else if err != nil {
				t.Fatalf("read after the restart: %v; want the resent refresh to succeed", err)
			}
			expect(t, "reuses outside any grace", e.fake.RefreshReuses(), 0)
		})
	}
}

// TestClientRefusedAnyWayRotatesSecrets: a provider that refuses a bad client
// secret with 401, with 400 invalid_client or with a bare 400 still moves the
// config on to its next secret.
func TestClientRefusedAnyWayRotatesSecrets(t *testing.T) {
	failures := []fakeprovider.ClientAuthFailure{fakeprovider.ClientAuth401InvalidClient, fakeprovider.ClientAuth400InvalidClient, fakeprovider.ClientAuthBare400}
	for _, d := range []fakeprovider.Dialect{fakeprovider.OAuth2, fakeprovider.OAuth2JSON, fakeprovider.Echo360, fakeprovider.Endorsed} {
		for _, f := range failures {
			t.Run(string(d)+"/"+f.String(), func(t *testing.T) {
				e := newEnv(t)
				e.fake.SetClientAuthFailure(d, f)
				e.config("x", d, map[string]any{"client_secret": "old-revoked-secret", "client_secrets": testClientSecret})
				expect(t, "token valid", e.fake.Valid(e.token("x")), true)
				cfg, err := loadConfig(t.Context(), e.storage, "x")
				if err != nil {
					t.Fatalf("load config: %v", err)
				}
				expect(t, "secret tried first after the rotation", cfg.ClientSecret, testClientSecret)
			})
		}
	}
	t.Run("endorsed bare 400 without a second secret is a clear error", func(t *testing.T) {
		e := newEnv(t)
		e.fake.SetClientAuthFailure(fakeprovider.Endorsed, fakeprovider.ClientAuthBare400)
		e.config("x", fakeprovider.Endorsed, map[string]any{"client_secret": "wrong"})
		_, err := e.creds("x", nil)
		expectErr(t, "read with a wrong secret", err, "provider returned HTTP 400")
	})
}

// TestEcho360Encoding: Echo360 documents its parameters both as a form body
// and in the query string. Against a server that takes only one, the other
// encoding is refused clearly and the documented switch fixes it.
func TestEcho360Encoding(t *testing.T) {
	cases := []struct {
		server   fakeprovider.Echo360Encoding
		encoding string
		wantErr  string
	}{
		{fakeprovider.Echo360FormOnly, "form", ""},
		{fakeprovider.Echo360FormOnly, "query", "invalid_request"},
		{fakeprovider.Echo360QueryOnly, "query", ""},
		{fakeprovider.Echo360QueryOnly, "form", "invalid_request"},
	}
	for _, tc := range cases {
		t.Run("server takes "+tc.server.String()+"/we send "+tc.encoding, func(t *testing.T) {
			e := newEnv(t)
			e.fake.SetEcho360Encoding(tc.server)
			e.config("x", fakeprovider.Echo360, map[string]any{"encoding": tc.encoding})
			_, err := e.creds("x", nil)
			if tc.wantErr != "" {
				expectErr(t, "read", err, tc.wantErr)
				return
			}
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			e.clock.Add(2 * time.Hour) // and the refresh, in the same encoding
			expect(t, "refreshed token valid", e.fake.Valid(e.token("x")), true)
			expect(t, "refresh grants", e.fake.Grants("refresh_token"), 1)
		})
	}
}
