package tokenbroker

// authorize/<name>, callback and authorize/<name>/code: a user connects an
// account in a browser (authorization code with PKCE) against the strict fake.

import (
	"context"
	"maps"
	"net/url"
	"strings"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

func TestAuthorizeURL(t *testing.T) {
	e := newEnv(t)
	e.userConfig("u", map[string]any{"auth_params": "prompt=consent"})
	resp := e.mustDo(logical.UpdateOperation, "authorize/u", nil)
	expectField(t, resp.Data, "expires_at", testStart.Add(10*time.Minute).Format(time.RFC3339))
	u, err := url.Parse(resp.Data["url"].(string))
	if err != nil || u.Path != fakeprovider.PathAuthorize {
		t.Fatalf("url = %v, want the fake's authorization endpoint", resp.Data["url"])
	}
	q := u.Query()
	for key, want := range map[string]string{
		"response_type": "code", "client_id": testClientID, "redirect_uri": testRedirect, "scope": "read write",
		"state": resp.Data["state"].(string), "code_challenge_method": "S256", "prompt": "consent",
	} {
		if got := q.Get(key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if len(q.Get("code_challenge")) != 43 {
		t.Errorf("code_challenge = %q, want an S256 challenge", q.Get("code_challenge"))
	}
	if dump := e.storageDump() + fmtEntry(t, e, codePrefix+"u"); strings.Contains(dump, resp.Data["state"].(string)) {
		t.Errorf("storage holds the state in clear: %s", dump)
	}
}

// fmtEntry is the raw stored value of key.
func fmtEntry(t *testing.T, e *env, key string) string {
	entry, err := e.storage.Get(context.Background(), key)
	if err != nil || entry == nil {
		t.Fatalf("storage entry %s: %v, %v", key, entry, err)
	}
	return string(entry.Value)
}

func TestAuthorizeNeedsAnAuthorizationEndpoint(t *testing.T) {
	e := newEnv(t)
	e.config("m", fakeprovider.OAuth2, nil)
	_, err := e.do(logical.UpdateOperation, "authorize/m", nil)
	expectErr(t, "authorize a config without auth_url", err, "needs client_id and auth_url")
	_, err = e.do(logical.UpdateOperation, "authorize/missing", nil)
	expectErr(t, "authorize an unknown name", err, `no config named "missing"`)
}

func TestCallbackConnectsAndTheChainRotates(t *testing.T) {
	e := newEnv(t)
	var logs syncBuffer
	e.b.setLogger(hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: &logs}))
	e.fake.SetLifetime(time.Hour)
	e.userConfig("u", map[string]any{"client_secret": testClientSecret})
	authURL, state := e.authorize("u")
	back := e.approve(authURL)
	status, page := e.callback(back)
	expect(t, "callback status", status, 200)
	if !strings.Contains(page, "u connected; you can close this window") {
		t.Fatalf("page = %q, want it to say u connected", page)
	}
	for _, secret := range []string{back.Get("code"), state} {
		if strings.Contains(page, secret) {
			t.Fatalf("page repeats a code or state: %q", page)
		}
	}
	expect(t, "authorization_code grants", e.fake.Grants("authorization_code"), 1)

	first := e.token("u")
	if !e.fake.Valid(first) {
		t.Fatalf("the provider does not accept the connected token")
	}
	status1 := e.status("u")
	expectField(t, status1, "connected_at", testStart.Format(time.RFC3339))
	expectField(t, status1, "last_grant", "authorization_code")
	expectField(t, status1, "refresh_token_held", true)
	expectField(t, status1, "pending_authorization", "")
	expectField(t, status1, "last_authorization", "connected")

	e.clock.Add(2 * time.Hour)
	second := e.token("u")
	if second == first || !e.fake.Valid(second) {
		t.Fatalf("after expiry: token %q (first %q), want a new valid one", second, first)
	}
	expect(t, "refresh grants", e.fake.Grants("refresh_token"), 1)
	expect(t, "client_credentials grants", e.fake.Grants("client_credentials"), 0)
	expectField(t, e.status("u"), "connected_at", testStart.Format(time.RFC3339)) // a refresh keeps the connection

	st := e.storedState("u")
	for _, secret := range []string{back.Get("code"), state, first, second, st.RefreshToken, testClientSecret} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("a secret reached the log: %q", secret)
		}
	}
}

