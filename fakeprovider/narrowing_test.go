package fakeprovider

import (
	"crypto"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// ccWith is a client credentials form of the test client with extra values.
func ccWith(extra url.Values) url.Values {
	v := ccForm(testClientID, testClientSecret)
	for k, vals := range extra {
		v[k] = vals
	}
	return v
}

// TestOAuth2ClientPolicy: a client's allowed scopes, audiences and
// resources bound its client credentials tokens (RFC 6749 §5.2
// invalid_scope, RFC 8707 §2 invalid_target); resource repeats (§2.1).
func TestOAuth2ClientPolicy(t *testing.T) {
	s, c := start(t, Options{})
	s.SetClientPolicy(testClientID, ClientPolicy{Scopes: []string{"read", "write"},
		Audiences: []string{"svc"}, Resources: []string{"https://a.example", "https://b.example/api"}})
	u := s.URL() + PathOAuth2Token
	cases := []struct {
		name     string
		extra    url.Values
		status   int
		code     string   // "" for a token
		wantAud  []string // the token's audiences
		wantDesc string
	}{
		{"no narrowing", nil, 200, "", nil, ""},
		{"an allowed scope", url.Values{"scope": {"read"}}, 200, "", nil, ""},
		{"a scope outside", url.Values{"scope": {"read admin"}}, 400, "invalid_scope", nil, `scope "admin" is not allowed`},
		{"resources repeated (RFC 8707 §2.1)", url.Values{"resource": {"https://b.example/api", "https://a.example"}}, 200, "",
			[]string{"https://a.example", "https://b.example/api"}, ""},
		{"an audience and a resource", url.Values{"audience": {"svc"}, "resource": {"https://a.example"}}, 200, "", []string{"https://a.example", "svc"}, ""},
		{"a resource outside", url.Values{"resource": {"https://a.example", "https://c.example"}}, 400, "invalid_target", nil, `resource "https://c.example" is not allowed`},
		{"a resource that is not a URI as registered", url.Values{"resource": {"https://A.example"}}, 400, "invalid_target", nil, ""},
		{"a relative resource", url.Values{"resource": {"/api"}}, 400, "invalid_target", nil, "absolute URI without a fragment"},
		{"a resource with a fragment", url.Values{"resource": {"https://a.example#x"}}, 400, "invalid_target", nil, "absolute URI without a fragment"},
		{"an audience outside", url.Values{"audience": {"other"}}, 400, "invalid_target", nil, `audience "other"`},
		{"audience repeated (one only outside token exchange, RFC 6749 §3.2)", url.Values{"audience": {"svc", "svc"}}, 400, "invalid_request", nil, "repeated"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := postForm(t, c, u, ccWith(tc.extra))
			if tc.code != "" {
				wantOAuthError(t, r, tc.status, tc.code)
				if d, _ := r.json(t)["error_description"].(string); !strings.Contains(d, tc.wantDesc) {
					t.Errorf("error_description: got %q, want it to contain %q", d, tc.wantDesc)
				}
				return
			}
			wantStatus(t, r, tc.status)
			if got := s.Audiences(r.str(t, "access_token")); !reflect.DeepEqual(got, tc.wantAud) {
				t.Errorf("Audiences: got %q, want %q", got, tc.wantAud)
			}
		})
	}
	t.Run("another client is unbounded", func(t *testing.T) {
		v := ccForm(otherClientID, otherSecret)
		v.Set("scope", "admin")
		v["resource"] = []string{"https://anything.example"}
		wantStatus(t, postForm(t, c, u, v), 200)
	})
	t.Run("IssuedFor counts per variant", func(t *testing.T) {
		if got := s.IssuedFor("", "https://b.example/api", "https://a.example"); got != 1 {
			t.Errorf("IssuedFor(resources a and b): got %d, want 1", got)
		}
		if got := s.IssuedFor("read"); got != 1 {
			t.Errorf("IssuedFor(read): got %d, want 1", got)
		}
		if got := s.IssuedFor("admin", "https://anything.example"); got != 1 {
			t.Errorf("IssuedFor(admin, anything): got %d, want 1", got)
		}
		s.Reset()
		if got := s.IssuedFor("read"); got != 0 {
			t.Errorf("IssuedFor after Reset: got %d, want 0", got)
		}
	})
}

