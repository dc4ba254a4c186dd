package tokenbroker

// creds/<name>: what a read returns and when it calls the provider.

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

func TestEveryDialectMintsCachesAndRenews(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dialect fakeprovider.Dialect
		extra   map[string]any
		setup   func(*fakeprovider.Server) // a fake stricter than its default
		// baseGrant is the fake's name for the dialect's base grant;
		// refreshes says whether the dialect renews by the refresh grant.
		baseGrant string
		refreshes bool
	}{
		{"oauth2", fakeprovider.OAuth2, nil, nil, "client_credentials", true},
		{"oauth2 body auth with scopes", fakeprovider.OAuth2, map[string]any{"auth_style": "body", "scopes": "read,write"}, nil, "client_credentials", true},
		{"oauth2_json", fakeprovider.OAuth2JSON, nil, nil, "client_credentials", false},
		{"echo360", fakeprovider.Echo360, nil, nil, "client_credentials", true},
		{"echo360 query encoding", fakeprovider.Echo360, map[string]any{"encoding": "query"},
			func(f *fakeprovider.Server) { f.SetEcho360Encoding(fakeprovider.Echo360QueryOnly) }, "client_credentials", true},
		{"apivideo", fakeprovider.APIVideo, nil, nil, "api_key", true},
		{"endorsed one scope", fakeprovider.Endorsed, map[string]any{"scopes": []string{"all:read"}}, nil, "client_credentials", false},
		{"endorsed json encoding two scopes", fakeprovider.Endorsed, map[string]any{"encoding": "json", "scopes": "all:read,all:write"}, nil, "client_credentials", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.fake.SetLifetime(time.Hour)
			if tc.setup != nil {
				tc.setup(e.fake)
			}
			e.config("x", tc.dialect, tc.extra)

			first := e.token("x")
			expect(t, "fake accepts the first token", e.fake.Valid(first), true)
			expect(t, "upstream calls after the first read", e.fake.TotalCalls(), 1)
			expect(t, "second read's token (cached)", e.token("x"), first)
			expect(t, "upstream calls after the second read", e.fake.TotalCalls(), 1)

			e.clock.Add(time.Hour) // expired
			second := e.token("x")
			if second == first || !e.fake.Valid(second) {
				t.Fatalf("after expiry: token %q (first %q), valid %v; want a new valid token", second, first, e.fake.Valid(second))
			}
			e.clock.Add(time.Hour)
			third := e.token("x")
			if third == second || !e.fake.Valid(third) {
				t.Fatalf("after the second expiry: token %q (before %q), valid %v; want a new valid token", third, second, e.fake.Valid(third))
			}

			wantRefreshes, wantBase := 0, 3
			if tc.refreshes {
				wantRefreshes, wantBase = 2, 1
			}
			expect(t, "refresh grants", e.fake.Grants("refresh_token"), wantRefreshes)
			expect(t, tc.baseGrant+" grants", e.fake.Grants(tc.baseGrant), wantBase)
			expect(t, "refresh token reuses", e.fake.RefreshReuses(), 0)
		})
	}
}

func TestWireDetails(t *testing.T) {
	t.Run("echo360 refreshes with the refresh grant and no client secret", func(t *testing.T) {
		e := newEnv(t)
		e.config("echo", fakeprovider.Echo360, nil)
		e.token("echo")
		e.clock.Add(2 * time.Hour)
		e.token("echo")
		last := e.fake.LastRequest(fakeprovider.PathEcho360Token)
		expect(t, "grant_type of the last echo360 request", last.Params["grant_type"], "refresh_token")
		expect(t, "client secret sent with the refresh", last.SecretSent, false)
	})
	t.Run("endorsed scopes and string expires_in", func(t *testing.T) {
		e := newEnv(t)
		e.config("endorsed", fakeprovider.Endorsed, map[string]any{"encoding": "json", "scopes": "all:read"})
		resp := e.mustDo(logical.ReadOperation, "creds/endorsed", nil)
		expect(t, "scopes", fmt.Sprint(resp.Data["scopes"]), "[all:read]")
		// Endorsed sends expires_in as a string; the fake's default is 14 days.
		expectField(t, resp.Data, "rotation_period", int64(14*24*3600))
	})
}

