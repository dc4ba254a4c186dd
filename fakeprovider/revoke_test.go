package fakeprovider

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func revokeForm(token, hint string) url.Values {
	v := url.Values{"token": {token}}
	if hint != "" {
		v.Set("token_type_hint", hint)
	}
	return v
}

// TestRevokeStrictness: what the revocation endpoint refuses, and how.
func TestRevokeStrictness(t *testing.T) {
	s, hc := start(t, Options{})
	_, rt := connect(t, hc, s, "")
	revokeURL := s.URL() + PathRevoke
	basic := withBasic(testClientID, testClientSecret)
	cases := []struct {
		name   string
		do     func() response
		status int
		code   string // "" for a 200
	}{
		{"GET", func() response { return send(t, hc, http.MethodGet, revokeURL+"?token="+rt, "", "", basic) }, 405, "invalid_request"},
		{"a JSON body", func() response { return postJSON(t, hc, revokeURL, map[string]string{"token": rt}, basic) }, 400, "invalid_request"},
		{"no token", func() response {
			return postForm(t, hc, revokeURL, url.Values{"token_type_hint": {"refresh_token"}}, basic)
		}, 400, "invalid_request"},
		{"an unknown hint", func() response { return postForm(t, hc, revokeURL, revokeForm(rt, "id_token"), basic) }, 400, "unsupported_token_type"},
		{"a repeated token", func() response { return postForm(t, hc, revokeURL, url.Values{"token": {rt, rt}}, basic) }, 400, "invalid_request"},
		{"the token in the URL", func() response {
			return send(t, hc, http.MethodPost, revokeURL+"?token="+url.QueryEscape(rt), contentTypeForm, "", basic)
		}, 400, "invalid_request"},
		{"no client authentication", func() response { return postForm(t, hc, revokeURL, revokeForm(rt, "")) }, 401, "invalid_client"},
		{"a wrong secret", func() response {
			return postForm(t, hc, revokeURL, revokeForm(rt, ""), withBasic(testClientID, "wrong"))
		}, 401, "invalid_client"},
		{"Basic and a body secret", func() response {
			f := revokeForm(rt, "")
			f.Set("client_secret", testClientSecret)
			return postForm(t, hc, revokeURL, f, basic)
		}, 400, "invalid_request"},
		{"another client's token", func() response {
			return postForm(t, hc, revokeURL, revokeForm(rt, ""), withBasic(otherClientID, otherSecret))
		}, 400, "unauthorized_client"},
		{"an unknown token", func() response { return postForm(t, hc, revokeURL, revokeForm("rt_unknown", "refresh_token"), basic) }, 200, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := c.do()
			if c.code == "" {
				wantStatus(t, r, c.status)
				return
			}
			wantOAuthError(t, r, c.status, c.code)
		})
	}
	if s.Revocations() != 0 || s.RefreshTokenRevoked(rt) {
		t.Fatalf("after refused requests: Revocations %d, RefreshTokenRevoked %v; want 0, false", s.Revocations(), s.RefreshTokenRevoked(rt))
	}
	if got := s.Calls(PathRevoke); got != len(cases) {
		t.Errorf("Calls(PathRevoke): got %d, want %d", got, len(cases))
	}
}

