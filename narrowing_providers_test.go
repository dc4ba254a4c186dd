package tokenbroker

// Narrowed reads against real behaviours: Microsoft's per-resource refresh
// from one connected account and GitHub's narrowed installation tokens
// (the strict fake), and zitadel/oidc's OpenID provider for narrowed client
// credentials.

import (
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/internal/assertionop"
)

// TestNarrowedMicrosoftPerResource: one connected Microsoft account gives
// a Graph token and an Azure management token, each by a refresh narrowed to
// its resource's scope; the chain's refresh token rotates each time and is
// never sent twice, and the main token stays.
func TestNarrowedMicrosoftPerResource(t *testing.T) {
	e := newEnv(t) // the fake requires scope on every refresh, as Microsoft does: the main chain sends its scopes
	graph, arm := "https://graph.microsoft.com/.default", "https://management.azure.com/.default"
	seed := e.fake.SeedMicrosoftRefreshToken(testClientID, "https://graph.microsoft.com/User.Read",
		"https://management.azure.com/user_impersonation", "offline_access")
	e.mustDo(logical.CreateOperation, "config/ms", map[string]any{"provider": "microsoft", "ca_pem": e.fake.CAPEM(),
		"token_url": e.fake.URL() + fakeprovider.MicrosoftTokenPath("contoso"), "client_id": testClientID, "client_secret": testClientSecret,
		"scopes": "https://graph.microsoft.com/User.Read,offline_access", "refresh_token": seed, "refresh_grant": "auto", "allowed_scopes": graph + "," + arm})
	main := e.token("ms")
	for _, tc := range []struct{ scope, audience string }{
		{graph, "https://graph.microsoft.com"},
		{arm, "https://management.azure.com"},
	} {
		t.Run(tc.audience, func(t *testing.T) {
			before := e.storedState("ms").RefreshToken
			tok := e.narrowedToken("ms", map[string]any{"scope": tc.scope})
			if got := e.fake.Audiences(tok); !slices.Equal(got, []string{tc.audience}) {
				t.Errorf("audiences of the narrowed token: got %v, want [%s]", got, tc.audience)
			}
			if after := e.storedState("ms"); after.RefreshToken == before || after.AccessToken != main {
				t.Errorf("stored chain: refresh token rotated %v, main token kept %v; want both",
					after.RefreshToken != before, after.AccessToken == main)
			}
		})
	}
	expect(t, "main token", e.token("ms"), main)
	e.clock.Add(2 * time.Hour)
	e.token("ms") // the main chain refreshes with the last rotated token
	expect(t, "refresh token reuses", e.fake.RefreshReuses(), 0)
}

