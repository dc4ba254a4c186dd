package tokenbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// Known test secrets: none may ever appear in a response, error or config read.
const (
	testClientID     = "client-1"
	testClientSecret = "s3cret-client-secret"
	testAPIKey       = "s3cret-api-key"
)

// clock is a settable time source shared by the backend and the fake provider.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	t       *testing.T
	b       *backend
	storage *faultyStorage
	clock   *clock
	fake    *fakeprovider.Server
}

func newEnv(t *testing.T) *env {
	t.Helper()
	clk := &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	fake := fakeprovider.New(fakeprovider.Options{TLS: true, Now: clk.Now})
	if err := fake.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	fake.AddClient(testClientID, testClientSecret)
	fake.AddAPIKey(testAPIKey)

	storage := &faultyStorage{InmemStorage: &logical.InmemStorage{}}
	conf := logical.TestBackendConfig()
	conf.StorageView = storage
	b := newBackend(conf)
	b.now = clk.Now
	if err := b.Setup(context.Background(), conf); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Cleanup(context.Background()) })
	return &env{t: t, b: b, storage: storage, clock: clk, fake: fake}
}

// faultyStorage is InmemStorage that can also fail just the write that
// follows a rotation (a token state without the pending mark) while letting
// the mark written before the refresh through: storage failing at the worst moment.
type faultyStorage struct {
	*logical.InmemStorage
	failAfterRotation atomic.Bool
}

func (s *faultyStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if s.failAfterRotation.Load() && strings.HasPrefix(e.Key, tokenPrefix) && !strings.Contains(string(e.Value), `"refresh_pending":true`) {
		return errors.New("injected: storage write failed after rotation")
	}
	return s.InmemStorage.Put(ctx, e)
}

func (e *env) do(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := e.b.HandleRequest(ctx, &logical.Request{Operation: op, Path: path, Data: data, Storage: e.storage})
	if err == nil && resp != nil && resp.IsError() {
		err = resp.Error()
	}
	return resp, err
}

func (e *env) mustDo(op logical.Operation, path string, data map[string]any) *logical.Response {
	e.t.Helper()
	resp, err := e.do(op, path, data)
	if err != nil {
		e.t.Fatalf("%s %s: %v", op, path, err)
	}
	return resp
}

// config writes config/<name> for dialect against the fake provider.
func (e *env) config(name string, dialect fakeprovider.Dialect, extra map[string]any) {
	e.t.Helper()
	data := map[string]any{
		"provider":  string(dialect),
		"token_url": e.fake.URL() + dialect.TokenPath(),
		"ca_pem":    e.fake.CAPEM(),
	}
	switch dialect {
	case fakeprovider.APIVideo:
		data["api_key"] = testAPIKey
	default:
		data["client_id"], data["client_secret"] = testClientID, testClientSecret
	}
	for k, v := range extra {
		if v == nil {
			delete(data, k)
		} else {
			data[k] = v
		}
	}
	e.mustDo(logical.CreateOperation, "config/"+name, data)
}

func (e *env) token(name string) string {
	e.t.Helper()
	resp := e.mustDo(logical.ReadOperation, "creds/"+name, nil)
	tok, _ := resp.Data["access_token"].(string)
	if tok == "" {
		e.t.Fatalf("creds/%s: no access_token in %v", name, resp.Data)
	}
	return tok
}

// settle waits for a background refresh of name, if one runs: Do joins an
// in-flight call for the same key.
func (e *env) settle(name string) {
	e.b.flight.Do(name, func() (any, error) { return nil, nil })
}

func TestEveryDialect(t *testing.T) {
	for _, tc := range []struct {
		dialect      fakeprovider.Dialect
		extra        map[string]any
		refreshGrant bool
	}{
		{dialect: fakeprovider.OAuth2, refreshGrant: true},
		{dialect: fakeprovider.OAuth2, extra: map[string]any{"auth_style": "body", "scopes": "read,write"}, refreshGrant: true},
		{dialect: fakeprovider.OAuth2JSON},
		{dialect: fakeprovider.Echo360, refreshGrant: true},
		{dialect: fakeprovider.Echo360, extra: map[string]any{"encoding": "query"}, refreshGrant: true},
		{dialect: fakeprovider.APIVideo, refreshGrant: true},
		{dialect: fakeprovider.Endorsed, extra: map[string]any{"scopes": []string{"all:read"}}},
		{dialect: fakeprovider.Endorsed, extra: map[string]any{"encoding": "json", "scopes": "all:read,all:write"}},
	} {
		t.Run(fmt.Sprintf("%s%v", tc.dialect, tc.extra), func(t *testing.T) {
			e := newEnv(t)
			e.fake.SetLifetime(time.Hour)
			e.config("x", tc.dialect, tc.extra)

			first := e.token("x")
			if !e.fake.Valid(first) {
				t.Fatal("the fake does not accept the token")
			}
			calls := e.fake.TotalCalls()
			if calls != 1 {
				t.Fatalf("first read made %d upstream calls", calls)
			}
			if again := e.token("x"); again != first || e.fake.TotalCalls() != calls {
				t.Fatal("second read was not served from cache")
			}

			e.clock.Add(time.Hour) // expired
			second := e.token("x")
			if second == first || !e.fake.Valid(second) {
				t.Fatal("no new valid token after expiry")
			}
			if tc.refreshGrant && e.fake.Grants("refresh_token") != 1 {
				t.Fatalf("refresh grants = %d, want 1", e.fake.Grants("refresh_token"))
			}
			e.clock.Add(time.Hour)
			if third := e.token("x"); third == second || !e.fake.Valid(third) {
				t.Fatal("no new valid token after the second expiry")
			}
			if n := e.fake.RefreshReuses(); n != 0 {
				t.Fatalf("refresh token reused %d times", n)
			}
		})
	}
}