// TestOAuth2RefreshNarrowing: a refresh may ask a narrower scope (RFC 6749
// §6: not "any scope not originally granted") and one of the refresh
// token's resources (RFC 8707 §2.2); the new refresh token keeps the
// original scope and resources, and a refused narrowing spends nothing.
func TestOAuth2RefreshNarrowing(t *testing.T) {
	s, c := start(t, Options{})
	u := s.URL() + PathOAuth2Token
	first := postForm(t, c, u, ccWith(url.Values{"scope": {"read write"}, "resource": {"https://a.example", "https://b.example"}}))
	wantStatus(t, first, 200)
	rt := first.str(t, "refresh_token")
	refreshWith := func(rt string, extra url.Values) response {
		v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
		for k, vals := range extra {
			v[k] = vals
		}
		return postForm(t, c, u, v, withBasic(testClientID, testClientSecret))
	}

	cases := []struct {
		name      string
		extra     url.Values
		code      string
		wantScope string
		wantAud   []string
	}{
		{"a scope not originally granted", url.Values{"scope": {"read admin"}}, "invalid_scope", "", nil},
		{"a resource not originally granted", url.Values{"resource": {"https://c.example"}}, "invalid_target", "", nil},
		{"narrower scope and one resource", url.Values{"scope": {"read"}, "resource": {"https://b.example"}}, "", "read", []string{"https://b.example"}},
		{"nothing narrowed after a narrowed refresh: the original scope and resources", nil, "", "read write", []string{"https://a.example", "https://b.example"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := refreshWith(rt, tc.extra)
			if tc.code != "" {
				wantOAuthError(t, r, 400, tc.code)
				return
			}
			wantStatus(t, r, 200)
			wantFields(t, r, map[string]any{"scope": tc.wantScope})
			if got := s.Audiences(r.str(t, "access_token")); !reflect.DeepEqual(got, tc.wantAud) {
				t.Errorf("Audiences: got %q, want %q", got, tc.wantAud)
			}
			rt = r.str(t, "refresh_token")
		})
	}
	wantCounts(t, s, counts{ClientCredentials: 1, RefreshToken: 2})

	t.Run("a seeded token without resources takes those the client's policy allows", func(t *testing.T) {
		s.SetClientPolicy(testClientID, ClientPolicy{Resources: []string{"https://a.example"}})
		seeded := s.SeedRefreshToken(OAuth2, testClientID)
		wantOAuthError(t, refreshWith(seeded, url.Values{"resource": {"https://b.example"}}), 400, "invalid_target")
		wantStatus(t, refreshWith(seeded, url.Values{"resource": {"https://a.example"}}), 200)
	})
}

// exchangeForm is a token exchange of subject by the test client.
func exchangeForm(subject string, extra url.Values) url.Values {
	v := ccWith(url.Values{"grant_type": {grantTokenExchange}, "subject_token": {subject}, "subject_token_type": {tokenTypeAccessToken}})
	for k, vals := range extra {
		v[k] = vals
	}
	return v
}