func TestCredsResponseFields(t *testing.T) {
	e := newEnv(t)
	e.fake.SetLifetime(time.Hour)
	e.config("x", fakeprovider.OAuth2, map[string]any{"refresh_ahead": "10m"})
	resp := e.mustDo(logical.ReadOperation, "creds/x", nil)
	expires := e.clock.Now().Add(time.Hour)
	if resp.Secret != nil {
		t.Fatalf("creds read created a lease: %+v", resp.Secret)
	}
	expectField(t, resp.Data, "expires_at", expires.Format(time.RFC3339))
	expectField(t, resp.Data, "expires_at_seconds", expires.Unix())
	expectField(t, resp.Data, "rotation_period", int64(3600))
	expectField(t, resp.Data, "ttl", int64(3000)) // until the 10 min refresh window
	expectField(t, resp.Data, "token_type", "Bearer")
	if _, ok := resp.Data["scopes"]; ok {
		t.Fatalf("scopes = %v, want no scopes field when none were asked or granted", resp.Data["scopes"])
	}

	e.clock.Add(49*time.Minute + 58*time.Second) // 2 s before the refresh window
	near := e.mustDo(logical.ReadOperation, "creds/x", nil)
	expectField(t, near.Data, "ttl", int64(minAgentTTL)) // the floor, not 2
}

func TestRefreshWindowServesCachedAndRefreshesOnce(t *testing.T) {
	e := newEnv(t)
	e.fake.SetLifetime(time.Hour)
	e.config("x", fakeprovider.Echo360, nil)
	first := e.token("x")

	e.clock.Add(56 * time.Minute) // inside the 5m window, still valid
	e.fake.SetLatency(300 * time.Millisecond)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got := e.token("x"); got != first {
				t.Errorf("read inside the window: token %q, want the cached %q at once", got, first)
			}
		}()
	}
	wg.Wait()
	e.settle("x")
	expect(t, "refresh grants", e.fake.Grants("refresh_token"), 1)
	next := e.token("x")
	if next == first || !e.fake.Valid(next) {
		t.Fatalf("after the background refresh: token %q (first %q), valid %v; want the refreshed token", next, first, e.fake.Valid(next))
	}
	expect(t, "upstream calls", e.fake.TotalCalls(), 2)
}

func TestShortLivedTokens(t *testing.T) {
	e := newEnv(t)
	e.fake.SetLifetime(5 * time.Second)
	e.config("x", fakeprovider.APIVideo, nil) // refresh_ahead 5m, capped at half of 5s
	first := e.token("x")
	resp := e.mustDo(logical.ReadOperation, "creds/x", nil)
	// Not minAgentTTL: Agent, back at ttl+1 s, would find the token expired.
	expectField(t, resp.Data, "ttl", int64(3))
	expect(t, "upstream calls for two reads of a 5 s token", e.fake.TotalCalls(), 1)

	e.clock.Add(3 * time.Second) // in the 2.5 s window, 2 s left: served, refreshed in the background
	expect(t, "token inside the window", e.token("x"), first)
	e.settle("x")
	second := e.token("x")
	if second == first {
		t.Fatalf("after the background refresh: token %q, want a new one", second)
	}
	expect(t, "upstream calls after the background refresh", e.fake.TotalCalls(), 2)

	e.clock.Add(4600 * time.Millisecond) // 0.4 s left, inside the 0.5 s leeway: a mint
	if got := e.token("x"); got == second {
		t.Fatalf("token with 0.4 s left = %q, the cached one; want a new token", got)
	}
	expect(t, "upstream calls after the leeway", e.fake.TotalCalls(), 3)
}

func TestStampedeOneUpstreamCall(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.Echo360, nil)
	e.token("x")
	e.clock.Add(2 * time.Hour)
	e.fake.SetLatency(200 * time.Millisecond)
	e.fake.Reset()

	const readers = 200
	var wg sync.WaitGroup
	tokens := make(chan string, readers)
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.creds("x", nil)
			if err != nil {
				t.Errorf("concurrent read: %v", err)
				return
			}
			tokens <- resp.Data["access_token"].(string)
		}()
	}
	wg.Wait()
	close(tokens)
	distinct := map[string]bool{}
	for tok := range tokens {
		distinct[tok] = true
	}
	expect(t, "upstream calls for 200 concurrent reads", e.fake.TotalCalls(), 1)
	expect(t, "distinct tokens among 200 concurrent reads", len(distinct), 1)
}