func TestWireDetails(t *testing.T) {
	e := newEnv(t)
	e.config("echo", fakeprovider.Echo360, nil)
	e.token("echo")
	e.clock.Add(2 * time.Hour)
	e.token("echo")
	if last := e.fake.LastRequest(fakeprovider.PathEcho360Token); last.SecretSent || last.Params["grant_type"] != "refresh_token" {
		t.Fatalf("echo360 refresh sent a secret or wrong grant: %+v", last)
	}

	e.config("endorsed", fakeprovider.Endorsed, map[string]any{"encoding": "json", "scopes": "all:read"})
	resp := e.mustDo(logical.ReadOperation, "creds/endorsed", nil)
	if got := resp.Data["scopes"]; fmt.Sprint(got) != "[all:read]" {
		t.Fatalf("scopes = %v", got)
	}
	// Endorsed sends expires_in as a string; the fake's default is 14 days.
	if rp := resp.Data["rotation_period"]; rp != int64(1209600) {
		t.Fatalf("rotation_period = %v", rp)
	}
}

func TestCredsResponseFields(t *testing.T) {
	e := newEnv(t)
	e.fake.SetLifetime(time.Hour)
	e.config("x", fakeprovider.OAuth2, map[string]any{"refresh_ahead": "10m"})
	resp := e.mustDo(logical.ReadOperation, "creds/x", nil)
	want := e.clock.Now().Add(time.Hour)
	if resp.Secret != nil {
		t.Fatal("creds read created a lease")
	}
	if resp.Data["expires_at"] != want.Format(time.RFC3339) || resp.Data["expires_at_seconds"] != want.Unix() {
		t.Fatalf("expiry fields %v %v", resp.Data["expires_at"], resp.Data["expires_at_seconds"])
	}
	if resp.Data["rotation_period"] != int64(3600) || resp.Data["ttl"] != int64(3000) || resp.Data["token_type"] != "Bearer" {
		t.Fatalf("data = %v", resp.Data)
	}
	e.clock.Add(49*time.Minute + 58*time.Second) // 2 s before the refresh window
	if ttl := e.mustDo(logical.ReadOperation, "creds/x", nil).Data["ttl"]; ttl != int64(minAgentTTL) {
		t.Fatalf("ttl near the window = %v, want the floor %d", ttl, minAgentTTL)
	}
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
				t.Error("a read inside the window did not get the cached token at once")
			}
		}()
	}
	wg.Wait()
	e.settle("x")
	if n := e.fake.Grants("refresh_token"); n != 1 {
		t.Fatalf("refresh grants = %d, want exactly 1", n)
	}
	if next := e.token("x"); next == first || !e.fake.Valid(next) {
		t.Fatal("the background refresh's token is not served")
	}
}

func TestShortLivedTokens(t *testing.T) {
	e := newEnv(t)
	e.fake.SetLifetime(5 * time.Second)
	e.config("x", fakeprovider.APIVideo, nil) // refresh_ahead 5m, capped at half of 5s
	first := e.token("x")
	resp := e.mustDo(logical.ReadOperation, "creds/x", nil)
	if resp.Data["ttl"] != int64(minAgentTTL) {
		t.Fatalf("ttl = %v", resp.Data["ttl"])
	}
	if e.fake.TotalCalls() != 1 {
		t.Fatal("a 5 s token was not cached")
	}
	e.clock.Add(3 * time.Second) // in the 2.5 s window, 2 s left: served, refreshed in the background
	if got := e.token("x"); got != first {
		t.Fatal("a 5 s token inside its window was not served from cache")
	}
	e.settle("x")
	second := e.token("x")
	if second == first || e.fake.TotalCalls() != 2 {
		t.Fatal("the background refresh did not replace the token")
	}
	e.clock.Add(4600 * time.Millisecond) // 0.4 s left, inside the 0.5 s leeway: a mint
	if got := e.token("x"); got == second {
		t.Fatal("a token inside its expiry leeway was handed out")
	}
}

