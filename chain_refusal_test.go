package tokenbroker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// failureClass is a way a refresh can fail, by the class of its answer.
type failureClass struct {
	name   string
	inject func(f *fakeprovider.Server)
	// spends: the refresh token must never be sent again (refused or lost).
	spends bool
}

// refreshFailures lists every refusal shape providers use, one lost answer and
// one temporary outage.
func refreshFailures() []failureClass {
	refuse := func(shape fakeprovider.RefusalShape) func(*fakeprovider.Server) {
		return func(f *fakeprovider.Server) { f.RefuseRefreshes(1, shape) }
	}
	return []failureClass{
		{"refused invalid_grant", refuse(fakeprovider.RefuseInvalidGrant), true},
		{"refused invalid_request", refuse(fakeprovider.RefuseInvalidRequest), true},
		{"refused 401 invalid_token", refuse(fakeprovider.RefuseInvalidToken), true},
		{"refused unsupported_grant_type", refuse(fakeprovider.RefuseUnsupportedGrantType), true},
		{"refused inside HTTP 200", refuse(fakeprovider.RefuseErrorIn200), true},
		{"refused plain-text 403", refuse(fakeprovider.RefusePlainText403), true},
		{"refused problem+json", refuse(fakeprovider.RefuseProblemJSON), true},
		{"lost answer", func(f *fakeprovider.Server) { f.Fail(1, fakeprovider.FailDropAfterConsume) }, true},
		{"temporary 500", func(f *fakeprovider.Server) { f.Fail(1, fakeprovider.Fail500) }, false},
		{"temporary 503 HTML", func(f *fakeprovider.Server) { f.Fail(1, fakeprovider.Fail503HTML) }, false},
	}
}

// refreshingDialects are the dialects with a refresh grant, and what a
// seed-only config of each drops (it has no base-grant credentials). The
// oauth2 fake serves confidential clients only, which can always mint.
var refreshingDialects = []struct {
	dialect  fakeprovider.Dialect
	seedOnly map[string]any // nil: no seed-only variant
}{
	{fakeprovider.OAuth2, nil},
	{fakeprovider.Echo360, map[string]any{"client_secret": nil}},
	{fakeprovider.APIVideo, map[string]any{"api_key": nil}},
}

// seedConfig writes a config of dialect that holds only a seed refresh token.
func (e *env) seedConfig(name string, dialect fakeprovider.Dialect, without map[string]any) {
	e.t.Helper()
	e.config(name, dialect, withFields(without, map[string]any{"refresh_token": e.fake.SeedRefreshToken(dialect, testClientID)}))
}

// TestEveryFailureClassOfARefresh: for every dialect that refreshes, every way
// a refresh can fail, and whether the config can mint: a refused or lost
// refresh token is never sent again; a config that can mint serves a token in
// the same read; a seed-only config says it needs a new refresh token; a
// temporary failure keeps the refresh token for the next read.
func TestEveryFailureClassOfARefresh(t *testing.T) {
	for _, d := range refreshingDialects {
		for _, class := range refreshFailures() {
			for _, canMint := range []bool{true, false} {
				if !canMint && d.seedOnly == nil {
					continue
				}
				mode := "config can mint"
				if !canMint {
					mode = "seed only"
				}
				t.Run(fmt.Sprintf("%s/%s/%s", d.dialect, class.name, mode), func(t *testing.T) {
					e := newEnv(t)
					if canMint {
						e.config("x", d.dialect, nil)
					} else {
						e.seedConfig("x", d.dialect, d.seedOnly)
					}
					e.token("x") // mints, or refreshes the seed: a chain is held
					if st := e.storedState("x"); st.RefreshToken == "" {
						t.Fatalf("no refresh token held after the first read: %+v", st)
					}
					e.clock.Add(2 * time.Hour)
					class.inject(e.fake)
					refreshesBefore := e.fake.Grants("refresh_token")

					_, err := e.creds("x", nil)
					switch {
					case !class.spends:
						expectErr(t, "read during a temporary failure", err, "provider returned HTTP 5")
						tok := e.token("x") // the outage is over: the same token refreshes
						expect(t, "token valid at the provider", e.fake.Valid(tok), true)
						expect(t, "refresh grants after the outage", e.fake.Grants("refresh_token")-refreshesBefore >= 1, true)
					case canMint:
						if err != nil {
							t.Fatalf("read after the refresh failed: %v; want a token minted in the same read", err)
						}
						expect(t, "needs_refresh_token", e.status("x")["needs_refresh_token"], false)
						// The new chain works: the next expiry refreshes it.
						e.clock.Add(2 * time.Hour)
						expect(t, "token of the new chain valid", e.fake.Valid(e.token("x")), true)
					default:
						expectErr(t, "seed-only read after the chain died", err, "write a new refresh_token to config/x")
						expectField(t, e.status("x"), "needs_refresh_token", true)
						calls := e.fake.TotalCalls()
						_, err = e.creds("x", nil)
						expectErr(t, "second read", err, "write a new refresh_token")
						expect(t, "upstream calls by the second read", e.fake.TotalCalls()-calls, 0)
					}
					expect(t, "refresh token reuses at the provider", e.fake.RefreshReuses(), 0)
				})
			}
		}
	}
}

