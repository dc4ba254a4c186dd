package fakeprovider

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
)

func TestEcho360(t *testing.T) {
	bothTransports(t, func(t *testing.T, tlsOn bool) {
		s, c := start(t, Options{TLS: tlsOn})
		u := s.URL() + PathEcho360Token

		first := mint(t, c, s, Echo360)
		wantStatus(t, first, http.StatusOK)
		wantFields(t, first, map[string]any{"token_type": "bearer", "expires_in": 3600.0})
		checkWhoami(t, c, s, first.str(t, "access_token"), testClientID)
		rt1 := first.str(t, "refresh_token")

		// Refresh with client_id and refresh_token only: no secret.
		second := refresh(t, c, s, Echo360, rt1)
		wantStatus(t, second, http.StatusOK)
		if rec := s.LastRequest(PathEcho360Token); rec.SecretSent {
			t.Errorf("SecretSent: got true, want false for a refresh that sent no secret")
		}
		rt2 := second.str(t, "refresh_token")
		if rt2 == rt1 {
			t.Fatalf("refresh_token: got the old one back, want a new one")
		}
		wantFields(t, second, map[string]any{"token_type": "bearer"})
		checkWhoami(t, c, s, second.str(t, "access_token"), testClientID)

		// Single use.
		wantOAuthError(t, refresh(t, c, s, Echo360, rt1), http.StatusBadRequest, "invalid_grant")
		wantCounts(t, s, counts{ClientCredentials: 1, RefreshToken: 1, Reuses: 1})
		// Bound to its client; a wrong client does not consume it.
		other := url.Values{"grant_type": {"refresh_token"}, "client_id": {otherClientID}, "refresh_token": {rt2}}
		wantOAuthError(t, postForm(t, c, u, other), http.StatusBadRequest, "invalid_grant")
		// A secret sent along with a refresh is accepted when right...
		withSecret := url.Values{"grant_type": {"refresh_token"}, "client_id": {testClientID}, "refresh_token": {rt2}, "client_secret": {testClientSecret}}
		third := postForm(t, c, u, withSecret)
		wantStatus(t, third, http.StatusOK)
		if !s.LastRequest(PathEcho360Token).SecretSent {
			t.Errorf("SecretSent: got false, want true for a refresh that sent client_secret")
		}
		// ...and rejected when wrong.
		withSecret.Set("refresh_token", third.str(t, "refresh_token"))
		withSecret.Set("client_secret", "nope")
		wantOAuthError(t, postForm(t, c, u, withSecret), http.StatusUnauthorized, "invalid_client")

		// A seeded refresh token starts a chain.
		wantStatus(t, refresh(t, c, s, Echo360, s.SeedRefreshToken(Echo360, testClientID)), http.StatusOK)
		wantCounts(t, s, counts{ClientCredentials: 1, RefreshToken: 3, Reuses: 1})
	})
}

func TestEcho360Errors(t *testing.T) {
	s, c := start(t, Options{})
	u := s.URL() + PathEcho360Token
	cc := ccForm(testClientID, testClientSecret)
	for _, tc := range []struct {
		name   string
		send   func(t *testing.T) response
		status int
		code   string
	}{
		{"wrong secret", func(t *testing.T) response { return postForm(t, c, u, ccForm(testClientID, "nope")) }, 401, "invalid_client"},
		{"HTTP Basic instead of client_secret", func(t *testing.T) response {
			return postForm(t, c, u, url.Values{"grant_type": {"client_credentials"}, "client_id": {testClientID}}, withBasic(testClientID, testClientSecret))
		}, 401, "invalid_client"},
		{"JSON body", func(t *testing.T) response { return postJSON(t, c, u, ccJSON(testClientID, testClientSecret)) }, 400, "invalid_request"},
		{"no grant_type", func(t *testing.T) response { return postForm(t, c, u, url.Values{"client_id": {testClientID}}) }, 400, "invalid_request"},
		{"refresh without client_id", func(t *testing.T) response {
			return postForm(t, c, u, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}})
		}, 400, "invalid_request"},
		{"refresh without refresh_token", func(t *testing.T) response {
			return postForm(t, c, u, url.Values{"grant_type": {"refresh_token"}, "client_id": {testClientID}})
		}, 400, "invalid_request"},
		{"password grant", func(t *testing.T) response {
			return postForm(t, c, u, url.Values{"grant_type": {"password"}, "client_id": {testClientID}})
		}, 400, "unsupported_grant_type"},
		{"unknown refresh token", func(t *testing.T) response { return refresh(t, c, s, Echo360, "rt_unknown") }, 400, "invalid_grant"},
		{"GET", func(t *testing.T) response { return send(t, c, http.MethodGet, u+"?"+cc.Encode(), "", "") }, 405, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantOAuthError(t, tc.send(t), tc.status, tc.code)
		})
	}
	wantCounts(t, s, counts{})
}