func TestStampedeOneUpstreamCall(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.Echo360, nil)
	e.token("x")
	e.clock.Add(2 * time.Hour)
	e.fake.SetLatency(200 * time.Millisecond)
	e.fake.Reset()

	var wg sync.WaitGroup
	tokens := make(chan string, 200)
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.do(logical.ReadOperation, "creds/x", nil)
			if err != nil {
				t.Error(err)
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
	if n := e.fake.TotalCalls(); n != 1 || len(distinct) != 1 {
		t.Fatalf("200 concurrent reads: %d upstream calls, %d distinct tokens; want 1 and 1", n, len(distinct))
	}
}

func TestMinTTL(t *testing.T) {
	e := newEnv(t)
	e.fake.SetLifetime(time.Hour)
	e.config("x", fakeprovider.OAuth2, nil)
	first := e.token("x")
	e.clock.Add(30 * time.Minute)
	resp := e.mustDo(logical.ReadOperation, "creds/x", map[string]any{"min_ttl": "20m"})
	if resp.Data["access_token"] != first {
		t.Fatal("min_ttl below what is left minted anyway")
	}
	resp = e.mustDo(logical.ReadOperation, "creds/x", map[string]any{"min_ttl": "40m"})
	if resp.Data["access_token"] == first || e.fake.TotalCalls() != 2 {
		t.Fatal("min_ttl beyond what is left did not mint")
	}
	if _, err := e.do(logical.ReadOperation, "creds/x", map[string]any{"min_ttl": "soon"}); err == nil {
		t.Fatal("bad min_ttl accepted")
	}
}

func TestConfigReadHidesSecrets(t *testing.T) {
	e := newEnv(t)
	seed := e.fake.SeedRefreshToken(fakeprovider.OAuth2, testClientID)
	e.config("x", fakeprovider.OAuth2, map[string]any{"refresh_token": seed, "scopes": "a, b", "extra_params": map[string]any{"resource": "r"}})
	resp := e.mustDo(logical.ReadOperation, "config/x", nil)
	raw, _ := json.Marshal(resp.Data)
	for _, secret := range []string{testClientSecret, seed} {
		if strings.Contains(string(raw), secret) {
			t.Fatalf("config read shows a secret: %s", raw)
		}
	}
	if resp.Data["client_secret_set"] != true || resp.Data["api_key_set"] != false || resp.Data["refresh_token_set"] != true {
		t.Fatalf("*_set flags wrong: %s", raw)
	}
	if fmt.Sprint(resp.Data["scopes"]) != "[a b]" || resp.Data["auth_style"] != "basic" || resp.Data["encoding"] != "form" ||
		resp.Data["refresh_ahead"] != int64(300) || resp.Data["timeout"] != int64(30) || resp.Data["default_ttl"] != int64(3600) {
		t.Fatalf("config read: %s", raw)
	}
	list := e.mustDo(logical.ListOperation, "config/", nil)
	if fmt.Sprint(list.Data["keys"]) != "[x]" {
		t.Fatalf("list = %v", list.Data)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	e := newEnv(t)
	e.config("good", fakeprovider.OAuth2, nil)
	tok := e.token("good")
	before := storageDump(t, e.storage)
	good := func(change map[string]any) map[string]any {
		data := map[string]any{"provider": "oauth2", "token_url": e.fake.URL() + "/oauth2/token", "client_id": "id", "client_secret": "s"}
		for k, v := range change {
			if v == nil {
				delete(data, k)
			} else {
				data[k] = v
			}
		}
		return data
	}
	cases := map[string]struct {
		path string
		data map[string]any
		want string
	}{
		"unknown provider":  {"config/new", good(map[string]any{"provider": "nope"}), "unknown provider"},
		"no token url":      {"config/new", good(map[string]any{"token_url": nil}), "token_url is required"},
		"remote http":       {"config/new", good(map[string]any{"token_url": "http://idp.example/token"}), "https"},
		"missing secret":    {"config/new", good(map[string]any{"client_secret": nil}), "client_secret"},
		"apivideo no key":   {"config/new", good(map[string]any{"provider": "apivideo"}), "api_key"},
		"bad name":          {"config/bad!name", good(nil), "invalid name"},
		"bad name slash":    {"config/a/b", good(nil), "invalid name"},
		"dotdot":            {"config/..", good(nil), "invalid name"},
		"absurd ttl":        {"config/new", good(map[string]any{"default_ttl": "1000000h"}), "default_ttl"},
		"tiny timeout":      {"config/new", good(map[string]any{"timeout": "0s"}), "timeout"},
		"negative ahead":    {"config/new", good(map[string]any{"refresh_ahead": "-5m"}), "refresh_ahead"},
		"duration garbage":  {"config/new", good(map[string]any{"refresh_ahead": "soon"}), "refresh_ahead"},
		"bad auth style":    {"config/new", good(map[string]any{"auth_style": "header"}), "auth_style"},
		"bad encoding":      {"config/new", good(map[string]any{"encoding": "xml"}), "encoding"},
		"bad ca":            {"config/new", good(map[string]any{"ca_pem": "not a pem"}), "ca_pem"},
		"reserved extra":    {"config/new", good(map[string]any{"extra_params": map[string]any{"client_secret": "x"}}), "extra_params"},
		"update to bad":     {"config/good", map[string]any{"token_url": "http://idp.example/"}, "https"},
		"update bad secret": {"config/good", map[string]any{"provider": "apivideo"}, "api_key"},
		"creds bad name":    {"creds/bad!name", nil, "invalid name"},
	}
	for name, tc := range cases {
		var op logical.Operation = logical.UpdateOperation
		if strings.HasPrefix(tc.path, "creds/") {
			op = logical.ReadOperation
		}
		resp, err := e.do(op, tc.path, tc.data)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, tc.want)
			continue
		}
		if resp == nil || !resp.IsError() {
			t.Errorf("%s: not a 400 error response: %v", name, err)
		}
		if after := storageDump(t, e.storage); after != before {
			t.Errorf("%s: storage changed", name)
		}
	}
	if e.token("good") != tok {
		t.Fatal("bad input disturbed the cached token")
	}
	if _, err := e.do(logical.ReadOperation, "creds/missing", nil); err == nil || !strings.Contains(err.Error(), "no config named") {
		t.Fatalf("missing config: %v", err)
	}
}

