package fakeprovider

import (
	"net/http"
	"net/url"
	"testing"
)

// connect plays a user's authorization of testClientID (with loginHint,
// when set) and redeems the code: the access and refresh tokens.
func connect(t *testing.T, hc *http.Client, s *Server, loginHint string) (access, refresh string) {
	t.Helper()
	const verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	raw := authorizeURL(s, verifier)
	if loginHint != "" {
		raw += "&login_hint=" + url.QueryEscape(loginHint)
	}
	back, err := s.Authorize(raw)
	if err != nil {
		t.Fatalf("Authorize: got %v, want a redirect", err)
	}
	u, _ := url.Parse(back)
	r := postForm(t, hc, s.URL()+PathOAuth2Token, url.Values{"grant_type": {"authorization_code"}, "code": {u.Query().Get("code")},
		"redirect_uri": {"https://vault.example/cb"}, "code_verifier": {verifier}}, withBasic(testClientID, testClientSecret))
	wantStatus(t, r, 200)
	return r.str(t, "access_token"), r.str(t, "refresh_token")
}

func userinfo(t *testing.T, hc *http.Client, s *Server, token string) response {
	t.Helper()
	return send(t, hc, http.MethodGet, s.URL()+PathUserinfo, "", "", withHeader("Authorization", "Bearer "+token))
}

func githubUser(t *testing.T, hc *http.Client, s *Server, token string) response {
	t.Helper()
	return send(t, hc, http.MethodGet, s.URL()+PathGitHubAPI+"/user", "", "", withHeader("Authorization", "Bearer "+token),
		withHeader("Accept", "application/vnd.github+json"), withHeader("X-GitHub-Api-Version", "2022-11-28"), withHeader("User-Agent", "test"))
}

// TestAccounts: the account that approves is remembered by the code, the
// tokens it buys and their refreshes, and told by the userinfo endpoint
// and GitHub's /user; SetAccount and login_hint choose it.
func TestAccounts(t *testing.T) {
	s, hc := start(t, Options{})
	defaultAccess, _ := connect(t, hc, s, "")
	s.SetAccount("fake-user-2", "user2@example.test")
	secondAccess, secondRefresh := connect(t, hc, s, "")
	hintedAccess, _ := connect(t, hc, s, DefaultAccountEmail)

	r := refresh(t, hc, s, OAuth2, secondRefresh)
	wantStatus(t, r, 200)
	refreshedAccess := r.str(t, "access_token")

	cases := []struct {
		name, token string
		want        map[string]any
		githubID    float64
	}{
		{"the default account", defaultAccess, map[string]any{"sub": DefaultAccountSubject, "email": DefaultAccountEmail, "email_verified": true, "name": "user1"}, 1},
		{"after SetAccount", secondAccess, map[string]any{"sub": "fake-user-2", "email": "user2@example.test", "email_verified": true, "name": "user2"}, 2},
		{"a refresh keeps the account", refreshedAccess, map[string]any{"sub": "fake-user-2", "email": "user2@example.test", "email_verified": true, "name": "user2"}, 2},
		{"login_hint names another", hintedAccess, map[string]any{"sub": DefaultAccountSubject, "email": DefaultAccountEmail, "email_verified": true, "name": "user1"}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := userinfo(t, hc, s, c.token)
			if r.status != 200 {
				t.Fatalf("userinfo: got %d %s, want 200", r.status, r.body)
			}
			wantFields(t, r, c.want)
			g := githubUser(t, hc, s, c.token)
			if g.status != 200 {
				t.Fatalf("GitHub /user: got %d %s, want 200", g.status, g.body)
			}
			wantFields(t, g, map[string]any{"login": c.want["sub"], "id": c.githubID, "email": c.want["email"], "name": c.want["name"]})
			if sub, ok := s.AccountOf(c.token); !ok || sub != c.want["sub"] {
				t.Errorf("AccountOf: got %q, %v; want %q, true", sub, ok, c.want["sub"])
			}
		})
	}
}

