package tokenbroker

// response_mode=form_post (OAuth 2.0 Form Post Response Mode): the provider
// answers the user's approval with a page that POSTs code and state to the
// callback, so no URL (browser history, proxies, Vault's audit log) holds
// them. The callback takes the POST as it takes the GET; configs ask for
// form_post where the provider supports it.

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// respond plays the user at the fake's authorization endpoint and returns
// its answer: where it goes, with what, and whether as a form POST.
func (e *env) respond(authURL string) *fakeprovider.AuthorizationResponse {
	e.t.Helper()
	answer, err := e.fake.Respond(authURL)
	if err != nil {
		e.t.Fatalf("the fake refused the authorization request %s: %v", authURL, err)
	}
	if answer.RedirectURI != testRedirect {
		e.t.Fatalf("answer goes to %s, want %s", answer.RedirectURI, testRedirect)
	}
	return answer
}

// post is the browser submitting the provider's form to the callback: Vault
// decodes an application/x-www-form-urlencoded body into the request's data
// (one value a key) and makes the POST an update.
func (e *env) post(form url.Values) (int, string) {
	e.t.Helper()
	data := map[string]any{}
	for k := range form {
		data[k] = form.Get(k)
	}
	resp, err := e.b.HandleRequest(context.Background(), callbackRequest(e.storage, true, data))
	if err != nil {
		e.t.Fatalf("callback POST: %v", err)
	}
	if ct := resp.Data[logical.HTTPContentType]; ct != "text/html; charset=utf-8" {
		e.t.Fatalf("callback content type = %v, want text/html", ct)
	}
	return resp.Data[logical.HTTPStatusCode].(int), string(resp.Data[logical.HTTPRawBody].([]byte))
}

func TestCallbackFormPostConnects(t *testing.T) {
	e := newEnv(t)
	e.userConfig("u", map[string]any{"response_mode": "form_post"})
	authURL, state := e.authorize("u")
	u, _ := url.Parse(authURL)
	expect(t, "response_mode of the authorization URL", u.Query().Get("response_mode"), "form_post")

	answer := e.respond(authURL)
	if !answer.FormPost || answer.Params.Get("state") != state || answer.Params.Get("code") == "" {
		t.Fatalf("the provider's answer = %+v, want a form POST of a code and our state", answer)
	}
	status, page := e.post(answer.Params)
	if status != http.StatusOK || !strings.Contains(page, "u connected; you can close this window") {
		t.Fatalf("callback POST = %d %q, want 200 and u connected", status, page)
	}
	for _, secret := range []string{answer.Params.Get("code"), state} {
		if strings.Contains(page, secret) {
			t.Fatalf("the page repeats a code or state: %q", page)
		}
	}
	if !e.fake.Valid(e.token("u")) {
		t.Fatal("the provider does not accept the token of the posted code")
	}
	expectField(t, e.status("u"), "last_grant", "authorization_code")
}