func storageDump(t *testing.T, s logical.Storage) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	for _, prefix := range []string{configPrefix, tokenPrefix} {
		keys, err := s.List(ctx, prefix)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			entry, err := s.Get(ctx, prefix+k)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s%s=%s\n", prefix, k, entry.Value)
		}
	}
	return b.String()
}

func TestProviderErrorsCarryNoSecret(t *testing.T) {
	for _, dialect := range []fakeprovider.Dialect{fakeprovider.OAuth2, fakeprovider.Echo360, fakeprovider.APIVideo, fakeprovider.Endorsed} {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t)
			e.config("x", dialect, nil)
			e.fake.Fail(1, fakeprovider.FailEchoSecret)
			_, err := e.do(logical.ReadOperation, "creds/x", nil)
			if err == nil {
				t.Fatal("provider error not reported")
			}
			for _, secret := range []string{testClientSecret, testAPIKey} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error leaks a secret: %v", err)
				}
			}
			if !strings.Contains(err.Error(), "HTTP 400") {
				t.Fatalf("error lacks the status: %v", err)
			}
		})
	}
}

func TestWrongSecretIsClear(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.OAuth2, map[string]any{"client_secret": "wrong"})
	_, err := e.do(logical.ReadOperation, "creds/x", nil)
	if err == nil || !strings.Contains(err.Error(), "invalid_client") || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("err = %v", err)
	}
}