func TestMinTTL(t *testing.T) {
	e := newEnv(t)
	e.fake.SetLifetime(time.Hour)
	e.config("x", fakeprovider.OAuth2, nil)
	first := e.token("x")
	e.clock.Add(30 * time.Minute)

	resp := e.mustDo(logical.ReadOperation, "creds/x", map[string]any{"min_ttl": "20m"})
	expectField(t, resp.Data, "access_token", first) // 30 min left is enough
	expect(t, "upstream calls", e.fake.TotalCalls(), 1)

	resp = e.mustDo(logical.ReadOperation, "creds/x", map[string]any{"min_ttl": "40m"})
	if resp.Data["access_token"] == first {
		t.Fatalf("min_ttl 40m with 30m left: got the cached token %q, want a new one", first)
	}
	expect(t, "upstream calls", e.fake.TotalCalls(), 2)

	for _, bad := range []string{"soon", "-5m"} {
		_, err := e.creds("x", map[string]any{"min_ttl": bad})
		expectErr(t, "min_ttl "+bad, err, `field "min_ttl"`)
	}
}

// TestMinTTLBeyondTheTokenLifetime: a min_ttl longer than the provider's
// tokens live gets the freshest token with a warning, and cannot make every
// read call the provider.
func TestMinTTLBeyondTheTokenLifetime(t *testing.T) {
	e := newEnv(t)
	e.fake.SetLifetime(time.Hour)
	e.config("x", fakeprovider.OAuth2, nil)
	e.token("x")
	e.clock.Add(30 * time.Minute)
	for i := range 5 {
		resp := e.mustDo(logical.ReadOperation, "creds/x", map[string]any{"min_ttl": "2h"})
		if len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "more than the provider's tokens live") {
			t.Fatalf("read %d: warnings = %q, want the min_ttl notice", i, resp.Warnings)
		}
	}
	expect(t, "upstream calls (the first mint and one fresh token)", e.fake.TotalCalls(), 2)
}

func TestCredsDeleteEvictsAccessTokenKeepsChain(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.Echo360, nil)
	first := e.token("x")

	e.mustDo(logical.DeleteOperation, "creds/x", nil)
	if st := e.storedState("x"); st == nil || st.AccessToken != "" || st.RefreshToken == "" {
		t.Fatalf("stored state after creds delete = %+v, want a refresh token and no access token", st)
	}
	next := e.token("x")
	if next == first {
		t.Fatalf("token after creds delete = %q, the evicted one", next)
	}
	expect(t, "refresh grants (the chain continues)", e.fake.Grants("refresh_token"), 1)
	expect(t, "client_credentials grants", e.fake.Grants("client_credentials"), 1)
}

func TestCredsOfUnknownName(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.OAuth2, nil)
	tok := e.token("x")
	before := e.storageDump()
	_, err := e.creds("missing", nil)
	expectErr(t, "creds/missing", err, `no config named "missing"`)
	expect(t, "storage after reading an unknown name", e.storageDump(), before)
	expect(t, "token of x", e.token("x"), tok)
	expect(t, "upstream calls", e.fake.TotalCalls(), 1)
}

// A cold read that renews loads the config (and its keys) from storage once:
// the renewal takes the config the read loaded with the snapshot.
func TestAColdReadLoadsTheConfigOnce(t *testing.T) {
	e := newEnv(t)
	e.fake.SetLifetime(time.Hour)
	e.config("x", fakeprovider.Echo360, nil)
	e.token("x")
	e.restart()
	e.clock.Add(2 * time.Hour) // the stored token has expired: the read renews
	var configReads, keyReads atomic.Int64
	count := func(key string) {
		switch key {
		case configPrefix + "x":
			configReads.Add(1)
		case keyPrefix + "x":
			keyReads.Add(1)
		}
	}
	e.storage.onGet.Store(&count)
	defer e.storage.onGet.Store(nil)
	e.token("x")
	expect(t, "config reads for a cold read that renews", configReads.Load(), int64(1))
	expect(t, "key reads for a cold read that renews", keyReads.Load(), int64(1))
}
