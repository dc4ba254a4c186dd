package tokenbroker

// Helpers for the onboarding tests (path_authorize_test.go, device_test.go,
// discovery_test.go): a config a user can authorize against the fake, the
// browser's part of the journey, and the callback's page.

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

const testRedirect = "https://vault.example/v1/tokenbroker/callback"

// userConfig writes config/<name>: oauth2 against the fake, authorizable in
// a browser and by device code; extra adds or overrides fields.
func (e *env) userConfig(name string, extra map[string]any) {
	e.t.Helper()
	e.config(name, fakeprovider.OAuth2, withFields(map[string]any{
		"auth_url":                 e.fake.URL() + fakeprovider.PathAuthorize,
		"device_authorization_url": e.fake.URL() + fakeprovider.PathDeviceAuthorization,
		"redirect_uri":             testRedirect,
		"scopes":                   "read,write",
	}, extra))
}

// authorize runs authorize/<name> and returns the URL the user opens and its state.
func (e *env) authorize(name string) (authURL, state string) {
	e.t.Helper()
	resp := e.mustDo(logical.UpdateOperation, "authorize/"+name, nil)
	authURL, _ = resp.Data["url"].(string)
	state, _ = resp.Data["state"].(string)
	if authURL == "" || state == "" {
		e.t.Fatalf("authorize/%s = %v, want url and state", name, resp.Data)
	}
	return authURL, state
}

// approve plays the user at the fake's authorization endpoint and returns
// the query the browser brings back to the callback.
func (e *env) approve(authURL string) url.Values {
	e.t.Helper()
	back, err := e.fake.Authorize(authURL)
	if err != nil {
		e.t.Fatalf("the fake refused the authorization request %s: %v", authURL, err)
	}
	u, _ := url.Parse(back)
	if got := u.Scheme + "://" + u.Host + u.Path; got != testRedirect {
		e.t.Fatalf("redirected to %s, want %s", got, testRedirect)
	}
	return u.Query()
}

// callback is the browser arriving at callback with query; it returns the
// page's HTTP status and body.
func (e *env) callback(query url.Values) (int, string) {
	e.t.Helper()
	data := map[string]any{}
	for k := range query {
		data[k] = query.Get(k)
	}
	resp, err := e.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.ReadOperation, Path: "callback", Data: data, Storage: e.storage, Unauthenticated: true})
	if err != nil {
		e.t.Fatalf("callback: %v", err)
	}
	if ct := resp.Data[logical.HTTPContentType]; ct != "text/html; charset=utf-8" {
		e.t.Fatalf("callback content type = %v, want text/html", ct)
	}
	return resp.Data[logical.HTTPStatusCode].(int), string(resp.Data[logical.HTTPRawBody].([]byte))
}

// connect runs the whole browser journey for name and fails unless it connects.
func (e *env) connect(name string) {
	e.t.Helper()
	authURL, _ := e.authorize(name)
	status, page := e.callback(e.approve(authURL))
	if status != 200 || !strings.Contains(page, name+" connected") || !strings.Contains(page, "you can close this window") {
		e.t.Fatalf("callback = %d %q, want 200 and %q connected", status, page, name)
	}
}

func TestStateCarriesTheNameAndAtLeast256Bits(t *testing.T) {
	cases := []struct{ state, want string }{
		{newAuthState("team-a.xero"), "team-a.xero"},
		{"abc.def/ghi", ""},
		{"no-dot", ""},
		{"", ""},
	}
	for _, c := range cases {
		if got := stateName(c.state); got != c.want {
			t.Errorf("stateName(%q) = %q, want %q", c.state, got, c.want)
		}
	}
	random, _, _ := strings.Cut(newAuthState("x"), ".")
	if len(random) < 43 {
		t.Fatalf("random part %q has %d characters, want at least 43 (256 bits, base64url)", random, len(random))
	}
}

func TestAuthorizationEntriesAreSealWrapped(t *testing.T) {
	e := newEnv(t)
	for _, want := range []string{authPrefix} {
		found := false
		for _, p := range e.b.PathsSpecial.SealWrapStorage {
			found = found || p == want
		}
		if !found {
			t.Errorf("SealWrapStorage = %v, want %q in it", e.b.PathsSpecial.SealWrapStorage, want)
		}
	}
	if got := e.b.PathsSpecial.Unauthenticated; !slices.Contains(got, "callback") || slices.Contains(got, "authorize/*") {
		t.Errorf("Unauthenticated = %v, want callback in it and authorize/ not", got)
	}
}