// TestEcho360Encoding: Echo360's article shows no request, its Swagger page
// sends query parameters, and RFC 6749 says form body. Each request shape
// meets each position of the switch.
func TestEcho360Encoding(t *testing.T) {
	s, c := start(t, Options{})
	u := s.URL() + PathEcho360Token
	cc := ccForm(testClientID, testClientSecret).Encode()
	requests := []struct {
		name string
		send func(t *testing.T) response
	}{
		{"form body", func(t *testing.T) response { return send(t, c, http.MethodPost, u, contentTypeForm, cc) }},
		{"form body with an unrelated query parameter", func(t *testing.T) response {
			return send(t, c, http.MethodPost, u+"?trace=1", contentTypeForm, cc)
		}},
		{"query, no body, no Content-Type", func(t *testing.T) response { return send(t, c, http.MethodPost, u+"?"+cc, "", "") }},
		{"query, no body, form Content-Type", func(t *testing.T) response { return send(t, c, http.MethodPost, u+"?"+cc, contentTypeForm, "") }},
		{"form body and the same query", func(t *testing.T) response { return send(t, c, http.MethodPost, u+"?"+cc, contentTypeForm, cc) }},
		{"body without Content-Type", func(t *testing.T) response { return send(t, c, http.MethodPost, u, "", cc) }},
		{"JSON body", func(t *testing.T) response { return postJSON(t, c, u, ccJSON(testClientID, testClientSecret)) }},
	}
	// want[i] is the status for requests[i] under each encoding.
	want := map[Echo360Encoding][]int{
		Echo360FormOnly:  {200, 200, 400, 400, 400, 400, 400},
		Echo360QueryOnly: {400, 400, 200, 200, 400, 400, 400},
		Echo360Either:    {200, 200, 200, 200, 200, 200, 400},
	}
	for _, enc := range []Echo360Encoding{Echo360FormOnly, Echo360QueryOnly, Echo360Either} {
		for i, req := range requests {
			t.Run(fmt.Sprintf("%v/%s", enc, req.name), func(t *testing.T) {
				s.SetEcho360Encoding(enc)
				r := req.send(t)
				if want[enc][i] == http.StatusOK {
					wantStatus(t, r, http.StatusOK)
					return
				}
				wantOAuthError(t, r, http.StatusBadRequest, "invalid_request")
			})
		}
	}
	t.Run("the default is form only", func(t *testing.T) {
		if got := New(Options{}).echo360Encoding; got != Echo360FormOnly {
			t.Errorf("default encoding: got %v, want %v", got, Echo360FormOnly)
		}
	})
	t.Run("query-only refreshes read the query too", func(t *testing.T) {
		s.SetEcho360Encoding(Echo360QueryOnly)
		q := url.Values{"grant_type": {"refresh_token"}, "client_id": {testClientID}, "refresh_token": {s.SeedRefreshToken(Echo360, testClientID)}}
		r := send(t, c, http.MethodPost, u+"?"+q.Encode(), "", "")
		wantStatus(t, r, http.StatusOK)
		if rec := s.LastRequest(PathEcho360Token); rec.Query["client_id"] != testClientID || rec.Params["client_id"] != testClientID {
			t.Errorf("recorded: got Query %v Params %v, want client_id %s in both", rec.Query, rec.Params, testClientID)
		}
	})
}