func TestMalformedResponses(t *testing.T) {
	for mode, want := range map[fakeprovider.FailMode]string{
		fakeprovider.FailHTML200:       "HTML page",
		fakeprovider.Fail503HTML:       "HTML page",
		fakeprovider.FailNoAccessToken: "no access_token",
		fakeprovider.FailHugeBody:      "larger than 1 MiB",
		fakeprovider.FailWrongTypes:    "not a usable token response",
		fakeprovider.Fail500:           "HTTP 500",
	} {
		t.Run(mode.String(), func(t *testing.T) {
			e := newEnv(t)
			e.config("x", fakeprovider.OAuth2, nil)
			e.fake.Fail(1, mode)
			before := storageDump(t, e.storage)
			if _, err := e.do(logical.ReadOperation, "creds/x", nil); err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %v, want %q", err, want)
			}
			if storageDump(t, e.storage) != before {
				t.Fatal("a failed mint changed storage")
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
	if resp.Data["access_token"] != first || len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "HTML") {
		t.Fatalf("outage: token %v warnings %v", resp.Data["access_token"] == first, resp.Warnings)
	}
	// min_ttl forces a mint, which fails; the still-valid token is served with a warning.
	resp = e.mustDo(logical.ReadOperation, "creds/x", map[string]any{"min_ttl": "10m"})
	if resp.Data["access_token"] != first || len(resp.Warnings) == 0 {
		t.Fatal("min_ttl during an outage did not fall back to the cached token")
	}
	e.clock.Add(5 * time.Minute) // expired
	_, err := e.do(logical.ReadOperation, "creds/x", nil)
	if err == nil || !strings.Contains(err.Error(), "HTML") {
		t.Fatalf("expired during outage: %v", err)
	}
	e.fake.Fail(0, fakeprovider.Fail500)
	if next := e.token("x"); next == first || e.fake.RefreshReuses() != 0 {
		t.Fatal("no recovery after the outage, or a reuse")
	}
}

func TestInvalidGrantHealsWithBaseGrant(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.Echo360, nil)
	e.token("x")
	// Someone else spends our refresh token: replace the stored one with a dead one.
	nc, _ := e.b.snapshots.Load("x")
	st := *nc.(*snapshot).state
	st.RefreshToken = "rt_dead"
	e.b.publish("x", nc.(*snapshot).with(func(n *snapshot) { n.state = &st }))
	e.clock.Add(2 * time.Hour)
	tok := e.token("x")
	if !e.fake.Valid(tok) || e.fake.Grants("client_credentials") != 2 {
		t.Fatalf("not healed by client credentials: cc grants %d", e.fake.Grants("client_credentials"))
	}
	e.clock.Add(2 * time.Hour)
	e.token("x")
	if e.fake.Grants("refresh_token") != 1 {
		t.Fatal("the new chain is not used")
	}
}

func TestSeedOnlyChainLostNeedsNewSeed(t *testing.T) {
	e := newEnv(t)
	// api.video with only a seed refresh token: nothing can mint a new chain.
	seed := e.fake.SeedRefreshToken(fakeprovider.APIVideo, testAPIKey)
	e.config("x", fakeprovider.APIVideo, map[string]any{"api_key": nil, "refresh_token": "rt_unknown"})
	_, err := e.do(logical.ReadOperation, "creds/x", nil)
	if err == nil || !strings.Contains(err.Error(), "write a new refresh_token") {
		t.Fatalf("err = %v", err)
	}
	calls := e.fake.TotalCalls()
	if _, err := e.do(logical.ReadOperation, "creds/x", nil); err == nil || e.fake.TotalCalls() != calls {
		t.Fatal("a lost chain was retried against the provider")
	}
	if cfg := e.mustDo(logical.ReadOperation, "config/x", nil); cfg.Data["needs_refresh_token"] != true {
		t.Fatal("config read does not show the lost chain")
	}
	e.mustDo(logical.UpdateOperation, "config/x", map[string]any{"refresh_token": seed})
	if tok := e.token("x"); !e.fake.Valid(tok) {
		t.Fatal("a new seed did not heal the chain")
	}
	if cfg := e.mustDo(logical.ReadOperation, "config/x", nil); cfg.Data["needs_refresh_token"] != false {
		t.Fatal("the new seed did not clear the flag")
	}
}

func TestDroppedResponseNeverResendsRefreshToken(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.APIVideo, nil)
	e.token("x")
	e.clock.Add(2 * time.Hour)
	e.fake.Fail(1, fakeprovider.FailDropAfterConsume)
	tok := e.token("x") // refresh consumed, answer lost: healed by the API key grant
	if !e.fake.Valid(tok) || e.fake.RefreshReuses() != 0 || e.fake.Grants("api_key") != 2 {
		t.Fatalf("reuses %d, api_key grants %d", e.fake.RefreshReuses(), e.fake.Grants("api_key"))
	}
}

func TestStorageFailureKeepsNewestRefreshToken(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.Echo360, nil)
	e.token("x")
	e.clock.Add(2 * time.Hour)

	e.storage.failAfterRotation.Store(true)
	_, err := e.do(logical.ReadOperation, "creds/x", nil)
	if err == nil || !strings.Contains(err.Error(), "not saved") {
		t.Fatalf("err = %v", err)
	}
	// The rotated state lives in memory; the next read serves it and a later
	// refresh uses its refresh token, never the stale stored one.
	served := e.token("x")
	if !e.fake.Valid(served) {
		t.Fatal("the unsaved token is not served")
	}
	e.clock.Add(2 * time.Hour)
	if _, err := e.do(logical.ReadOperation, "creds/x", nil); err == nil {
		t.Fatal("storage still failing, yet no error")
	}
	e.storage.failAfterRotation.Store(false)
	e.clock.Add(2 * time.Hour)
	e.token("x")
	if n := e.fake.RefreshReuses(); n != 0 {
		t.Fatalf("a stale refresh token was sent %d times", n)
	}
	// Once storage works the newest state is persisted: a fresh backend on the
	// same storage continues the chain.
	e.b.snapshots.Clear()
	e.clock.Add(2 * time.Hour)
	e.token("x")
	if n := e.fake.RefreshReuses(); n != 0 || e.fake.Grants("client_credentials") != 1 {
		t.Fatalf("after reload: %d reuses, %d chains", n, e.fake.Grants("client_credentials"))
	}
}

