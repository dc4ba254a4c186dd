package tokenbroker

// Narrowed reads (narrowing.go) and their cache (variants.go): bounds,
// canonical keys, the bound on variants, idle drop, single flight, and a
// narrowed refresh's discipline on a single-use chain.

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// narrowedToken reads creds/<name> with read and returns its access token;
// any error is fatal.
func (e *env) narrowedToken(name string, read map[string]any) string {
	e.t.Helper()
	resp, err := e.creds(name, read)
	if err != nil {
		e.t.Fatalf("creds/%s %v: %v", name, read, err)
	}
	tok, _ := resp.Data["access_token"].(string)
	if tok == "" {
		e.t.Fatalf("creds/%s %v: no access_token in %v", name, read, resp.Data)
	}
	return tok
}

// TestNarrowedReadBounds: a narrowed read gets a token limited to what it
// asks, within the config's allowed_*; anything outside, or not a usable
// value, is a 400 naming the value, and calls no provider.
func TestNarrowedReadBounds(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.OAuth2, map[string]any{"scopes": "read,write,admin", "allowed_scopes": "read,write",
		"allowed_audiences": "api", "allowed_resources": "https://api.example/v1"})
	e.config("closed", fakeprovider.OAuth2, map[string]any{"scopes": "read"})
	cases := []struct {
		name, config string
		read         map[string]any
		wantScopes   []string // on success
		wantErr      string   // "": succeeds
	}{
		{"an allowed scope", "x", map[string]any{"scope": "read"}, []string{"read"}, ""},
		{"scopes space-delimited (RFC 6749 §3.3)", "x", map[string]any{"scope": "write read"}, []string{"read", "write"}, ""},
		{"scopes comma-separated", "x", map[string]any{"scope": "write,read"}, []string{"read", "write"}, ""},
		{"an allowed audience", "x", map[string]any{"audience": "api"}, nil, ""},
		{"a resource normalised into bounds", "x", map[string]any{"resource": []string{"HTTPS://API.example:443/v1"}}, nil, ""},
		{"a scope outside", "x", map[string]any{"scope": "read admin"}, nil, `scope "admin" is not among the allowed scopes (the config's allowed_scopes)`},
		{"an audience outside", "x", map[string]any{"audience": "other"}, nil, `audience "other" is not among the allowed audiences`},
		{"a resource outside", "x", map[string]any{"resource": "https://evil.example/"}, nil, `resource "https://evil.example/" is not among the allowed resources`},
		{"a resource with a fragment", "x", map[string]any{"resource": "https://api.example/v1#f"}, nil, "must not include a fragment"},
		{"a relative resource", "x", map[string]any{"resource": "/v1"}, nil, "must be an absolute URI"},
		{"a scope with a quote", "x", map[string]any{"scope": `re"ad`}, nil, "RFC 6749 §3.3"},
		{"no allowed_scopes allows no scope", "closed", map[string]any{"scope": "read"}, nil, `scope "read" is not among the allowed scopes`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			calls := e.fake.TotalCalls()
			resp, err := e.creds(tc.config, tc.read)
			if tc.wantErr != "" {
				expectErr(t, "narrowed read", err, tc.wantErr)
				expect(t, "status", codeOf(err), http.StatusBadRequest)
				expect(t, "upstream calls", e.fake.TotalCalls()-calls, 0)
				return
			}
			if err != nil {
				t.Fatalf("narrowed read %v: got %v, want a token", tc.read, err)
			}
			if got, _ := resp.Data["scopes"].([]string); tc.wantScopes != nil && !slices.Equal(got, tc.wantScopes) {
				t.Errorf("scopes: got %v, want %v", got, tc.wantScopes)
			}
		})
	}
}

// TestNarrowedReadLeavesTheMainToken: a narrowed read mints its own token;
// the main token stays cached, and a plain read still serves it.
func TestNarrowedReadLeavesTheMainToken(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.OAuth2, map[string]any{"scopes": "read,write", "allowed_scopes": "read"})
	main := e.token("x")
	narrowed := e.narrowedToken("x", map[string]any{"scope": "read"})
	if narrowed == main {
		t.Fatal("the narrowed read returned the main token")
	}
	expect(t, "main token after a narrowed read", e.token("x"), main)
	expect(t, "tokens issued for scope read", e.fake.IssuedFor("read"), 1)
	expect(t, "tokens issued for read write", e.fake.IssuedFor("read write"), 1)
}