func TestCallbackRefusals(t *testing.T) {
	var newer string // the newer of two authorizations
	cases := []struct {
		name string
		// run does the refused callback and returns its query; setup runs before authorize.
		setup    func(e *env)
		run      func(e *env, authURL, state string) url.Values
		status   int
		wantPage string
		after    func(t *testing.T, e *env)
	}{
		{"a state used twice", nil, func(e *env, authURL, _ string) url.Values {
			back := e.approve(authURL)
			if status, page := e.callback(back); status != 200 {
				t.Fatalf("first callback = %d %s", status, page)
			}
			return back
		}, 400, "already used", nil},
		{"an unknown state of a real name", nil, func(e *env, authURL, _ string) url.Values {
			back := e.approve(authURL)
			back.Set("state", newAuthState("u"))
			return back
		}, 400, "unknown, already used, or replaced", nil},
		{"a malformed state", nil, func(e *env, authURL, _ string) url.Values {
			return url.Values{"code": {"a-code-nobody-issued"}, "state": {"<script>"}}
		}, 400, "unknown or malformed state", nil},
		{"an expired state", nil, func(e *env, authURL, _ string) url.Values {
			back := e.approve(authURL)
			e.clock.Add(11 * time.Minute)
			return back
		}, 400, "expired at", nil},
		{"the provider's access_denied, escaped", func(e *env) { e.fake.SetDenyAuthorizations(true) }, func(e *env, authURL, _ string) url.Values {
			return e.approve(authURL)
		}, 400, "access_denied: The user denied the request &lt;b&gt;politely&lt;/b&gt;", nil},
		{"a wrong PKCE verifier", nil, func(e *env, authURL, _ string) url.Values {
			var p pendingCode
			if _, err := codeEntries.loadInto(context.Background(), e.storage, "u", &p); err != nil {
				t.Fatal(err)
			}
			p.Verifier = provider.NewSecret()
			if err := codeEntries.save(context.Background(), e.storage, "u", &p); err != nil {
				t.Fatal(err)
			}
			return e.approve(authURL)
		}, 502, "PKCE verification failed", nil},
		{"an older of two authorizations", nil, func(e *env, authURL, _ string) url.Values {
			newer, _ = e.authorize("u")
			return e.approve(authURL)
		}, 400, "replaced by a newer one", func(t *testing.T, e *env) {
			if status, page := e.callback(e.approve(newer)); status != 200 {
				t.Errorf("the newer authorization's callback = %d %s, want 200", status, page)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.userConfig("u", nil)
			if c.setup != nil {
				c.setup(e)
			}
			authURL, state := e.authorize("u")
			back := c.run(e, authURL, state)
			before := e.storedState("u")
			status, page := e.callback(back)
			if status != c.status || !strings.Contains(page, c.wantPage) {
				t.Fatalf("callback = %d %q, want %d and %q", status, page, c.status, c.wantPage)
			}
			if strings.Contains(page, "<b>") || strings.Contains(page, "<script>") {
				t.Fatalf("page = %q, want provider text escaped", page)
			}
			if code := back.Get("code"); code != "" && strings.Contains(page, code) {
				t.Fatalf("page repeats the code: %q", page)
			}
			if after := e.storedState("u"); !sameChain(before, after) {
				t.Fatalf("stored chain changed: before %+v, after %+v", before, after)
			}
			if c.after != nil {
				c.after(t, e)
			}
		})
	}
}

func sameChain(a, b *tokenState) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.RefreshToken == b.RefreshToken && a.AccessToken == b.AccessToken
}

func TestReconnectReplacesTheChainOnlyOnSuccess(t *testing.T) {
	e := newEnv(t)
	e.userConfig("u", nil)
	e.connect("u")
	old := e.token("u")
	oldChain := e.storedState("u").RefreshToken

	e.fake.SetDenyAuthorizations(true)
	authURL, _ := e.authorize("u")
	if status, _ := e.callback(e.approve(authURL)); status != 400 {
		t.Fatalf("a denied reconnect answered %d, want 400", status)
	}
	expect(t, "token after a denied reconnect", e.token("u"), old)
	expect(t, "chain after a denied reconnect", e.storedState("u").RefreshToken, oldChain)

	e.fake.SetDenyAuthorizations(false)
	e.connect("u")
	if now := e.token("u"); now == old || e.storedState("u").RefreshToken == oldChain {
		t.Fatalf("after a reconnect the old token %q or chain is still served", old)
	}
}