// TestTokenExchange: RFC 8693 at the oauth2 endpoint, per its switch.
func TestTokenExchange(t *testing.T) {
	clock := newClock()
	s, c := start(t, Options{Now: clock.Now})
	u := s.URL() + PathOAuth2Token
	mintAs := func(id, secret, scope string) string {
		v := ccForm(id, secret)
		v.Set("scope", scope)
		r := postForm(t, c, u, v)
		wantStatus(t, r, 200)
		return r.str(t, "access_token")
	}
	mine := mintAs(testClientID, testClientSecret, "read write")
	theirs := mintAs(otherClientID, otherSecret, "read")

	t.Run("off by default: unsupported_grant_type", func(t *testing.T) {
		wantOAuthError(t, postForm(t, c, u, exchangeForm(mine, nil)), 400, "unsupported_grant_type")
	})

	s.SetTokenExchange(TokenExchangeAnyClient)
	s.SetClientPolicy(testClientID, ClientPolicy{Audiences: []string{"svc-a", "svc-b"}, Resources: []string{"https://r.example"}})
	s.SetLifetime(time.Second)
	expired := mintAs(testClientID, testClientSecret, "read")
	s.SetLifetime(0)
	clock.Advance(2 * time.Second)

	cases := []struct {
		name      string
		form      url.Values
		code      string
		wantScope any // the answer's scope member; nil: absent
		wantAud   []string
	}{
		{"an access token for two audiences and a resource", exchangeForm(mine, url.Values{"audience": {"svc-b", "svc-a"},
			"resource": {"https://r.example"}, "scope": {"read"}}), "", "read", []string{"https://r.example", "svc-a", "svc-b"}},
		{"no scope asked: the subject's, not repeated", exchangeForm(mine, url.Values{"audience": {"svc-a"}}), "", nil, []string{"svc-a"}},
		{"another client's subject token (TokenExchangeAnyClient)", exchangeForm(theirs, nil), "", nil, nil},
		{"requested_token_type access_token", exchangeForm(mine, url.Values{"requested_token_type": {tokenTypeAccessToken}}), "", nil, nil},
		{"an actor token", exchangeForm(mine, url.Values{"actor_token": {theirs}, "actor_token_type": {tokenTypeAccessToken}}), "", nil, nil},
		{"a scope wider than the subject's", exchangeForm(mine, url.Values{"scope": {"read admin"}}), "invalid_scope", nil, nil},
		{"an audience outside the client's", exchangeForm(mine, url.Values{"audience": {"svc-c"}}), "invalid_target", nil, nil},
		{"a resource outside the client's", exchangeForm(mine, url.Values{"resource": {"https://other.example"}}), "invalid_target", nil, nil},
		{"an unknown subject token", exchangeForm("at_nope", nil), "invalid_request", nil, nil},
		{"an expired subject token", exchangeForm(expired, nil), "invalid_request", nil, nil},
		{"no subject_token_type", exchangeForm(mine, url.Values{"subject_token_type": nil}), "invalid_request", nil, nil},
		{"an id_token subject type", exchangeForm(mine, url.Values{"subject_token_type": {"urn:ietf:params:oauth:token-type:id_token"}}), "invalid_request", nil, nil},
		{"a JWT requested", exchangeForm(mine, url.Values{"requested_token_type": {"urn:ietf:params:oauth:token-type:jwt"}}), "invalid_request", nil, nil},
		{"an actor token without type", exchangeForm(mine, url.Values{"actor_token": {theirs}}), "invalid_request", nil, nil},
		{"an invalid actor token", exchangeForm(mine, url.Values{"actor_token": {"at_nope"}, "actor_token_type": {tokenTypeAccessToken}}), "invalid_request", nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := postForm(t, c, u, tc.form)
			if tc.code != "" {
				wantOAuthError(t, r, 400, tc.code)
				return
			}
			wantStatus(t, r, 200)
			wantFields(t, r, map[string]any{"issued_token_type": tokenTypeAccessToken, "token_type": "Bearer", "expires_in": 3600.0,
				"refresh_token": nil, "scope": tc.wantScope})
			at := r.str(t, "access_token")
			checkWhoami(t, c, s, at, testClientID)
			if got := s.Audiences(at); !reflect.DeepEqual(got, tc.wantAud) {
				t.Errorf("Audiences: got %q, want %q", got, tc.wantAud)
			}
		})
	}
	if got := s.Grants("token_exchange"); got != 5 {
		t.Errorf(`Grants("token_exchange"): got %d, want 5`, got)
	}

	t.Run("TokenExchangeSameClient refuses another client's subject token", func(t *testing.T) {
		s.SetTokenExchange(TokenExchangeSameClient)
		wantOAuthError(t, postForm(t, c, u, exchangeForm(theirs, nil)), 400, "invalid_request")
		wantStatus(t, postForm(t, c, u, exchangeForm(mine, nil)), 200)
	})
	t.Run("client authentication is the token endpoint's", func(t *testing.T) {
		v := exchangeForm(mine, nil)
		v.Set("client_secret", "nope")
		wantOAuthError(t, postForm(t, c, u, v), 401, "invalid_client")
	})
}