// TestRevokeRefreshToken: a revoked refresh token is refused by the refresh
// grant (not counted as a reuse) and, by default, takes the access tokens
// of its grant with it; with SetRevocationKeepsAccessTokens they live on.
// Client authentication in the body works as at the token endpoint.
func TestRevokeRefreshToken(t *testing.T) {
	for _, keep := range []bool{false, true} {
		name := "access tokens revoked too"
		if keep {
			name = "access tokens kept"
		}
		t.Run(name, func(t *testing.T) {
			s, hc := start(t, Options{})
			s.SetRevocationKeepsAccessTokens(keep)
			first, rt := connect(t, hc, s, "")
			r := refresh(t, hc, s, OAuth2, rt)
			wantStatus(t, r, 200)
			second, rt2 := r.str(t, "access_token"), r.str(t, "refresh_token")
			otherAccess, _ := connect(t, hc, s, "") // another grant: never touched

			f := revokeForm(rt2, "refresh_token")
			f.Set("client_id", testClientID)
			f.Set("client_secret", testClientSecret)
			wantStatus(t, postForm(t, hc, s.URL()+PathRevoke, f), 200)
			wantStatus(t, postForm(t, hc, s.URL()+PathRevoke, f), 200) // again: already revoked, still 200

			if !s.RefreshTokenRevoked(rt2) || s.Revocations() != 1 {
				t.Errorf("RefreshTokenRevoked %v, Revocations %d; want true, 1", s.RefreshTokenRevoked(rt2), s.Revocations())
			}
			wantOAuthError(t, refresh(t, hc, s, OAuth2, rt2), 400, "invalid_grant")
			if s.RefreshReuses() != 0 {
				t.Errorf("RefreshReuses: got %d, want 0 (a revoked token is refused, not reused)", s.RefreshReuses())
			}
			for _, at := range []string{first, second} {
				if got := whoami(t, hc, s, at).status; (got == 200) != keep {
					t.Errorf("whoami of the grant's access token: got %d, want 200 %v", got, keep)
				}
			}
			if got := whoami(t, hc, s, otherAccess).status; got != 200 {
				t.Errorf("whoami of another grant's access token: got %d, want 200", got)
			}
		})
	}
}

// TestRevokeAccessToken: revoking an access token ends it alone; a wrong
// hint does not stop the search (RFC 7009 §2.1).
func TestRevokeAccessToken(t *testing.T) {
	s, hc := start(t, Options{})
	at, rt := connect(t, hc, s, "")
	wantStatus(t, postForm(t, hc, s.URL()+PathRevoke, revokeForm(at, "refresh_token"), withBasic(testClientID, testClientSecret)), 200)
	if whoami(t, hc, s, at).status != 401 || s.Revocations() != 1 {
		t.Fatalf("after revoking the access token: whoami %d, Revocations %d; want 401, 1", whoami(t, hc, s, at).status, s.Revocations())
	}
	if _, ok := s.RevokedAt(at); !ok {
		t.Errorf("RevokedAt: got false, want the revocation's time")
	}
	wantStatus(t, refresh(t, hc, s, OAuth2, rt), 200)
}

// TestRevokeWithClientAssertion: a private_key_jwt client revokes with an
// assertion whose aud is the token endpoint, as it authenticates there; one
// addressed to the revocation URL is refused.
func TestRevokeWithClientAssertion(t *testing.T) {
	s, hc := start(t, Options{Now: func() time.Time { return jwtNow }})
	s.AddAssertionKey("oauth2-client", "", &jwtRSA.PublicKey)
	s.AddClient("oauth2-client", "unused")
	mintForm := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {clientAssertionType},
		"client_assertion": {signed(t, jwtRSA, jose.RS256, nil, claims("oauth2-client", "oauth2-client", s.URL()+PathOAuth2Token, nil))}}
	r := postForm(t, hc, s.URL()+PathOAuth2Token, mintForm)
	wantStatus(t, r, 200)
	rt := r.str(t, "refresh_token")
	for _, c := range []struct {
		name, aud string
		status    int
	}{
		{"aud the revocation URL", s.URL() + PathRevoke, 401},
		{"aud the token endpoint", s.URL() + PathOAuth2Token, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := revokeForm(rt, "refresh_token")
			f.Set("client_assertion_type", clientAssertionType)
			f.Set("client_assertion", signed(t, jwtRSA, jose.RS256, nil, claims("oauth2-client", "oauth2-client", c.aud, nil)))
			wantStatus(t, postForm(t, hc, s.URL()+PathRevoke, f), c.status)
		})
	}
	if !s.RefreshTokenRevoked(rt) {
		t.Errorf("RefreshTokenRevoked: got false, want true")
	}
}

// TestRevokeDiscovered: the discovery document names the revocation and
// userinfo endpoints.
func TestRevokeDiscovered(t *testing.T) {
	s, hc := start(t, Options{})
	r := send(t, hc, http.MethodGet, s.URL()+PathDiscovery, "", "")
	wantFields(t, r, map[string]any{"revocation_endpoint": s.URL() + PathRevoke, "userinfo_endpoint": s.URL() + PathUserinfo})
}