// TestCallbackFormPostRefusals: what the GET callback refuses, the POST
// refuses the same way, changing nothing.
func TestCallbackFormPostRefusals(t *testing.T) {
	cases := []struct {
		name  string
		setup func(e *env)
		// form is what the browser posts, given the provider's answer.
		form     func(e *env, answer url.Values) url.Values
		status   int
		wantPage string
	}{
		{"a form posted twice", nil, func(e *env, answer url.Values) url.Values {
			if status, page := e.post(answer); status != 200 {
				t.Fatalf("first POST = %d %s", status, page)
			}
			return answer
		}, 400, "already used"},
		{"the provider's access_denied, escaped", func(e *env) { e.fake.SetDenyAuthorizations(true) },
			func(_ *env, answer url.Values) url.Values { return answer }, 400,
			"access_denied: The user denied the request &lt;b&gt;politely&lt;/b&gt;"},
		{"a form with no code", nil, func(_ *env, answer url.Values) url.Values {
			answer.Del("code")
			return answer
		}, 400, "sent no code"},
		{"another state of the name", nil, func(_ *env, answer url.Values) url.Values {
			answer.Set("state", newAuthState("u"))
			return answer
		}, 400, "unknown, already used, or replaced"},
		{"a malformed state", nil, func(_ *env, answer url.Values) url.Values {
			answer.Set("state", "<script>")
			return answer
		}, 400, "unknown or malformed state"},
		{"an empty form", nil, func(*env, url.Values) url.Values { return url.Values{} }, 400, "unknown or malformed state"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.userConfig("u", map[string]any{"response_mode": "form_post"})
			first, _ := e.authorize("u") // a chain that a refused POST must leave alone
			if status, page := e.post(e.respond(first).Params); status != 200 {
				t.Fatalf("connecting u = %d %q", status, page)
			}
			before := e.storedState("u")
			if c.setup != nil {
				c.setup(e)
			}
			authURL, _ := e.authorize("u")
			answer := e.respond(authURL)
			form := c.form(e, answer.Params)
			status, page := e.post(form)
			if status != c.status || !strings.Contains(page, c.wantPage) {
				t.Fatalf("callback POST = %d %q, want %d and %q", status, page, c.status, c.wantPage)
			}
			if strings.Contains(page, "<b>") || strings.Contains(page, "<script>") {
				t.Fatalf("page = %q, want provider text escaped", page)
			}
			if code := answer.Params.Get("code"); code != "" && strings.Contains(page, code) {
				t.Fatalf("page repeats the code: %q", page)
			}
			if after := e.storedState("u"); c.name != "a form posted twice" && !sameChain(before, after) {
				t.Fatalf("stored chain changed: before %+v, after %+v", before, after)
			}
		})
	}
}

// TestFormPostResponseModeInForce: response_mode, when not given, is
// form_post where the provider supports it (its preset documents it, or its
// issuer's metadata lists it) and the redirect reaches a Vault callback; a
// redirect elsewhere is one whose code the user pastes, so it stays query.
func TestFormPostResponseModeInForce(t *testing.T) {
	const pastePage = "https://app.example/oauth/pasted"
	cases := []struct {
		name string
		// fields of the config; issuerModes, when set, are the fake issuer's
		// response_modes_supported and the config is discovered from it.
		fields      map[string]any
		issuerModes []string
		want        string
	}{
		{"oauth2 asks for nothing", nil, nil, "query"},
		{"forced on", map[string]any{"response_mode": "form_post"}, nil, "form_post"},
		{"forced on, even for a pasted code", map[string]any{"response_mode": "form_post", "redirect_uri": pastePage}, nil, "form_post"},
		{"microsoft documents it", map[string]any{"provider": "microsoft"}, nil, "form_post"},
		{"okta documents it", map[string]any{"provider": "okta", "tenant": "dev-1.okta.com"}, nil, "form_post"},
		{"auth0 documents it", map[string]any{"provider": "auth0", "tenant": "a.eu.auth0.com"}, nil, "form_post"},
		{"microsoft, forced off", map[string]any{"provider": "microsoft", "response_mode": "query"}, nil, "query"},
		{"microsoft, a redirect to a page to paste from", map[string]any{"provider": "microsoft", "redirect_uri": pastePage}, nil, "query"},
		{"google: not documented", map[string]any{"provider": "google"}, nil, "query"},
		{"salesforce: not documented", map[string]any{"provider": "salesforce"}, nil, "query"},
		{"an issuer listing form_post", nil, []string{"query", "form_post"}, "form_post"},
		{"an issuer listing form_post, forced off", map[string]any{"response_mode": "query"}, []string{"query", "form_post"}, "query"},
		{"an issuer listing query only", nil, []string{"query"}, "query"},
		{"an issuer listing nothing", nil, []string{}, "query"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			fields := map[string]any{"client_id": testClientID, "client_secret": testClientSecret, "redirect_uri": testRedirect,
				"auth_url": e.fake.URL() + fakeprovider.PathAuthorize, "token_url": e.fake.URL() + fakeprovider.PathOAuth2Token, "ca_pem": e.fake.CAPEM()}
			if c.issuerModes != nil {
				if len(c.issuerModes) > 0 {
					e.fake.SetResponseModesSupported(c.issuerModes...)
				}
				fields = withFields(fields, map[string]any{"issuer": e.fake.URL(), "auth_url": nil, "token_url": nil})
			}
			if _, preset := c.fields["provider"]; preset {
				fields = withFields(fields, map[string]any{"auth_url": nil, "token_url": nil})
			}
			e.mustDo(logical.CreateOperation, "config/p", withFields(fields, c.fields))
			expectField(t, e.mustDo(logical.ReadOperation, "config/p", nil).Data, "response_mode", c.want)

			authURL, _ := e.authorize("p")
			u, _ := url.Parse(authURL)
			want := map[string]string{"query": "", "form_post": "form_post"}[c.want] // query is the default: not sent
			if got := u.Query().Get("response_mode"); got != want || (want == "") == u.Query().Has("response_mode") {
				t.Fatalf("authorization URL %s: response_mode = %q, want %q", authURL, got, want)
			}
		})
	}
}

