package tokenbroker

// Healing: a refused or possibly spent refresh token is never sent again; the
// base grant starts a new chain when the config can mint, and an operator is
// asked for a new seed when it cannot. A refused client secret gives way to
// the next one.

import (
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

func TestInvalidGrantHealsWithBaseGrant(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.Echo360, nil)
	e.token("x")
	e.fake.RefuseRefreshes(1, fakeprovider.RefuseInvalidGrant) // someone else spent our refresh token
	e.clock.Add(2 * time.Hour)
	if tok := e.token("x"); !e.fake.Valid(tok) {
		t.Fatalf("token after the refusal = %q, not accepted by the fake", tok)
	}
	expect(t, "client_credentials grants (a new chain)", e.fake.Grants("client_credentials"), 2)

	e.clock.Add(2 * time.Hour)
	e.token("x")
	expect(t, "refresh grants on the new chain", e.fake.Grants("refresh_token"), 1)
	expect(t, "refresh token reuses", e.fake.RefreshReuses(), 0)
}

func TestSeedOnlyChainLostNeedsNewSeed(t *testing.T) {
	e := newEnv(t)
	// api.video with only a seed refresh token: nothing can mint a new chain.
	seed := e.fake.SeedRefreshToken(fakeprovider.APIVideo, testAPIKey)
	e.config("x", fakeprovider.APIVideo, map[string]any{"api_key": nil, "refresh_token": "rt_unknown"})
	_, err := e.creds("x", nil)
	expectErr(t, "read with an unknown seed", err, "write a new refresh_token")

	calls := e.fake.TotalCalls()
	_, err = e.creds("x", nil)
	expectErr(t, "second read of a lost chain", err, "write a new refresh_token")
	expect(t, "upstream calls by the second read", e.fake.TotalCalls(), calls)
	expectField(t, e.mustDo(logical.ReadOperation, "config/x", nil).Data, "needs_refresh_token", true)
	expectField(t, e.status("x"), "needs_refresh_token", true)
	expectField(t, e.status("x"), "healthy", false)

	e.mustDo(logical.UpdateOperation, "config/x", map[string]any{"refresh_token": seed})
	if tok := e.token("x"); !e.fake.Valid(tok) {
		t.Fatalf("token after a new seed = %q, not accepted by the fake", tok)
	}
	expectField(t, e.mustDo(logical.ReadOperation, "config/x", nil).Data, "needs_refresh_token", false)
	expect(t, "refresh token reuses", e.fake.RefreshReuses(), 0)
}

func TestDroppedResponseNeverResendsRefreshToken(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.APIVideo, nil)
	e.token("x")
	e.clock.Add(2 * time.Hour)
	e.fake.Fail(1, fakeprovider.FailDropAfterConsume)
	// The refresh is consumed and its answer lost: healed by the API key grant.
	if tok := e.token("x"); !e.fake.Valid(tok) {
		t.Fatalf("token after a lost answer = %q, not accepted by the fake", tok)
	}
	expect(t, "refresh token reuses", e.fake.RefreshReuses(), 0)
	expect(t, "api_key grants (a new chain)", e.fake.Grants("api_key"), 2)
}

// A process that died between sending a refresh token and saving the answer
// leaves the pending mark; whoever loads the state next never resends it.
func TestPendingRefreshAfterCrashIsNeverResent(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dialect fakeprovider.Dialect
		seeded  bool // only a seed refresh token, no credentials to mint
	}{
		{"echo360 heals with client credentials", fakeprovider.Echo360, false},
		{"apivideo seed only needs a new seed", fakeprovider.APIVideo, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			extra := map[string]any{}
			if tc.seeded {
				extra = map[string]any{"api_key": nil, "refresh_token": e.fake.SeedRefreshToken(tc.dialect, testAPIKey)}
			}
			e.config("x", tc.dialect, extra)
			e.token("x")
			st := e.storedState("x")
			st.RefreshPending = true // as left by a process killed mid-refresh
			e.storeState("x", st)
			e.restart() // the next active node starts from storage
			e.clock.Add(2 * time.Hour)
			refreshes := e.fake.Grants("refresh_token")

			_, err := e.creds("x", nil)
			expect(t, "refresh grants after the restart", e.fake.Grants("refresh_token"), refreshes)
			expect(t, "refresh token reuses", e.fake.RefreshReuses(), 0)
			if tc.seeded {
				expectErr(t, "read after the crash", err, "write a new refresh_token")
				return
			}
			if err != nil {
				t.Fatalf("read after the crash: %v, want healed by the base grant", err)
			}
			expect(t, "client_credentials grants (a new chain)", e.fake.Grants("client_credentials"), 2)
		})
	}
}

func TestClientSecretRotation(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.Endorsed, map[string]any{"client_secret": "old-secret", "client_secrets": "new-secret"})
	e.fake.AddClient(testClientID, "new-secret") // the provider now only knows the new secret
	if tok := e.token("x"); !e.fake.Valid(tok) {
		t.Fatalf("token = %q, not accepted by the fake: the second secret was not tried", tok)
	}
	expect(t, "upstream calls (refused old secret, then the new one)", e.fake.TotalCalls(), 2)
	cfg, err := loadConfig(t.Context(), e.storage, "x")
	if err != nil {
		t.Fatalf("load config: %v", err)
	}
	expect(t, "stored client_secret", cfg.ClientSecret, "new-secret")
	expect(t, "stored client_secrets", fmt.Sprint(cfg.ClientSecrets), "[old-secret]")

	e.clock.Add(30 * 24 * time.Hour)
	calls := e.fake.TotalCalls()
	e.token("x")
	expect(t, "upstream calls once the working secret is first", e.fake.TotalCalls()-calls, 1)

	expectField(t, e.mustDo(logical.ReadOperation, "config/x", nil).Data, "client_secrets_count", 2)
	status := e.status("x")
	expectField(t, status, "mints", 2)
	expectField(t, status, "failures", 0)
	expectField(t, status, "healthy", true)
}