// TestDeviceApprovalCarriesTheAccount: the account that enters the user
// code is the one the device flow's tokens belong to.
func TestDeviceApprovalCarriesTheAccount(t *testing.T) {
	s, hc := start(t, Options{})
	start := postForm(t, hc, s.URL()+PathDeviceAuthorization, url.Values{"scope": {"read"}}, withBasic(testClientID, testClientSecret))
	if start.status != 200 {
		t.Fatalf("device authorization: got %d %s, want 200", start.status, start.body)
	}
	s.SetAccount("device-user", "device@example.test")
	if err := s.ApproveDevice(start.str(t, "user_code")); err != nil {
		t.Fatalf("ApproveDevice: got %v, want nil", err)
	}
	s.SetAccount("someone-else", "else@example.test") // after the approval: changes nothing
	r := postForm(t, hc, s.URL()+PathOAuth2Token, url.Values{"grant_type": {grantDeviceCode}, "device_code": {start.str(t, "device_code")}},
		withBasic(testClientID, testClientSecret))
	wantStatus(t, r, 200)
	wantFields(t, userinfo(t, hc, s, r.str(t, "access_token")), map[string]any{"sub": "device-user", "email": "device@example.test"})
}

// TestUserinfoRefuses: a token that is not a valid user's access token gets
// 401 with WWW-Authenticate: Bearer error="invalid_token" (RFC 6750 §3), or
// GitHub's answers; a wrong method 405.
func TestUserinfoRefuses(t *testing.T) {
	s, hc := start(t, Options{})
	clientToken := mint(t, hc, s, OAuth2).str(t, "access_token")
	_, refreshToken := connect(t, hc, s, "")
	cases := []struct {
		name       string
		auth       string
		githubCode int
	}{
		{"no token", "", 401},
		{"an unknown token", "Bearer at_unknown", 401},
		{"a refresh token", "Bearer " + refreshToken, 401},
		{"a client credentials token", "Bearer " + clientToken, 403},
		{"another scheme", "Basic " + clientToken, 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := send(t, hc, http.MethodGet, s.URL()+PathUserinfo, "", "", withHeader("Authorization", c.auth))
			if r.status != 401 || r.header.Get("WWW-Authenticate") != `Bearer error="invalid_token"` {
				t.Errorf("userinfo: got %d, WWW-Authenticate %q; want 401, Bearer error=\"invalid_token\"", r.status, r.header.Get("WWW-Authenticate"))
			}
			g := send(t, hc, http.MethodGet, s.URL()+PathGitHubAPI+"/user", "", "", withHeader("Authorization", c.auth),
				withHeader("Accept", "application/vnd.github+json"), withHeader("X-GitHub-Api-Version", "2022-11-28"), withHeader("User-Agent", "test"))
			if g.status != c.githubCode {
				t.Errorf("GitHub /user: got %d %s, want %d", g.status, g.body, c.githubCode)
			}
		})
	}
	t.Run("DELETE", func(t *testing.T) {
		r := send(t, hc, http.MethodDelete, s.URL()+PathUserinfo, "", "")
		if r.status != 405 {
			t.Errorf("status: got %d, want 405", r.status)
		}
	})
}

// TestRevokeGrantsOf: a user ending the app's access revokes their grants'
// refresh and access tokens, and no one else's.
func TestRevokeGrantsOf(t *testing.T) {
	s, hc := start(t, Options{})
	s.SetAccount("alice", "alice@example.test")
	aliceAccess, aliceRefresh := connect(t, hc, s, "")
	s.SetAccount("bob", "bob@example.test")
	bobAccess, bobRefresh := connect(t, hc, s, "")

	if n := s.RevokeGrantsOf("alice"); n != 1 {
		t.Fatalf("RevokeGrantsOf(alice): got %d refresh tokens revoked, want 1", n)
	}
	r := refresh(t, hc, s, OAuth2, aliceRefresh)
	wantStatus(t, r, 400)
	wantFields(t, r, map[string]any{"error": "invalid_grant"})
	if got := userinfo(t, hc, s, aliceAccess).status; got != http.StatusUnauthorized {
		t.Errorf("alice's access token after RevokeGrantsOf: got %d at userinfo, want 401", got)
	}
	if got := userinfo(t, hc, s, bobAccess).status; got != 200 {
		t.Errorf("bob's access token: got %d at userinfo, want 200", got)
	}
	wantStatus(t, refresh(t, hc, s, OAuth2, bobRefresh), 200)
}
