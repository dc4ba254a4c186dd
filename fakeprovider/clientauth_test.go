package fakeprovider

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestClientAuthFailure drives every dialect with a client secret, through
// every position of SetClientAuthFailure, with a wrong secret.
func TestClientAuthFailure(t *testing.T) {
	s, c := start(t, Options{})
	badCC := ccForm(testClientID, "nope")
	requests := []struct {
		name    string
		dialect Dialect
		basic   bool
		send    func(t *testing.T) response
	}{
		{"oauth2 body", OAuth2, false, func(t *testing.T) response { return postForm(t, c, s.URL()+PathOAuth2Token, badCC) }},
		{"oauth2 Basic", OAuth2, true, func(t *testing.T) response {
			return postForm(t, c, s.URL()+PathOAuth2Token, url.Values{"grant_type": {"client_credentials"}}, withBasic(testClientID, "nope"))
		}},
		{"oauth2_json", OAuth2JSON, false, func(t *testing.T) response {
			return postJSON(t, c, s.URL()+PathOAuth2JSONToken, ccJSON(testClientID, "nope"))
		}},
		{"echo360", Echo360, false, func(t *testing.T) response { return postForm(t, c, s.URL()+PathEcho360Token, badCC) }},
		{"endorsed", Endorsed, false, func(t *testing.T) response {
			return postJSON(t, c, s.URL()+PathEndorsedToken, ccJSON(testClientID, "nope"))
		}},
	}
	for _, want := range []struct {
		f      ClientAuthFailure
		status int
		code   string // "" for none
	}{
		{ClientAuth401InvalidClient, http.StatusUnauthorized, "invalid_client"},
		{ClientAuth400InvalidClient, http.StatusBadRequest, "invalid_client"},
		{ClientAuthBare400, http.StatusBadRequest, ""},
	} {
		for _, req := range requests {
			t.Run(fmt.Sprintf("%v/%s", want.f, req.name), func(t *testing.T) {
				s.SetClientAuthFailure(req.dialect, want.f)
				defer s.SetClientAuthFailure(req.dialect, ClientAuth401InvalidClient)
				r := req.send(t)
				switch {
				case req.dialect == Endorsed:
					wantEndorsedError(t, r, want.status, want.code)
				case want.code != "":
					wantOAuthError(t, r, want.status, want.code)
				default:
					wantStatus(t, r, want.status)
					wantFields(t, r, map[string]any{"error": nil, "error_description": nil})
					if msg, _ := r.json(t)["message"].(string); msg == "" {
						t.Errorf("message: got %s, want a message", r.body)
					}
				}
				wantBasic := req.basic && want.status == http.StatusUnauthorized
				if got := r.header.Get("WWW-Authenticate"); strings.HasPrefix(got, "Basic") != wantBasic {
					t.Errorf("WWW-Authenticate: got %q, want Basic challenge %v", got, wantBasic)
				}
			})
		}
	}
	t.Run("the setting is per dialect", func(t *testing.T) {
		s.SetClientAuthFailure(Endorsed, ClientAuthBare400)
		defer s.SetClientAuthFailure(Endorsed, ClientAuth401InvalidClient)
		wantOAuthError(t, requests[0].send(t), http.StatusUnauthorized, "invalid_client")
		wantEndorsedError(t, requests[4].send(t), http.StatusBadRequest, "")
	})
	wantCounts(t, s, counts{})
}
