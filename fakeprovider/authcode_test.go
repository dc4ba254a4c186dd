package fakeprovider

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// authorizeURL is an authorization request of testClientID with a challenge of verifier.
func authorizeURL(s *Server, verifier string) string {
	q := url.Values{"response_type": {"code"}, "client_id": {testClientID}, "redirect_uri": {"https://vault.example/cb"},
		"scope": {"read"}, "state": {"st"}}
	if verifier != "" {
		q.Set("code_challenge", challenge(verifier))
		q.Set("code_challenge_method", "S256")
	}
	return s.URL() + PathAuthorize + "?" + q.Encode()
}

func TestAuthorizationCodeRedemption(t *testing.T) {
	const verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	cases := []struct {
		name    string
		change  func(form url.Values)
		problem string // "" for a token
	}{
		{"the right verifier", nil, ""},
		{"a wrong verifier", func(f url.Values) { f.Set("code_verifier", strings.Repeat("x", 43)) }, "PKCE verification failed"},
		{"no verifier", func(f url.Values) { f.Del("code_verifier") }, "PKCE verification failed"},
		{"another redirect_uri", func(f url.Values) { f.Set("redirect_uri", "https://evil.example/cb") }, "redirect_uri differs"},
		{"an unknown code", func(f url.Values) { f.Set("code", "code_nope") }, "unknown authorization code"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, hc := start(t, Options{})
			back, err := s.Authorize(authorizeURL(s, verifier))
			if err != nil {
				t.Fatal(err)
			}
			u, _ := url.Parse(back)
			if u.Query().Get("state") != "st" || u.Query().Get("code") == "" {
				t.Fatalf("redirect = %s, want a code and the state", back)
			}
			form := url.Values{"grant_type": {"authorization_code"}, "code": {u.Query().Get("code")},
				"redirect_uri": {"https://vault.example/cb"}, "code_verifier": {verifier}}
			if c.change != nil {
				c.change(form)
			}
			r := postForm(t, hc, s.URL()+PathOAuth2Token, form, withBasic(testClientID, testClientSecret))
			if c.problem == "" {
				wantStatus(t, r, 200)
				if tok := r.str(t, "access_token"); !s.Valid(tok) || r.str(t, "refresh_token") == "" {
					t.Fatalf("token response %s: want a valid access token and a refresh token", r.body)
				}
				again := postForm(t, hc, s.URL()+PathOAuth2Token, form, withBasic(testClientID, testClientSecret))
				wantStatus(t, again, 400) // a code works once
				return
			}
			wantStatus(t, r, 400)
			if r.str(t, "error") != "invalid_grant" || !strings.Contains(r.str(t, "error_description"), c.problem) {
				t.Fatalf("refusal = %s, want invalid_grant: %s", r.body, c.problem)
			}
		})
	}
}

func TestAuthorizeRefusesMalformedRequests(t *testing.T) {
	s, _ := start(t, Options{})
	ok := authorizeURL(s, "v")
	cases := []struct{ name, from, to, want string }{
		{"unknown client", "client_id=" + testClientID, "client_id=nobody", "unknown client_id"},
		{"plain-http redirect off loopback", "redirect_uri=https", "redirect_uri=http", "not an https"},
		{"plain challenge method", "code_challenge_method=S256", "code_challenge_method=plain", "must be S256"},
	}
	for _, c := range cases {
		if _, err := s.Authorize(strings.Replace(ok, c.from, c.to, 1)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
	s.SetDenyAuthorizations(true)
	back, err := s.Authorize(ok)
	if u, _ := url.Parse(back); err != nil || u.Query().Get("error") != "access_denied" || u.Query().Has("code") {
		t.Fatalf("denied redirect = %s, %v; want error=access_denied and no code", back, err)
	}
}

func TestDeviceFlow(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s, hc := start(t, Options{Now: clock})
	r := postForm(t, hc, s.URL()+PathDeviceAuthorization, url.Values{"scope": {"read"}}, withBasic(testClientID, testClientSecret))
	wantStatus(t, r, 200)
	device, user := r.str(t, "device_code"), r.str(t, "user_code")
	poll := func() string {
		r := postForm(t, hc, s.URL()+PathOAuth2Token, url.Values{"grant_type": {grantDeviceCode}, "device_code": {device}},
			withBasic(testClientID, testClientSecret))
		if r.status == 200 {
			return "token"
		}
		return r.str(t, "error")
	}
	steps := []struct {
		name string
		act  func()
		want string
	}{
		{"first poll", nil, "authorization_pending"},
		{"a poll 1 s later", func() { now = now.Add(time.Second) }, "slow_down"},
		{"5 s later, inside the longer interval", func() { now = now.Add(5 * time.Second) }, "slow_down"},
		{"15 s later", func() { now = now.Add(15 * time.Second) }, "authorization_pending"},
		{"after approval", func() { now = now.Add(20 * time.Second); _ = s.ApproveDevice(user) }, "token"},
		{"again", func() { now = now.Add(30 * time.Second) }, "invalid_grant"},
	}
	for _, st := range steps {
		if st.act != nil {
			st.act()
		}
		if got := poll(); got != st.want {
			t.Fatalf("%s: got %s, want %s", st.name, got, st.want)
		}
	}
}