func TestStorageDownRefreshNotSent(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.Echo360, nil)
	e.token("x")
	e.clock.Add(2 * time.Hour)
	e.storage.FailPut(true)
	calls := e.fake.TotalCalls()
	if _, err := e.do(logical.ReadOperation, "creds/x", nil); err == nil || !strings.Contains(err.Error(), "not attempted") {
		t.Fatalf("err = %v", err)
	}
	if e.fake.TotalCalls() != calls {
		t.Fatal("a refresh token was sent though its pending mark could not be stored")
	}
	e.storage.FailPut(false)
	e.token("x")
	if e.fake.Grants("refresh_token") != 1 || e.fake.Grants("client_credentials") != 1 {
		t.Fatal("the chain did not continue once storage recovered")
	}
}

// A process that died between sending a refresh token and saving the answer
// leaves the pending mark; whoever loads the state next never resends it.
func TestPendingRefreshAfterCrashIsNeverResent(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dialect fakeprovider.Dialect
		seeded  bool
	}{{"echo360 heals", fakeprovider.Echo360, false}, {"seed-only needs a new seed", fakeprovider.APIVideo, true}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			extra := map[string]any{}
			if tc.seeded {
				extra = map[string]any{"api_key": nil, "refresh_token": e.fake.SeedRefreshToken(tc.dialect, testAPIKey)}
			}
			e.config("x", tc.dialect, extra)
			e.token("x")
			st, _ := loadState(context.Background(), e.storage, "x")
			st.RefreshPending = true // as left by a process killed mid-refresh
			if err := writeState(context.Background(), e.storage, "x", st); err != nil {
				t.Fatal(err)
			}
			e.b.snapshots.Clear() // the next active node starts from storage
			e.clock.Add(2 * time.Hour)
			refreshes := e.fake.Grants("refresh_token")
			_, err := e.do(logical.ReadOperation, "creds/x", nil)
			if e.fake.Grants("refresh_token") != refreshes || e.fake.RefreshReuses() != 0 {
				t.Fatal("a possibly spent refresh token was sent again")
			}
			if tc.seeded {
				if err == nil || !strings.Contains(err.Error(), "write a new refresh_token") {
					t.Fatalf("err = %v", err)
				}
			} else if err != nil || e.fake.Grants("client_credentials") != 2 {
				t.Fatalf("not healed: %v", err)
			}
		})
	}
}

func TestConfigChangesAndDeletes(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.OAuth2, nil)
	first := e.token("x")

	e.mustDo(logical.UpdateOperation, "config/x", map[string]any{"timeout": "10s"})
	if e.token("x") != first {
		t.Fatal("a timing-only change dropped the token")
	}
	e.mustDo(logical.UpdateOperation, "config/x", map[string]any{"scopes": "narrow"})
	second := e.token("x")
	if second == first || e.fake.Grants("refresh_token") != 1 {
		t.Fatal("a scope change did not evict the access token while keeping the chain")
	}
	e.fake.AddClient(testClientID, "rotated-secret")
	e.mustDo(logical.UpdateOperation, "config/x", map[string]any{"client_secret": "rotated-secret"})
	if e.token("x") == second || e.fake.Grants("client_credentials") != 2 {
		t.Fatal("a credential change did not drop the token state")
	}

	e.mustDo(logical.DeleteOperation, "creds/x", nil)
	before := e.fake.Grants("refresh_token")
	e.token("x")
	if e.fake.Grants("refresh_token") != before+1 {
		t.Fatal("creds delete did not evict the access token (or lost the chain)")
	}

	e.mustDo(logical.DeleteOperation, "config/x", nil)
	if storageDump(t, e.storage) != "" {
		t.Fatal("config delete left storage behind")
	}
	if _, err := e.do(logical.ReadOperation, "creds/x", nil); err == nil {
		t.Fatal("creds of a deleted config still served")
	}
}

func TestExistenceCheckCreateVsUpdate(t *testing.T) {
	e := newEnv(t)
	ok, exists, err := e.b.HandleExistenceCheck(context.Background(), &logical.Request{Operation: logical.CreateOperation, Path: "config/x", Storage: e.storage})
	if err != nil || !ok || exists {
		t.Fatalf("before: %v %v %v", ok, exists, err)
	}
	e.config("x", fakeprovider.OAuth2, nil)
	_, exists, _ = e.b.HandleExistenceCheck(context.Background(), &logical.Request{Operation: logical.CreateOperation, Path: "config/x", Storage: e.storage})
	if !exists {
		t.Fatal("existing config not seen")
	}
}