// TestSeedOnlyChainRecoversByOperator: a dead seed-only chain heals when an
// operator writes a new refresh token, to the config or to creds/<name>/reset.
func TestSeedOnlyChainRecoversByOperator(t *testing.T) {
	for _, via := range []string{"config/x", "creds/x/reset"} {
		t.Run(via, func(t *testing.T) {
			e := newEnv(t)
			e.seedConfig("x", fakeprovider.Echo360, map[string]any{"client_secret": nil})
			e.token("x")
			e.clock.Add(2 * time.Hour)
			e.fake.RefuseRefreshes(1, fakeprovider.RefuseInvalidRequest)
			_, err := e.creds("x", nil)
			expectErr(t, "read after the refusal", err, "write a new refresh_token")

			e.mustDo(logical.UpdateOperation, via, map[string]any{"refresh_token": e.fake.SeedRefreshToken(fakeprovider.Echo360, testClientID)})
			expect(t, "token valid after the new seed", e.fake.Valid(e.token("x")), true)
			expectField(t, e.status("x"), "needs_refresh_token", false)
			expect(t, "refresh token reuses", e.fake.RefreshReuses(), 0)
		})
	}
}

// TestResetWithoutSeed: reset drops the chain and the backoff; a config that
// can mint mints on the next read, a seed-only one is told it needs a seed.
func TestResetWithoutSeed(t *testing.T) {
	t.Run("config can mint", func(t *testing.T) {
		e := newEnv(t)
		e.config("x", fakeprovider.Echo360, nil)
		first := e.token("x")
		e.mustDo(logical.UpdateOperation, "creds/x/reset", nil)
		expect(t, "refresh token stored after reset", e.storedState("x") == nil, true)
		second := e.token("x")
		expect(t, "new token after reset", second != first, true)
		expect(t, "client credentials grants", e.fake.Grants("client_credentials"), 2)
	})
	t.Run("seed only", func(t *testing.T) {
		e := newEnv(t)
		e.seedConfig("x", fakeprovider.Echo360, map[string]any{"client_secret": nil})
		before := e.storageDump()
		_, err := e.do(logical.UpdateOperation, "creds/x/reset", nil)
		expectErr(t, "reset of a seed-only config without a seed", err, "needs client_secret (or a seed refresh_token)")
		expect(t, "storage after a refused reset", e.storageDump(), before)
	})
	t.Run("unknown name", func(t *testing.T) {
		e := newEnv(t)
		_, err := e.do(logical.UpdateOperation, "creds/nope/reset", nil)
		expectErr(t, "reset of an unknown name", err, `no config named "nope"`)
	})
	t.Run("clears the backoff", func(t *testing.T) {
		e := newEnv(t)
		e.config("x", fakeprovider.OAuth2, nil)
		e.token("x")
		e.clock.Add(2 * time.Hour)
		e.fake.Fail(1, fakeprovider.Fail500)
		_, err := e.creds("x", nil)
		expectErr(t, "read during the outage", err, "HTTP 500")
		expectField(t, e.status("x"), "consecutive_failures", 1)
		e.mustDo(logical.UpdateOperation, "creds/x/reset", nil)
		expectField(t, e.status("x"), "consecutive_failures", 0)
		expectField(t, e.status("x"), "healthy", true)
	})
}

// TestStaleViewAdoptsTheStoredChain: this node's view holds a refresh token
// that another node has already used and replaced in storage. Storage is read
// before sending, so the spent token is never sent and the stored chain goes on.
func TestStaleViewAdoptsTheStoredChain(t *testing.T) {
	e := newEnv(t)
	e.seedConfig("x", fakeprovider.Echo360, map[string]any{"client_secret": nil})
	e.token("x")
	held := e.storedState("x")

	// The other node refreshes the held token and stores the new chain;
	// no invalidation reaches this node.
	newer := held.edited(func(st *tokenState) { st.RefreshToken = refreshAtProvider(t, e, held.RefreshToken) })
	if err := e.storage.InmemStorage.Put(context.Background(), mustEntry(t, tokenPrefix+"x", newer)); err != nil {
		t.Fatalf("store the other node's chain: %v", err)
	}

	e.clock.Add(2 * time.Hour)
	expect(t, "token from the stored chain valid", e.fake.Valid(e.token("x")), true)
	expect(t, "refresh token reuses", e.fake.RefreshReuses(), 0)
	expectField(t, e.status("x"), "needs_refresh_token", false)
}

// refreshAtProvider spends an Echo360 refresh token at the fake, as another
// node or an earlier process would have, and returns its successor.
func refreshAtProvider(t *testing.T, e *env, refreshToken string) string {
	t.Helper()
	hc, err := provider.NewHTTPClient(e.fake.CAPEM())
	if err != nil {
		t.Fatalf("http client: %v", err)
	}
	ep := &provider.Endpoint{Dialect: provider.Echo360, TokenURL: e.fake.URL() + fakeprovider.PathEcho360Token, ClientID: testClientID}
	tok, err := (&provider.Client{HTTP: hc}).Exchange(context.Background(), ep, provider.GrantRefreshToken, refreshToken)
	if err != nil {
		t.Fatalf("refresh at the provider: %v", err)
	}
	return tok.RefreshToken
}

func mustEntry(t *testing.T, key string, v any) *logical.StorageEntry {
	t.Helper()
	entry, err := logical.StorageEntryJSON(key, v)
	if err != nil {
		t.Fatalf("encode %s: %v", key, err)
	}
	return entry
}