// TestFormPostFollowsTheIssuer: what an issuer's metadata said about
// form_post is read again whenever issuer is written, like its URLs, and
// forgotten when issuer is cleared.
func TestFormPostFollowsTheIssuer(t *testing.T) {
	e := newEnv(t)
	e.fake.SetResponseModesSupported("query", "form_post")
	e.mustDo(logical.CreateOperation, "config/i", map[string]any{"issuer": e.fake.URL(), "ca_pem": e.fake.CAPEM(),
		"client_id": testClientID, "client_secret": testClientSecret, "redirect_uri": testRedirect})
	mode := func() any { return e.mustDo(logical.ReadOperation, "config/i", nil).Data["response_mode"] }
	expect(t, "response_mode of an issuer listing form_post", mode(), any("form_post"))

	e.mustDo(logical.UpdateOperation, "config/i", map[string]any{"scopes": "read"})
	expect(t, "response_mode after a write without issuer", mode(), any("form_post"))

	e.fake.SetResponseModesSupported("query")
	e.mustDo(logical.UpdateOperation, "config/i", map[string]any{"issuer": e.fake.URL()})
	expect(t, "response_mode after the issuer stopped listing form_post", mode(), any("query"))

	e.fake.SetResponseModesSupported("query", "form_post")
	e.mustDo(logical.UpdateOperation, "config/i", map[string]any{"issuer": e.fake.URL()})
	e.mustDo(logical.UpdateOperation, "config/i", map[string]any{"issuer": "", "auth_url": e.fake.URL() + fakeprovider.PathAuthorize,
		"token_url": e.fake.URL() + fakeprovider.PathOAuth2Token})
	expect(t, "response_mode once issuer is cleared", mode(), any("query"))
}

func TestFormPostConfigErrors(t *testing.T) {
	cases := []struct {
		name   string
		fields map[string]any
		want   string
	}{
		{"an unknown response_mode", map[string]any{"response_mode": "fragment"}, `unknown response_mode "fragment" (want form_post or query)`},
		{"response_mode through auth_params", map[string]any{"auth_params": "response_mode=form_post"}, `auth_params may not set "response_mode": use the response_mode field`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			_, err := e.do(logical.CreateOperation, "config/p", withFields(map[string]any{
				"client_id": testClientID, "token_url": e.fake.URL() + fakeprovider.PathOAuth2Token,
				"auth_url": e.fake.URL() + fakeprovider.PathAuthorize, "ca_pem": e.fake.CAPEM()}, c.fields))
			expectErr(t, "config write", err, c.want)
			if got := e.storageDump(); strings.Contains(got, "config/p") {
				t.Fatalf("a refused write stored a config: %s", got)
			}
		})
	}
}