func TestPeriodicRefresh(t *testing.T) {
	e := newEnv(t)
	e.fake.SetLifetime(time.Hour)
	for _, name := range []string{"a", "b", "c"} {
		e.config(name, fakeprovider.Echo360, nil)
		e.token(name)
	}
	e.config("unread", fakeprovider.Echo360, nil)
	periodic := func() {
		if err := e.b.PeriodicFunc(context.Background(), &logical.Request{Storage: e.storage}); err != nil {
			t.Fatal(err)
		}
	}
	periodic()
	if e.fake.TotalCalls() != 3 {
		t.Fatal("a pass with fresh tokens called the provider")
	}
	e.clock.Add(57*time.Minute + 30*time.Second) // inside every name's jittered window
	periodic()
	if n := e.fake.Grants("refresh_token"); n != 3 {
		t.Fatalf("background pass refreshed %d names, want 3", n)
	}
	calls := e.fake.TotalCalls()
	for _, name := range []string{"a", "b", "c"} {
		e.token(name)
	}
	if e.fake.TotalCalls() != calls {
		t.Fatal("reads after the pass waited on the provider")
	}
	// Failures back off: a second pass right after a failed one does not call again.
	e.clock.Add(57*time.Minute + 30*time.Second)
	e.fake.Fail(100, fakeprovider.Fail500)
	before := e.fake.TotalCalls()
	periodic()
	failed := e.fake.TotalCalls()
	if failed != before+3 {
		t.Fatalf("the failing pass made %d calls, want 3", failed-before)
	}
	periodic()
	if e.fake.TotalCalls() != failed {
		t.Fatal("background pass ignored the backoff")
	}
}

func TestReadOnlyNodeNeverCallsProvider(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.Echo360, nil)
	first := e.token("x")
	e.b.System().(*logical.StaticSystemView).ReplicationStateVal = consts.ReplicationPerformanceStandby
	if e.token("x") != first {
		t.Fatal("a standby did not serve the valid cached token")
	}
	e.clock.Add(2 * time.Hour)
	calls := e.fake.TotalCalls()
	_, err := e.do(logical.ReadOperation, "creds/x", nil)
	if !errors.Is(err, logical.ErrReadOnly) || e.fake.TotalCalls() != calls {
		t.Fatalf("standby: err %v, calls %d -> %d", err, calls, e.fake.TotalCalls())
	}
	if err := e.b.PeriodicFunc(context.Background(), &logical.Request{Storage: e.storage}); err != nil || e.fake.TotalCalls() != calls {
		t.Fatal("a standby's periodic pass called the provider")
	}
}

func TestInvalidateReloadsFromStorage(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.OAuth2, nil)
	first := e.token("x")
	// Another node rotated: storage holds a different state.
	st, _ := loadState(context.Background(), e.storage, "x")
	st.AccessToken = "from-elsewhere"
	if err := writeState(context.Background(), e.storage, "x", st); err != nil {
		t.Fatal(err)
	}
	if e.token("x") != first {
		t.Fatal("cached read touched storage")
	}
	e.b.InvalidateKey(context.Background(), tokenPrefix+"x")
	if e.token("x") != "from-elsewhere" {
		t.Fatal("invalidate did not drop the cached state")
	}
}

func TestRequestContextCancelDoesNotCutRefresh(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.Echo360, nil)
	e.token("x")
	e.clock.Add(2 * time.Hour)
	e.fake.SetLatency(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := e.b.HandleRequest(ctx, &logical.Request{Operation: logical.ReadOperation, Path: "creds/x", Storage: e.storage})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	e.settle("x")
	e.fake.SetLatency(0)
	e.token("x")
	if e.fake.Grants("refresh_token") != 1 || e.fake.RefreshReuses() != 0 {
		t.Fatal("the abandoned refresh was lost or repeated")
	}
}

func FuzzConfigWrite(f *testing.F) {
	f.Add("x", "oauth2", "https://idp.example/token", "id", "secret", "a,b", "5m", "form")
	f.Add("a.b-c_d", "apivideo", "http://[::1]:1/auth/api-key", "", "", "", "1h", "json")
	f.Add("..", "endorsed", "ftp://x", "id", "", "", "-1", "xml")
	f.Fuzz(func(t *testing.T, name, dialect, tokenURL, clientID, secret, scopes, ahead, encoding string) {
		conf := logical.TestBackendConfig()
		storage := &logical.InmemStorage{}
		conf.StorageView = storage
		b := newBackend(conf)
		if err := b.Setup(context.Background(), conf); err != nil {
			t.Fatal(err)
		}
		defer b.Cleanup(context.Background())
		resp, err := b.HandleRequest(context.Background(), &logical.Request{
			Operation: logical.UpdateOperation, Path: "config/" + name, Storage: storage,
			Data: map[string]any{"provider": dialect, "token_url": tokenURL, "client_id": clientID, "client_secret": secret,
				"scopes": scopes, "refresh_ahead": ahead, "encoding": encoding},
		})
		stored, _ := storage.List(context.Background(), configPrefix)
		if err != nil || (resp != nil && resp.IsError()) {
			if len(stored) != 0 {
				t.Fatalf("rejected config stored: %v", stored)
			}
			return
		}
		read, err := b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation, Path: "config/" + name, Storage: storage})
		if err != nil || read == nil {
			t.Fatalf("accepted config not readable: %v", err)
		}
		if raw, _ := json.Marshal(read.Data); len(secret) > 3 && strings.Contains(string(raw), `"`+secret+`"`) {
			t.Fatalf("config read shows the secret: %s", raw)
		}
	})
}