// TestNarrowedReadCanonicalKey: reads asking the same thing in different
// words share one variant, and one upstream call.
func TestNarrowedReadCanonicalKey(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.OAuth2, map[string]any{"allowed_scopes": "a,b", "allowed_resources": "https://api.example/"})
	e.token("x")
	calls := e.fake.TotalCalls()
	first := e.narrowedToken("x", map[string]any{"scope": "b a", "resource": "https://API.example:443/"})
	for _, read := range []map[string]any{
		{"scope": "a,b", "resource": "https://api.example/"},
		{"scope": "a b a", "resource": []string{"https://api.example/", "https://api.example:443/"}},
	} {
		expect(t, fmt.Sprintf("token of %v", read), e.narrowedToken("x", read), first)
	}
	expect(t, "upstream calls", e.fake.TotalCalls()-calls, 1)
	expect(t, "variants", e.b.entry("x").variants.len(), 1)
	expectField(t, e.status("x"), "narrowed_tokens", 1)
}

// TestNarrowedVariantsBound: at most maxVariants per name; the least
// recently read goes first, and a variant not read for variantIdle is
// dropped by the periodic pass. A config write drops them all.
func TestNarrowedVariantsBound(t *testing.T) {
	e := newEnv(t)
	var scopes []string
	for i := range maxVariants + 1 {
		scopes = append(scopes, fmt.Sprintf("s%d", i))
	}
	e.config("x", fakeprovider.OAuth2, map[string]any{"allowed_scopes": strings.Join(scopes, ",")})
	variants := &e.b.entry("x").variants
	tokens := map[string]string{}
	for _, s := range scopes[:maxVariants] {
		tokens[s] = e.narrowedToken("x", map[string]any{"scope": s})
		e.clock.Add(2 * time.Second)
	}
	e.narrowedToken("x", map[string]any{"scope": "s0"}) // s0 read again: s1 is now the least recently read
	e.clock.Add(2 * time.Second)
	e.narrowedToken("x", map[string]any{"scope": scopes[maxVariants]})
	expect(t, "variants at the bound", variants.len(), maxVariants)
	calls := e.fake.TotalCalls()
	expect(t, "s0's token (kept)", e.narrowedToken("x", map[string]any{"scope": "s0"}), tokens["s0"])
	expect(t, "upstream calls for a kept variant", e.fake.TotalCalls()-calls, 0)
	if got := e.narrowedToken("x", map[string]any{"scope": "s1"}); got == tokens["s1"] {
		t.Error("s1, the least recently read, was kept past the bound")
	}

	e.clock.Add(variantIdle - time.Minute)
	e.narrowedToken("x", map[string]any{"scope": "s2"}) // read again: not idle
	e.clock.Add(2 * time.Minute)
	if err := e.periodic(); err != nil {
		t.Fatal(err)
	}
	expect(t, "variants after a day idle, one read within it", variants.len(), 1)

	e.mustDo(logical.UpdateOperation, "config/x", map[string]any{"allowed_scopes": "s2"})
	expect(t, "variants after a config write", variants.len(), 0)
}

// TestNarrowedReadSingleFlight: 1000 concurrent readers of a new variant
// make one upstream call, and all get its token.
func TestNarrowedReadSingleFlight(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.OAuth2, map[string]any{"allowed_scopes": "read"})
	e.token("x")
	calls := e.fake.TotalCalls()
	const readers = 1000
	tokens := make([]string, readers)
	errs := make([]error, readers)
	var wg sync.WaitGroup
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.b.HandleRequest(t.Context(), &logical.Request{Operation: logical.ReadOperation, Path: "creds/x",
				Data: map[string]any{"scope": "read"}, Storage: e.storage})
			if err == nil {
				tokens[i], _ = resp.Data["access_token"].(string)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i := range readers {
		if errs[i] != nil || tokens[i] != tokens[0] {
			t.Fatalf("reader %d: got %q, %v; want %q", i, tokens[i], errs[i], tokens[0])
		}
	}
	expect(t, "upstream calls for 1000 readers", e.fake.TotalCalls()-calls, 1)
}

// TestNarrowedVariantRenewedOffTheReadPath: inside its refresh window a
// variant is still served at once, and one renewal runs in the background.
func TestNarrowedVariantRenewedOffTheReadPath(t *testing.T) {
	e := newEnv(t)
	e.fake.SetLifetime(time.Hour)
	e.config("x", fakeprovider.OAuth2, map[string]any{"allowed_scopes": "read"})
	first := e.narrowedToken("x", map[string]any{"scope": "read"})
	e.clock.Add(time.Hour - 4*time.Minute) // inside the default 5 min window
	expect(t, "token served in the window", e.narrowedToken("x", map[string]any{"scope": "read"}), first)
	e.settle(variantFlight("x", newVariantRequest(provider.Narrowing{Scopes: []string{"read"}}, nil)))
	if got := e.narrowedToken("x", map[string]any{"scope": "read"}); got == first {
		t.Error("the variant was not renewed in the background")
	}
}

