package fakeprovider

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestAPIVideo(t *testing.T) {
	bothTransports(t, func(t *testing.T, tlsOn bool) {
		s, c := start(t, Options{TLS: tlsOn})

		first := mint(t, c, s, APIVideo)
		wantStatus(t, first, http.StatusOK)
		wantFields(t, first, map[string]any{"token_type": "Bearer", "expires_in": 3600.0})
		if rec := s.LastRequest(PathAPIVideoAuth); !rec.SecretSent || rec.JSON["apiKey"] != testAPIKey {
			t.Errorf("recorded: got SecretSent %v, apiKey %v; want true, the key", rec.SecretSent, rec.JSON["apiKey"] == testAPIKey)
		}
		w := whoami(t, c, s, first.str(t, "access_token"))
		if w.status != http.StatusOK || strings.Contains(string(w.body), testAPIKey) {
			t.Errorf("whoami: got %d %s, want 200 without the key", w.status, w.body)
		}
		rt1 := first.str(t, "refresh_token")

		second := refresh(t, c, s, APIVideo, rt1)
		wantStatus(t, second, http.StatusOK)
		rt2 := second.str(t, "refresh_token")
		if rt2 == rt1 {
			t.Fatalf("refresh_token: got the old one back, want a new one")
		}
		if s.LastRequest(PathAPIVideoRefresh).SecretSent {
			t.Errorf("SecretSent: got true, want false on a refresh that sent no key")
		}
		for _, at := range []string{first.str(t, "access_token"), second.str(t, "access_token")} {
			if !s.Valid(at) {
				t.Errorf("Valid: got false, want true: access tokens stay valid until they expire")
			}
		}

		// A reused refresh token is refused with problem+json 400.
		wantProblem(t, refresh(t, c, s, APIVideo, rt1), http.StatusBadRequest, "The refresh token is either expired or invalid.")
		wantCounts(t, s, counts{APIKey: 1, RefreshToken: 1, Reuses: 1})

		// rt2 survived the reuse, and a seeded token works too.
		wantStatus(t, refresh(t, c, s, APIVideo, rt2), http.StatusOK)
		wantStatus(t, refresh(t, c, s, APIVideo, s.SeedRefreshToken(APIVideo, testAPIKey)), http.StatusOK)
		wantCounts(t, s, counts{APIKey: 1, RefreshToken: 3, Reuses: 1})
	})
}

func TestAPIVideoErrors(t *testing.T) {
	s, c := start(t, Options{})
	auth, ref := s.URL()+PathAPIVideoAuth, s.URL()+PathAPIVideoRefresh
	for _, tc := range []struct {
		name     string
		send     func(t *testing.T) response
		status   int
		titleHas string
	}{
		{"unknown refresh token", func(t *testing.T) response { return refresh(t, c, s, APIVideo, "rt_unknown") }, 400, "expired or invalid"},
		{"refresh_token instead of refreshToken", func(t *testing.T) response {
			return postJSON(t, c, ref, map[string]string{"refresh_token": "x"})
		}, 400, "required"},
		{"wrong key", func(t *testing.T) response { return postJSON(t, c, auth, map[string]string{"apiKey": "wrong"}) }, 401, "API key"},
		{"api_key instead of apiKey", func(t *testing.T) response { return postJSON(t, c, auth, map[string]string{"api_key": testAPIKey}) }, 400, "required"},
		{"number key", func(t *testing.T) response { return postJSON(t, c, auth, map[string]any{"apiKey": 42}) }, 400, "string"},
		{"form body", func(t *testing.T) response { return postForm(t, c, auth, url.Values{"apiKey": {testAPIKey}}) }, 400, "Content-Type"},
		{"no Content-Type", func(t *testing.T) response {
			return send(t, c, http.MethodPost, auth, "", `{"apiKey":"`+testAPIKey+`"}`)
		}, 400, "Content-Type"},
		{"invalid JSON", func(t *testing.T) response { return send(t, c, http.MethodPost, auth, contentTypeJSON, `{"apiKey":`) }, 400, "JSON"},
		{"GET", func(t *testing.T) response { return send(t, c, http.MethodGet, auth, "", "") }, 405, "method"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, tc.send(t), tc.status, tc.titleHas)
		})
	}
	t.Run("the key is not echoed", func(t *testing.T) {
		if p := postJSON(t, c, auth, map[string]string{"apiKey": "wrong-key-xyz"}); strings.Contains(string(p.body), "wrong-key-xyz") {
			t.Errorf("body: got %s, want no trace of the key", p.body)
		}
	})
	wantCounts(t, s, counts{})
}

// wantProblem checks an api.video error answer.
func wantProblem(t *testing.T, r response, status int, titleHas string) {
	t.Helper()
	wantStatus(t, r, status)
	wantContentType(t, r, "application/problem+json")
	m := r.json(t)
	typ, _ := m["type"].(string)
	title, _ := m["title"].(string)
	if !strings.HasPrefix(typ, "https://docs.api.video/reference/") || m["status"] != float64(status) || !strings.Contains(title, titleHas) {
		t.Errorf("problem: got %s, want type under https://docs.api.video/reference/, status %d and a title containing %q", r.body, status, titleHas)
	}
}
