package tokenbroker

import (
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// TestRefreshRefusedClientTriesTheNextCredential: when the provider refuses
// the client (invalid_client) on a refresh, the refresh token was not
// spent: it goes again with the config's next client secret or next signing
// key, which is promoted once it works, and the chain carries on. With no
// credential left, the chain is kept for when the credentials are fixed.
func TestRefreshRefusedClientTriesTheNextCredential(t *testing.T) {
	cases := []struct {
		name string
		// setup writes config/x, obtains its first token and returns what
		// rotates the client's credential at the provider.
		setup func(e *env) (rotate func())
		// promoted checks that the credential that worked is now tried first.
		promoted func(t *testing.T, e *env)
	}{{
		name: "a later client secret",
		setup: func(e *env) func() {
			e.config("x", fakeprovider.OAuth2, map[string]any{"client_secrets": "new-secret"})
			e.token("x")
			return func() { e.fake.AddClient(testClientID, "new-secret") } // the old secret is revoked
		},
		promoted: func(t *testing.T, e *env) {
			cfg, err := loadConfig(t.Context(), e.storage, "x")
			if err != nil {
				t.Fatal(err)
			}
			expect(t, "secret tried first", cfg.ClientSecret, "new-secret")
		},
	}, {
		name: "the next signing key",
		setup: func(e *env) func() {
			key := e.configSigned("x", "oauth2", map[string]any{"token_url": e.fake.URL() + "/oauth2/token",
				"client_id": "key-client", "auth_style": "private_key_jwt", "generate_key": "ec-p256"})
			e.fake.AddAssertionKey("key-client", "", publicKey(e.t, key, ""))
			e.token("x")
			next := e.mustDo(logical.UpdateOperation, "key/x/rotate", map[string]any{"generate_key": "ec-p256"}).Data
			return func() { // the provider dropped the current key and holds the next
				e.fake.RemoveAssertionKeys("key-client")
				e.fake.AddAssertionKey("key-client", "", publicKey(e.t, next, "next_"))
			}
		},
		promoted: func(t *testing.T, e *env) {
			key := e.mustDo(logical.ReadOperation, "key/x", nil).Data
			if key["next_key_id"] != nil && key["next_key_id"] != "" {
				t.Errorf("key/x still holds a next key after the provider took it: %v", key)
			}
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tc.setup(e)()
			e.clock.Add(2 * time.Hour) // the token expired: the next read refreshes
			tok, err := e.creds("x", nil)
			if err != nil {
				t.Fatalf("read after the rotation at the provider: %v", err)
			}
			expect(t, "token valid", e.fake.Valid(tok.Data["access_token"].(string)), true)
			expectField(t, e.status("x"), "last_grant", "refresh_token") // the chain carried on, not a new one
			expect(t, "refresh tokens reused", e.fake.RefreshReuses(), 0)
			tc.promoted(t, e)
		})
	}

	t.Run("no credential left: the chain is kept", func(t *testing.T) {
		e := newEnv(t)
		e.config("x", fakeprovider.OAuth2, nil)
		e.token("x")
		e.fake.AddClient(testClientID, "new-secret") // revoked, and the config knows no other
		e.clock.Add(2 * time.Hour)
		_, err := e.creds("x", nil)
		expectErr(t, "read with a revoked secret", err, "invalid_client")
		status := e.status("x")
		expectField(t, status, "refresh_token_held", true)
		expectField(t, status, "needs_refresh_token", false)

		e.mustDo(logical.UpdateOperation, "config/x", map[string]any{"client_secret": "new-secret"})
		if _, err := e.creds("x", nil); err != nil {
			t.Fatalf("read after the operator wrote the new secret: %v", err)
		}
		expectField(t, e.status("x"), "last_grant", "refresh_token")
		expect(t, "client_credentials grants (one chain all along)", e.fake.Grants("client_credentials"), 1)
		expect(t, "refresh tokens reused", e.fake.RefreshReuses(), 0)
	})
}