// TestNarrowedRefreshKeepsTheChain: on a single-use refresh chain, a
// narrowed read sends the refresh token with the scope (RFC 6749 §6); the
// rotated refresh token is stored as the chain's, the main token stays
// cached, and no refresh token is ever sent twice.
func TestNarrowedRefreshKeepsTheChain(t *testing.T) {
	e := newEnv(t)
	e.seedConfig("x", fakeprovider.OAuth2, map[string]any{"allowed_scopes": "read"})
	main := e.token("x")
	before := e.storedState("x").RefreshToken
	narrowed := e.narrowedToken("x", map[string]any{"scope": "read"})
	after := e.storedState("x")
	if after.RefreshToken == before || after.RefreshToken == "" || after.RefreshPending {
		t.Fatalf("stored chain after a narrowed refresh: refresh token rotated %v, pending %v; want rotated, not pending",
			after.RefreshToken != before, after.RefreshPending)
	}
	expect(t, "stored access token (the main one)", after.AccessToken, main)
	expect(t, "main token", e.token("x"), main)
	if narrowed == main {
		t.Fatal("the narrowed read returned the main token")
	}
	expect(t, "scope sent", e.fake.LastRequest(fakeprovider.PathOAuth2Token).Params["scope"], "read")
	e.clock.Add(2 * time.Hour) // both expired: the main read refreshes with the rotated token
	e.token("x")
	expect(t, "refresh token reuses", e.fake.RefreshReuses(), 0)
}

// TestNarrowingIgnoredByTheProvider: a provider may ignore the scope a
// refresh asks and say so in its answer (RFC 6749 §3.3). Such a token is
// wider than the read asked: it is not served (a 502 naming the scopes
// beyond) nor cached, while the refresh token the refresh rotated is the
// chain's and the main token stays.
func TestNarrowingIgnoredByTheProvider(t *testing.T) {
	e := newEnv(t)
	e.userConfig("x", map[string]any{"allowed_scopes": "read"})
	e.connect("x")
	e.fake.SetClientPolicy(testClientID, fakeprovider.ClientPolicy{IgnoresRefreshScope: true})
	main := e.token("x")
	before := e.storedState("x").RefreshToken
	_, err := e.creds("x", map[string]any{"scope": "read"})
	expectErr(t, "a narrowed read the provider ignored", err, "scopes beyond those asked (write)")
	expect(t, "status", codeOf(err), http.StatusBadGateway)
	expect(t, "scope sent", e.fake.LastRequest(fakeprovider.PathOAuth2Token).Params["scope"], "read")
	if after := e.storedState("x"); after.RefreshToken == before || after.RefreshToken == "" || after.RefreshPending {
		t.Errorf("stored chain: refresh token rotated %v, pending %v; want the rotated one kept", after.RefreshToken != before, after.RefreshPending)
	}
	expect(t, "main token", e.token("x"), main)
	expect(t, "narrowed tokens cached", e.b.entry("x").variants.len(), 0)
	e.clock.Add(2 * time.Hour) // the main read refreshes with the rotated token
	e.token("x")
	expect(t, "refresh token reuses", e.fake.RefreshReuses(), 0)
}

// TestNarrowedRefreshFaults: random trials over every failure class of a
// refresh, on narrowed and plain reads of one chain in turn: no refresh
// token is ever sent twice, and a config that can mint is never stuck.
func TestNarrowedRefreshFaults(t *testing.T) {
	n := faultTrials(10)
	classes := refreshFailures()
	rng := trialRand(t)
	e := newFaultEnv(t)
	e.config("x", fakeprovider.OAuth2, map[string]any{"allowed_scopes": "read,write"})
	e.token("x")
	reads := []map[string]any{nil, {"scope": "read"}, {"scope": "write"}}
	stuck := 0
	for trial := range n {
		e.clock.Add(2 * time.Hour)
		pick := rng.IntN(len(classes) + 1)
		class, inject := classes[pick%len(classes)], pick < len(classes)
		if inject {
			class.inject(e.fake)
		}
		read := reads[rng.IntN(len(reads))]
		if _, err := e.creds("x", read); err != nil {
			if !inject || class.spends {
				stuck++
				t.Errorf("trial %d (%s, injected %v, read %v): %v", trial, class.name, inject, read, err)
			} else if _, err := e.creds("x", read); err != nil {
				stuck++
				t.Errorf("trial %d: read %v after a %s outage: %v", trial, read, class.name, err)
			}
		}
		e.fake.ClearFailures()
	}
	t.Logf("FAULT narrowed refresh: trials=%d reuses=%d stuck=%d", n, e.fake.RefreshReuses(), stuck)
	expect(t, "refresh token reuses", e.fake.RefreshReuses(), 0)
}