// TestNarrowedGitHubInstallationToken: a read narrows the installation
// token to a repository and a permission level; the config's own
// repositories and permissions bound what a read may ask, and GitHub's 422
// (a permission the installation lacks) is a 400 for the read.
func TestNarrowedGitHubInstallationToken(t *testing.T) {
	e := newEnv(t)
	e.fake.AddAssertionKey("77", "", &testRSA.PublicKey)
	e.fake.AddGitHubInstallation("77", "octo", false, 9, "web", "api", "docs")
	e.fake.SetGitHubInstallationPermissions(9, map[string]string{"contents": "write", "issues": "write"})
	app := map[string]any{"provider": "github_app", "ca_pem": e.fake.CAPEM(), "api_url": e.fake.URL() + fakeprovider.PathGitHubAPI,
		"app_id": "77", "installation_id": "9", "private_key": pkcs1PEM(testRSA)}
	e.mustDo(logical.CreateOperation, "config/gh", app)
	e.mustDo(logical.CreateOperation, "config/gh-bounded", withFields(app, map[string]any{"repositories": "web,api", "permissions": "contents=read"}))
	cases := []struct {
		name, config string
		read         map[string]any
		wantRepos    []string
		wantPerms    map[string]string
		wantErr      string
	}{
		{"one repository, read-only", "gh", map[string]any{"repositories": "web", "permissions": "contents=read"},
			[]string{"web"}, map[string]string{"contents": "read"}, ""},
		{"within the config's repositories", "gh-bounded", map[string]any{"repositories": "api"}, []string{"api"}, nil, ""},
		{"outside the config's repositories", "gh-bounded", map[string]any{"repositories": "docs"}, nil, nil,
			`repository "docs" is not among the allowed repositories (the config's repositories)`},
		{"above the config's permission", "gh-bounded", map[string]any{"permissions": "contents=write"}, nil, nil,
			`permission "contents:write"`},
		{"a level that is none", "gh", map[string]any{"permissions": "contents=all"}, nil, nil, "must be read, write or admin"},
		{"a permission the installation lacks (GitHub's 422)", "gh", map[string]any{"permissions": "administration=read"}, nil, nil,
			"the provider refused the narrowing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e.creds(tc.config, tc.read)
			if tc.wantErr != "" {
				expectErr(t, "narrowed read", err, tc.wantErr)
				expect(t, "status", codeOf(err), http.StatusBadRequest)
				return
			}
			if err != nil {
				t.Fatalf("narrowed read %v: got %v, want a token", tc.read, err)
			}
			if got, _ := resp.Data["repositories"].([]string); !slices.Equal(got, tc.wantRepos) {
				t.Errorf("repositories: got %v, want %v", got, tc.wantRepos)
			}
			if tc.wantPerms != nil {
				got, _ := resp.Data["permissions"].(map[string]string)
				for k, v := range tc.wantPerms {
					if got[k] != v {
						t.Errorf("permissions: got %v, want %v", got, tc.wantPerms)
					}
				}
			}
		})
	}
}

// TestZitadelNarrowedClientCredentials: zitadel's OpenID provider issues
// a narrowed client credentials token for the scope a read asks; a scope
// within allowed_scopes that the OP refuses (invalid_scope) is a 400.
func TestZitadelNarrowedClientCredentials(t *testing.T) {
	o, e := startZitadelEnv(t)
	key := e.configSigned("z", "oauth2", map[string]any{"token_url": o.TokenURL, "client_id": "svc-z", "assertion_audience": o.Issuer,
		"generate_key": "ec-p256", "scopes": "openid,profile", "allowed_scopes": "openid,profile,admin"})
	o.AddClient("svc-z", publicJWK(t, key, ""))
	o.AllowScopes("svc-z", "openid", "profile")
	main := e.token("z")
	resp, err := e.creds("z", map[string]any{"scope": "openid"})
	if err != nil {
		t.Fatalf("narrowed read: %v", err)
	}
	tok, _ := resp.Data["access_token"].(string)
	if subject, ok := o.Subject(tok); !ok || subject != "svc-z" || tok == main {
		t.Fatalf("narrowed token: issued by the OP %v to %q, the main token %v; want a new token of svc-z", ok, subject, tok == main)
	}
	if got, _ := resp.Data["scopes"].([]string); !slices.Equal(got, []string{"openid"}) {
		t.Errorf("scopes: got %v, want [openid]", got)
	}
	_, err = e.creds("z", map[string]any{"scope": "admin"})
	expectErr(t, "a scope the OP refuses", err, "invalid_scope")
	expect(t, "status", codeOf(err), http.StatusBadRequest)
}

// connectAtZitadel writes config/<name> for client web-<name> at zitadel
// (private_key_jwt, the scopes openid, profile, email, offline_access) and
// connects the OP's user to it by the authorization code grant.
func connectAtZitadel(t *testing.T, o *assertionop.OP, e *env, name string, extra map[string]any) {
	t.Helper()
	key := e.configSigned(name, "oauth2", withFields(map[string]any{"token_url": o.TokenURL, "auth_url": o.AuthURL,
		"client_id": "web-" + name, "assertion_audience": o.Issuer, "generate_key": "ec-p256", "redirect_uri": testRedirect,
		"scopes": "openid,profile,email,offline_access", "allowed_scopes": "openid,profile,email,offline_access,phone"}, extra))
	o.AddClient("web-"+name, publicJWK(t, key, ""))
	o.AddRedirectURI("web-"+name, testRedirect)
	authURL, _ := e.authorize(name)
	back, err := o.Authorize(authURL)
	if err != nil {
		t.Fatalf("zitadel refused the authorization: %v", err)
	}
	u, _ := url.Parse(back)
	if status, page := e.callback(u.Query()); status != http.StatusOK {
		t.Fatalf("callback: %d %s", status, page)
	}
}