func TestClientSecretRotation(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.Endorsed, map[string]any{"client_secret": "old-secret", "client_secrets": "new-secret"})
	e.fake.AddClient(testClientID, "new-secret") // the provider now only knows the new secret
	if tok := e.token("x"); !e.fake.Valid(tok) {
		t.Fatal("the second secret was not tried")
	}
	cfg, _ := loadConfig(context.Background(), e.storage, "x")
	if cfg.ClientSecret != "new-secret" || fmt.Sprint(cfg.ClientSecrets) != "[old-secret]" {
		t.Fatalf("working secret not promoted: %q %q", cfg.ClientSecret, cfg.ClientSecrets)
	}
	e.clock.Add(30 * 24 * time.Hour)
	calls := e.fake.TotalCalls()
	e.token("x")
	if e.fake.TotalCalls() != calls+1 {
		t.Fatal("the promoted secret is not tried first")
	}
	resp := e.mustDo(logical.ReadOperation, "config/x", nil)
	if resp.Data["client_secrets_count"] != 2 {
		t.Fatalf("config read: %v", resp.Data)
	}
	status := e.mustDo(logical.ReadOperation, "status/x", nil)
	if status.Data["mints"] != 2 || status.Data["failures"] != 0 || status.Data["healthy"] != true {
		t.Fatalf("status: %v", status.Data)
	}
}

func TestStatus(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.Echo360, nil)
	e.token("x")
	e.clock.Add(2 * time.Hour)
	e.fake.Fail(1, fakeprovider.Fail500)
	if _, err := e.do(logical.ReadOperation, "creds/x", nil); err == nil {
		t.Fatal("injected failure not reported")
	}
	resp := e.mustDo(logical.ReadOperation, "status/x", nil)
	raw, _ := json.Marshal(resp.Data)
	if resp.Data["healthy"] != false || resp.Data["failures"] != 1 || !strings.Contains(resp.Data["last_error"].(string), "HTTP 500") ||
		resp.Data["refresh_token_held"] != true || resp.Data["backoff_until"] == "" {
		t.Fatalf("status after a failure: %s", raw)
	}
	e.token("x")
	resp = e.mustDo(logical.ReadOperation, "status/x", nil)
	raw, _ = json.Marshal(resp.Data)
	if resp.Data["healthy"] != true || resp.Data["refreshes"] != 1 || resp.Data["mints"] != 1 || resp.Data["last_grant"] != "refresh_token" {
		t.Fatalf("status after recovery: %s", raw)
	}
	for _, secret := range []string{testClientSecret} {
		if strings.Contains(string(raw), secret) {
			t.Fatal("status shows a secret")
		}
	}
	if list := e.mustDo(logical.ListOperation, "status/", nil); fmt.Sprint(list.Data["keys"]) != "[x]" {
		t.Fatalf("status list: %v", list.Data)
	}
}

// TestNoSecretInLogs runs the main flows with trace logging and asserts that
// no client secret, API key, refresh token or access token reaches a log line.
func TestNoSecretInLogs(t *testing.T) {
	e := newEnv(t)
	var logs syncBuffer
	e.b.setLogger(hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: &logs}))
	secrets := map[string]bool{testClientSecret: true, testAPIKey: true}
	collect := func(name string) {
		if st, _ := loadState(context.Background(), e.storage, name); st != nil {
			secrets[st.RefreshToken], secrets[st.AccessToken] = true, true
		}
	}
	for _, d := range []fakeprovider.Dialect{fakeprovider.OAuth2, fakeprovider.Echo360, fakeprovider.APIVideo, fakeprovider.Endorsed, fakeprovider.OAuth2JSON} {
		name := string(d)
		e.config(name, d, map[string]any{"encoding": nil})
		e.token(name)
		collect(name)
		e.fake.Fail(1, fakeprovider.FailEchoSecret)
		e.do(logical.ReadOperation, "creds/"+name, map[string]any{"min_ttl": "500h"})
		e.fake.Fail(1, fakeprovider.FailDropAfterConsume)
		e.clock.Add(2 * time.Hour)
		e.token(name)
		collect(name)
		e.clock.Add(2 * time.Hour)
		e.token(name)
		collect(name)
		e.fake.Fail(0, fakeprovider.Fail500) // drop what this dialect did not consume
	}
	delete(secrets, "")
	if logs.Len() == 0 {
		t.Fatal("nothing was logged")
	}
	for secret := range secrets {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("a secret reached the log: %q", secret)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
func (s *syncBuffer) Len() int       { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Len() }