// TestNarrowingRefusedByTheProvider: the provider's invalid_scope to a
// narrowed refresh is a 400 for that read; the chain is not lost and the
// refresh token it sent, which the provider left untouched, stays.
func TestNarrowingRefusedByTheProvider(t *testing.T) {
	e := newEnv(t)
	e.fake.SetClientPolicy(testClientID, fakeprovider.ClientPolicy{Scopes: []string{"read"}})
	e.seedConfig("x", fakeprovider.OAuth2, map[string]any{"allowed_scopes": "read,admin"})
	main := e.token("x")
	_, err := e.creds("x", map[string]any{"scope": "admin"})
	expectErr(t, "narrowed read the provider refuses", err, "invalid_scope")
	expect(t, "status", codeOf(err), http.StatusBadRequest)
	st := e.storedState("x")
	if st.NeedsRefreshToken || st.RefreshToken == "" || st.RefreshPending {
		t.Fatalf("chain after a refused narrowing: needs_refresh_token %v, refresh token held %v, pending %v; want it intact",
			st.NeedsRefreshToken, st.RefreshToken != "", st.RefreshPending)
	}
	expect(t, "main token", e.token("x"), main)
	e.narrowedToken("x", map[string]any{"scope": "read"})
	expect(t, "refresh token reuses", e.fake.RefreshReuses(), 0)
}

// TestNarrowedSelfRead: a user's own connection narrows within its app's
// allowed_scopes, and an app write that changes them drops the
// connection's narrowed tokens.
func TestNarrowedSelfRead(t *testing.T) {
	e := newEnv(t)
	e.userApp("mail", map[string]any{"scopes": "read,write", "allowed_scopes": "read"})
	e.connectSelf(entityA, "mail", accountA, emailA)
	read := func(data map[string]any) (*logical.Response, error) {
		return e.as(entityA, logical.ReadOperation, "self/mail", data)
	}
	resp, err := read(nil)
	if err != nil {
		t.Fatal(err)
	}
	main := resp.Data["access_token"]
	if resp, err = read(map[string]any{"scope": "read"}); err != nil || resp.Data["access_token"] == main {
		t.Fatalf("narrowed self read: %v; want a token other than the main one", err)
	}
	_, err = read(map[string]any{"scope": "write"})
	expectErr(t, "a scope outside the app's allowed_scopes", err, `scope "write" is not among the allowed scopes (the app "mail"'s allowed_scopes)`)
	expect(t, "status", codeOf(err), http.StatusBadRequest)

	variants := &e.b.entry(selfName("mail", entityA)).variants
	expect(t, "narrowed tokens of the connection", variants.len(), 1)
	e.mustDo(logical.UpdateOperation, "app/mail", map[string]any{"allowed_scopes": "write"})
	expect(t, "narrowed tokens after the app's bounds changed", variants.len(), 0)
	if _, err := read(map[string]any{"scope": "write"}); err != nil {
		t.Fatalf("a scope the app now allows: %v", err)
	}
}

// TestNarrowedReadsKeepTheNameResident: a narrowed read is a read of its
// name, so a name read only narrowed is not evicted as idle; an evicted
// name's narrowed tokens go with its state.
func TestNarrowedReadsKeepTheNameResident(t *testing.T) {
	e := residentEnv(t, 2)
	for _, name := range []string{"narrowed", "narrowed2", "unread"} {
		e.config(name, fakeprovider.OAuth2, map[string]any{"allowed_scopes": "read"})
		e.narrowedToken(name, map[string]any{"scope": "read"})
	}
	e.sweep() // all read since the start
	for _, name := range []string{"narrowed", "narrowed2"} {
		e.narrowedToken(name, map[string]any{"scope": "read"})
	}
	e.sweep()
	for name, want := range map[string]bool{"narrowed": false, "narrowed2": false, "unread": true} {
		expect(t, name+" evicted", e.evicted(name), want)
	}
	expect(t, "narrowed tokens of the evicted name", e.b.entry("unread").variants.len(), 0)
	expect(t, "narrowed tokens of a resident name", e.b.entry("narrowed").variants.len(), 1)
}

// TestNarrowedReadOnAStandby: a performance standby holds no narrowed
// tokens and calls no provider: it answers logical.ErrReadOnly, which
// Vault turns into forwarding the read to the active node.
func TestNarrowedReadOnAStandby(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.OAuth2, map[string]any{"allowed_scopes": "read"})
	e.token("x")
	e.standby()
	calls := e.fake.TotalCalls()
	_, err := e.creds("x", map[string]any{"scope": "read"})
	if !errors.Is(err, logical.ErrReadOnly) {
		t.Fatalf("narrowed read on a standby: got %v, want logical.ErrReadOnly", err)
	}
	expect(t, "upstream calls", e.fake.TotalCalls()-calls, 0)
}