// msRefresh is a Microsoft refresh of rt by ms-secret-client with scope
// ("" for none).
func msRefresh(t *testing.T, c *http.Client, s *Server, rt, scope, secret string) response {
	t.Helper()
	v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"ms-app"}, "client_secret": {secret}}
	if scope != "" {
		v.Set("scope", scope)
	}
	return postForm(t, c, s.URL()+MicrosoftTokenPath("contoso"), v)
}

// TestMicrosoftRefreshPerResource: one refresh token of a consent spanning
// Graph and Azure Resource Manager redeems for either resource's token.
func TestMicrosoftRefreshPerResource(t *testing.T) {
	s, c := start(t, Options{})
	s.AddClient("ms-app", "ms-s3cret")
	rt := s.SeedMicrosoftRefreshToken("ms-app", "https://graph.microsoft.com/User.Read", "https://graph.microsoft.com/Mail.Read",
		"https://management.azure.com/user_impersonation", "offline_access", "openid")
	cases := []struct {
		name, scope string
		code, desc  string
		wantScope   string
		wantAud     []string
	}{
		{"Graph's .default: its consented scopes", "https://graph.microsoft.com/.default offline_access", "", "",
			"https://graph.microsoft.com/User.Read https://graph.microsoft.com/Mail.Read", []string{"https://graph.microsoft.com"}},
		{"Azure Resource Manager's .default from the same refresh token", "https://management.azure.com/.default offline_access", "", "",
			"https://management.azure.com/user_impersonation", []string{"https://management.azure.com"}},
		{"a Graph scope by its short name", "User.Read offline_access", "", "",
			"https://graph.microsoft.com/User.Read", []string{"https://graph.microsoft.com"}},
		{"two resources: the first scope's", "https://management.azure.com/.default https://graph.microsoft.com/.default", "", "",
			"https://management.azure.com/user_impersonation", []string{"https://management.azure.com"}},
		{"a resource never consented to", "https://vault.azure.net/.default offline_access", "invalid_grant", "AADSTS65001", "", nil},
		{"a scope never consented to", "https://graph.microsoft.com/Files.ReadWrite", "invalid_grant", "AADSTS65001", "", nil},
		{"no scope: required by default", "", "invalid_request", "AADSTS90014", "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := msRefresh(t, c, s, rt, tc.scope, "ms-s3cret")
			if tc.code != "" {
				wantOAuthError(t, r, 400, tc.code)
				if d, _ := r.json(t)["error_description"].(string); !strings.HasPrefix(d, tc.desc) {
					t.Errorf("error_description: got %q, want it to start with %s", d, tc.desc)
				}
				return
			}
			wantStatus(t, r, 200)
			wantFields(t, r, map[string]any{"scope": tc.wantScope, "token_type": "Bearer"})
			if got := s.Audiences(r.str(t, "access_token")); !reflect.DeepEqual(got, tc.wantAud) {
				t.Errorf("Audiences: got %q, want %q", got, tc.wantAud)
			}
			next := r.str(t, "refresh_token")
			if next == "" || next == rt {
				t.Fatalf("refresh_token: got %q, want a new one", next)
			}
			// The new refresh token is of the whole consent: it redeems for the other resource too.
			wantStatus(t, msRefresh(t, c, s, next, "https://management.azure.com/.default", "ms-s3cret"), 200)
		})
	}
	if got, want := s.IssuedFor("https://management.azure.com/user_impersonation", "https://management.azure.com"), 2+4; got != want {
		t.Errorf("IssuedFor(Azure Resource Manager): got %d, want %d", got, want)
	}
	if got := s.RefreshReuses(); got != 0 {
		t.Errorf("RefreshReuses: got %d, want 0 (Microsoft does not revoke a used refresh token)", got)
	}

	t.Run("MicrosoftRefreshScopeOptional: no scope is the consent's first resource", func(t *testing.T) {
		s.SetMicrosoftRefreshScope(MicrosoftRefreshScopeOptional)
		defer s.SetMicrosoftRefreshScope(MicrosoftRefreshScopeRequired)
		r := msRefresh(t, c, s, rt, "", "ms-s3cret")
		wantStatus(t, r, 200)
		wantFields(t, r, map[string]any{"scope": "https://graph.microsoft.com/User.Read https://graph.microsoft.com/Mail.Read"})
	})
	t.Run("client authentication", func(t *testing.T) {
		wantOAuthError(t, msRefresh(t, c, s, rt, "User.Read", "wrong"), 401, "invalid_client")
		v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"ms-app"}, "scope": {"User.Read"}}
		wantOAuthError(t, postForm(t, c, s.URL()+MicrosoftTokenPath("contoso"), v), 401, "invalid_client")
	})
	t.Run("another client's refresh token", func(t *testing.T) {
		s.AddClient("ms-other", "other-s3cret")
		v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"ms-other"},
			"client_secret": {"other-s3cret"}, "scope": {"User.Read"}}
		wantOAuthError(t, postForm(t, c, s.URL()+MicrosoftTokenPath("contoso"), v), 400, "invalid_grant")
	})
	t.Run("without offline_access in the consent, no new refresh token", func(t *testing.T) {
		plain := s.SeedMicrosoftRefreshToken("ms-app", "https://graph.microsoft.com/User.Read")
		r := msRefresh(t, c, s, plain, "User.Read", "ms-s3cret")
		wantStatus(t, r, 200)
		wantFields(t, r, map[string]any{"refresh_token": nil})
	})
}