// startZitadelEnv starts zitadel/oidc's OpenID provider and an env whose
// backend dates assertions by the real clock, as zitadel checks them.
func startZitadelEnv(t *testing.T) (*assertionop.OP, *env) {
	t.Helper()
	o, err := assertionop.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	e := newEnv(t)
	e.b.now = time.Now
	return o, e
}

// TestZitadelNarrowedRefresh: a user connected at zitadel's OpenID provider
// (authorization code with private_key_jwt, offline_access) reads a token
// narrowed to fewer scopes: zitadel's refresh grant checks the scope is
// within the grant and issues it; the refresh token it rotates is persisted
// and keeps the grant's whole scope (RFC 6749 §6), the spent one is never
// sent again and the main token stays. A scope outside the grant is
// zitadel's invalid_scope, a 400 that spends nothing. Where the provider
// ends the access token of a refresh token it spends (configured as
// revokes_previous_token=on_refresh), a narrowed read is refused before
// anything is sent.
func TestZitadelNarrowedRefresh(t *testing.T) {
	o, e := startZitadelEnv(t)
	grant := []string{"openid", "profile", "email", "offline_access"}
	connectAtZitadel(t, o, e, "z", nil)
	main := e.token("z")
	spent := e.storedState("z").RefreshToken
	if !o.Active(main) || !slices.Equal(o.Scopes(main), grant) {
		t.Fatalf("main token: active %v, scopes %v; want active with %v", o.Active(main), o.Scopes(main), grant)
	}

	resp, err := e.creds("z", map[string]any{"scope": "profile email"})
	if err != nil {
		t.Fatalf("narrowed read: %v", err)
	}
	narrowed, _ := resp.Data["access_token"].(string)
	if got := o.Scopes(narrowed); !o.Active(narrowed) || !slices.Equal(got, []string{"email", "profile"}) {
		t.Errorf("narrowed token: active %v, scopes %v; want active with [email profile]", o.Active(narrowed), got)
	}
	rotated := e.storedState("z").RefreshToken
	switch {
	case rotated == spent:
		t.Fatal("the refresh token zitadel rotated was not persisted")
	case o.RefreshScopes(spent) != nil:
		t.Error("the spent refresh token is still live at zitadel")
	case !slices.Equal(o.RefreshScopes(rotated), grant):
		t.Errorf("the rotated refresh token's grant: got %v, want %v (RFC 6749 §6)", o.RefreshScopes(rotated), grant)
	}
	expect(t, "main token after the narrowed refresh", e.token("z"), main)
	if !o.Active(main) {
		t.Error("the main token ended")
	}
	if again, _ := e.creds("z", map[string]any{"scope": "email,profile"}); again == nil || again.Data["access_token"] != narrowed {
		t.Error("a second narrowed read of the same scopes was not served from cache")
	}

	_, err = e.creds("z", map[string]any{"scope": "phone"})
	expectErr(t, "a scope outside the grant", err, "invalid_scope")
	expect(t, "status", codeOf(err), http.StatusBadRequest)
	if o.RefreshScopes(rotated) == nil || e.storedState("z").RefreshToken != rotated {
		t.Error("a refused narrowed refresh spent or dropped the chain's refresh token")
	}

	o.EndPreviousOnRefresh(true)
	connectAtZitadel(t, o, e, "ends", map[string]any{"revokes_previous_token": "on_refresh"})
	main = e.token("ends")
	held := e.storedState("ends").RefreshToken
	_, err = e.creds("ends", map[string]any{"scope": "profile"})
	expectErr(t, "a narrowed refresh that would end the main token", err, "revokes_previous_token")
	expect(t, "status", codeOf(err), http.StatusBadRequest)
	if !o.Active(main) || o.RefreshScopes(held) == nil {
		t.Errorf("after the refused read: main token active %v, refresh token live %v; want both", o.Active(main), o.RefreshScopes(held) != nil)
	}
}