func TestPasteTheCode(t *testing.T) {
	e := newEnv(t)
	e.userConfig("u", nil)
	e.userConfig("other", nil)
	authURL, state := e.authorize("u")
	back := e.approve(authURL)
	_, err := e.do(logical.UpdateOperation, "authorize/other/code", map[string]any{"code": back.Get("code"), "state": state})
	expectErr(t, "a state pasted for another name", err, `was not issued for "other"`)
	resp := e.mustDo(logical.UpdateOperation, "authorize/u/code", map[string]any{"code": back.Get("code"), "state": state})
	expectField(t, resp.Data, "connected", true)
	if !e.fake.Valid(e.token("u")) {
		t.Fatal("the pasted code's token is not accepted by the provider")
	}
	_, err = e.do(logical.UpdateOperation, "authorize/u/code", map[string]any{"code": back.Get("code"), "state": state})
	expectErr(t, "the same code and state again", err, "already used")
}

func TestAConnectedChainIsNeverReplacedByTheClientsOwnToken(t *testing.T) {
	e := newEnv(t)
	e.fake.SetLifetime(time.Hour)
	e.userConfig("u", nil) // it holds a client secret: it could mint by client credentials
	e.connect("u")
	e.token("u")
	e.clock.Add(2 * time.Hour)
	e.fake.RefuseRefreshes(1, fakeprovider.RefuseDefault)
	_, err := e.creds("u", nil)
	expectErr(t, "read after the user's chain was refused", err, "connect the account again (authorize/u")
	expect(t, "client_credentials grants", e.fake.Grants("client_credentials"), 0)
	expectField(t, e.status("u"), "needs_refresh_token", true)

	e.connect("u") // reconnecting heals it
	e.token("u")
	expectField(t, e.status("u"), "needs_refresh_token", false)
}

func TestDeletingAConfigDropsItsPendingAuthorizations(t *testing.T) {
	e := newEnv(t)
	e.userConfig("u", nil)
	authURL, _ := e.authorize("u")
	e.mustDo(logical.DeleteOperation, "config/u", nil)
	e.userConfig("u", nil)
	if status, page := e.callback(e.approve(authURL)); status != 400 || !strings.Contains(page, "unknown, already used, or replaced") {
		t.Fatalf("callback of an authorization of the deleted config = %d %q, want it refused", status, page)
	}
}

// TestIntuitRealmIDIsKept: Intuit sends the connected company's realmId with
// the code, and an app needs it for every API call: it is kept with the
// chain and shown by creds and status, whether the callback received it or
// the user pasted it with the code. Dialects that send nothing such get
// nothing, and a realmId sent to them is ignored.
func TestIntuitRealmIDIsKept(t *testing.T) {
	cases := []struct {
		name, provider string
		paste          bool
		want           map[string]string
	}{
		{"intuit, by the callback", "intuit", false, map[string]string{"realmId": "9130357"}},
		{"intuit, pasted with the code", "intuit", true, map[string]string{"realmId": "9130357"}},
		{"another provider", "oauth2", false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.userConfig("q", map[string]any{"provider": tc.provider, "pkce": "off", "auth_style": "basic"})
			authURL, state := e.authorize("q")
			back := e.approve(authURL)
			back.Set("realmId", "9130357") // as Intuit's redirect carries it
			if tc.paste {
				e.mustDo(logical.UpdateOperation, "authorize/q/code", map[string]any{"code": back.Get("code"), "state": state, "realmId": back.Get("realmId")})
			} else if status, page := e.callback(back); status != 200 {
				t.Fatalf("callback = %d %q", status, page)
			}
			creds := e.mustDo(logical.ReadOperation, "creds/q", nil).Data
			got, _ := creds["authorization_params"].(map[string]string)
			if !maps.Equal(got, tc.want) {
				t.Errorf("creds authorization_params = %v (%T), want %v", creds["authorization_params"], creds["authorization_params"], tc.want)
			}
			status, _ := e.status("q")["authorization_params"].(map[string]string)
			if !maps.Equal(status, tc.want) {
				t.Errorf("status authorization_params = %v, want %v", status, tc.want)
			}
			e.clock.Add(2 * time.Hour) // a refresh keeps them
			after, _ := e.mustDo(logical.ReadOperation, "creds/q", nil).Data["authorization_params"].(map[string]string)
			if !maps.Equal(after, tc.want) {
				t.Errorf("authorization_params after a refresh = %v, want %v", after, tc.want)
			}
		})
	}
}