// TestGitHubNarrowing: an installation token narrowed to repositories and
// permissions within the installation's, as GitHub's "Create an
// installation access token for an app" documents; 422 otherwise.
func TestGitHubNarrowing(t *testing.T) {
	s, c := startSigned(t)
	s.AddAssertionKey("1234", "", &jwtRSA.PublicKey)
	s.AddGitHubInstallation("1234", "acme", true, 42, "api", "web", "docs")
	s.SetGitHubInstallationPermissions(42, map[string]string{"contents": "write", "metadata": "read", "issues": "read"})
	appJWT := signed(t, crypto.Signer(jwtRSA), jose.RS256, nil, map[string]any{"iss": "1234",
		"iat": jwtNow.Add(-time.Minute).Unix(), "exp": jwtNow.Add(9 * time.Minute).Unix()})
	mint := func(body string) response {
		return send(t, c, "POST", s.URL()+PathGitHubAPI+"/app/installations/42/access_tokens", "application/json", body,
			withHeader("Authorization", "Bearer "+appJWT), withHeader("Accept", "application/vnd.github+json"),
			withHeader("X-GitHub-Api-Version", "2022-11-28"))
	}
	ids := make([]string, 501)
	for i := range ids {
		ids[i] = fmt.Sprint(i + 1)
	}
	cases := []struct {
		name, body string
		status     int
		want       map[string]any
	}{
		{"nothing narrowed: every repository, the app's permissions", "", 201,
			map[string]any{"repository_selection": "all", "repositories": nil,
				"permissions": map[string]any{"contents": "write", "metadata": "read", "issues": "read"}}},
		{"repositories by name and id, lower permissions", `{"repositories":["web"],"repository_ids":[3],"permissions":{"contents":"read"}}`, 201,
			map[string]any{"repository_selection": "selected", "permissions": map[string]any{"contents": "read"},
				"repositories": []any{
					map[string]any{"id": 2.0, "name": "web", "full_name": "acme/web"},
					map[string]any{"id": 3.0, "name": "docs", "full_name": "acme/docs"}}}},
		{"write where the app has read", `{"permissions":{"issues":"write"}}`, 422, nil},
		{"a permission the app lacks", `{"permissions":{"actions":"read"}}`, 422, nil},
		{"a repository outside the installation", `{"repositories":["secret"]}`, 422, nil},
		{"a repository id outside the installation", `{"repository_ids":[4]}`, 422, nil},
		{"more than 500 repositories", `{"repository_ids":[` + strings.Join(ids, ",") + `]}`, 422, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := mint(tc.body)
			wantStatus(t, r, tc.status)
			if tc.want != nil {
				wantFields(t, r, tc.want)
			} else if msg, _ := r.json(t)["message"].(string); msg == "" {
				t.Errorf("message: got %s, want GitHub's message", r.body)
			}
		})
	}
	if got := s.Grants("installation_token"); got != 2 {
		t.Errorf(`Grants("installation_token"): got %d, want 2`, got)
	}
}
