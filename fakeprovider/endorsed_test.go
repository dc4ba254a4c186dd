package fakeprovider

import (
	"fmt"
	"maps"
	"net/http"
	"testing"
)

func TestEndorsed(t *testing.T) {
	bothTransports(t, func(t *testing.T, tlsOn bool) {
		s, c := start(t, Options{TLS: tlsOn})
		u := s.URL() + PathEndorsedToken
		with := func(k string, v any) map[string]any {
			m := maps.Clone(ccJSON(testClientID, testClientSecret))
			m[k] = v
			return m
		}
		form := func(scope string) string {
			v := ccForm(testClientID, testClientSecret)
			if scope != "" {
				v.Set("scope", scope)
			}
			return v.Encode()
		}
		for _, tc := range []struct {
			name      string
			send      func(t *testing.T) response
			wantScope string
		}{
			{"JSON, scope an array", func(t *testing.T) response { return postJSON(t, c, u, with("scope", []string{"all:read"})) }, "[all:read]"},
			{"JSON, default scope", func(t *testing.T) response { return postJSON(t, c, u, ccJSON(testClientID, testClientSecret)) }, "[all:read all:write]"},
			{"JSON, empty scope array", func(t *testing.T) response { return postJSON(t, c, u, with("scope", []string{})) }, "[all:read all:write]"},
			{"form, scope space-delimited", func(t *testing.T) response {
				return send(t, c, http.MethodPost, u, contentTypeForm, form("all:write all:read"))
			}, "[all:write all:read]"},
			{"form, duplicate scope", func(t *testing.T) response {
				return send(t, c, http.MethodPost, u, contentTypeForm, form("all:read all:read"))
			}, "[all:read]"},
			{"no Content-Type is a form, the documented default", func(t *testing.T) response {
				return send(t, c, http.MethodPost, u, "", form(""))
			}, "[all:read all:write]"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := tc.send(t)
				wantStatus(t, r, http.StatusOK)
				wantFields(t, r, map[string]any{"is_error": false, "token_type": "Bearer", "expires_in": "1209600"})
				if got := fmt.Sprint(r.json(t)["scope"]); got != tc.wantScope {
					t.Errorf("scope: got %s, want %s", got, tc.wantScope)
				}
				checkWhoami(t, c, s, r.str(t, "access_token"), testClientID)
			})
		}
		t.Run("the request is recorded with the scope as JSON", func(t *testing.T) {
			postJSON(t, c, u, with("scope", []string{"all:read"}))
			if rec := s.LastRequest(PathEndorsedToken); rec.Params["scope"] != `["all:read"]` || rec.JSON["scope"] == nil {
				t.Errorf("recorded: got Params[scope] %q JSON[scope] %v, want %q and the array", rec.Params["scope"], rec.JSON["scope"], `["all:read"]`)
			}
		})
	})
}

func TestEndorsedErrors(t *testing.T) {
	s, c := start(t, Options{})
	u := s.URL() + PathEndorsedToken
	with := func(k string, v any) map[string]any {
		m := maps.Clone(ccJSON(testClientID, testClientSecret))
		m[k] = v
		return m
	}
	badForm := ccForm(testClientID, testClientSecret)
	badForm.Set("scope", "all:read admin")
	for _, tc := range []struct {
		name   string
		send   func(t *testing.T) response
		status int
		code   string
	}{
		{"JSON scope as a string", func(t *testing.T) response { return postJSON(t, c, u, with("scope", "all:read all:write")) }, 400, "invalid_request"},
		{"JSON scope with a number", func(t *testing.T) response { return postJSON(t, c, u, with("scope", []any{"all:read", 7})) }, 400, "invalid_request"},
		{"JSON unsupported scope", func(t *testing.T) response { return postJSON(t, c, u, with("scope", []string{"admin"})) }, 400, "invalid_request"},
		{"form unsupported scope", func(t *testing.T) response { return postForm(t, c, u, badForm) }, 400, "invalid_request"},
		{"password grant", func(t *testing.T) response { return postJSON(t, c, u, with("grant_type", "password")) }, 400, "invalid_request"},
		{"empty secret", func(t *testing.T) response { return postJSON(t, c, u, with("client_secret", "")) }, 400, "invalid_request"},
		{"wrong secret", func(t *testing.T) response { return postJSON(t, c, u, with("client_secret", "nope")) }, 401, "invalid_client"},
		{"text/plain", func(t *testing.T) response {
			return send(t, c, http.MethodPost, u, "text/plain", ccForm(testClientID, testClientSecret).Encode())
		}, 400, "invalid_request"},
		{"invalid JSON", func(t *testing.T) response { return send(t, c, http.MethodPost, u, contentTypeJSON, "{") }, 400, "invalid_request"},
		{"GET", func(t *testing.T) response { return send(t, c, http.MethodGet, u, "", "") }, 405, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantEndorsedError(t, tc.send(t), tc.status, tc.code)
		})
	}
	wantCounts(t, s, counts{})
}

// wantEndorsedError checks an Endorsed error answer; code "" means no
// "error" member.
func wantEndorsedError(t *testing.T, r response, status int, code string) {
	t.Helper()
	wantStatus(t, r, status)
	want := map[string]any{"is_error": true, "error": nil}
	if code != "" {
		want["error"] = code
	}
	wantFields(t, r, want)
	if msg, _ := r.json(t)["message"].(string); msg == "" {
		t.Errorf("message: got %s, want a message", r.body)
	}
}
