package fakeprovider

import (
	"net/http"
	"testing"
)

func TestOAuth2JSON(t *testing.T) {
	bothTransports(t, func(t *testing.T, tlsOn bool) {
		s, c := start(t, Options{TLS: tlsOn})
		u := s.URL() + PathOAuth2JSONToken
		good := `{"client_id":"client-a","client_secret":"s3cret-A","grant_type":"client_credentials"}`

		// The document says GET; its examples POST. Both work.
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			t.Run(method, func(t *testing.T) {
				r := send(t, c, method, u, "application/json; charset=utf-8", good)
				wantStatus(t, r, http.StatusOK)
				wantFields(t, r, map[string]any{"token_type": "Bearer", "expires_in": 3600.0, "refresh_token": nil})
				checkWhoami(t, c, s, r.str(t, "access_token"), testClientID)
				rec := s.LastRequest(PathOAuth2JSONToken)
				if rec.JSON["client_id"] != testClientID || rec.Params["grant_type"] != "client_credentials" || !rec.SecretSent {
					t.Errorf("recorded: got JSON client_id %v, grant_type %q, SecretSent %v; want %s, client_credentials, true",
						rec.JSON["client_id"], rec.Params["grant_type"], rec.SecretSent, testClientID)
				}
			})
		}
		wantCounts(t, s, counts{ClientCredentials: 2})
	})
}

func TestOAuth2JSONErrors(t *testing.T) {
	s, c := start(t, Options{})
	u := s.URL() + PathOAuth2JSONToken
	good := `{"client_id":"client-a","client_secret":"s3cret-A","grant_type":"client_credentials"}`
	for _, tc := range []struct {
		name, method, ctype, body string
		status                    int
		code                      string
	}{
		{"form body", http.MethodPost, contentTypeForm, ccForm(testClientID, testClientSecret).Encode(), 400, "invalid_request"},
		{"no body", http.MethodGet, "", "", 400, "invalid_request"},
		{"invalid JSON", http.MethodPost, contentTypeJSON, `{"client_id":`, 400, "invalid_request"},
		{"JSON array", http.MethodPost, contentTypeJSON, `[]`, 400, "invalid_request"},
		{"trailing data", http.MethodPost, contentTypeJSON, good + `{}`, 400, "invalid_request"},
		{"missing grant_type", http.MethodPost, contentTypeJSON, `{"client_id":"client-a","client_secret":"s3cret-A"}`, 400, "invalid_request"},
		{"missing secret", http.MethodPost, contentTypeJSON, `{"client_id":"client-a","grant_type":"client_credentials"}`, 400, "invalid_request"},
		{"number secret", http.MethodPost, contentTypeJSON, `{"client_id":"client-a","client_secret":1,"grant_type":"client_credentials"}`, 400, "invalid_request"},
		{"other grant", http.MethodPost, contentTypeJSON, `{"client_id":"client-a","client_secret":"s3cret-A","grant_type":"password"}`, 400, "unsupported_grant_type"},
		{"refresh grant without credentials", http.MethodPost, contentTypeJSON, `{"grant_type":"refresh_token","refresh_token":"rt_x"}`, 400, "unsupported_grant_type"},
		{"wrong secret", http.MethodPost, contentTypeJSON, `{"client_id":"client-a","client_secret":"nope","grant_type":"client_credentials"}`, 401, "invalid_client"},
		{"PUT", http.MethodPut, contentTypeJSON, good, 405, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantOAuthError(t, send(t, c, tc.method, u, tc.ctype, tc.body), tc.status, tc.code)
		})
	}
	wantCounts(t, s, counts{})
}

// TestOAuth2JSONRefreshTokens: the document says to call the token endpoint
// again when the token expires. Whether or not the endpoint hands out a
// refresh token, it never redeems one.
func TestOAuth2JSONRefreshTokens(t *testing.T) {
	for _, on := range []bool{false, true} {
		name := map[bool]string{false: "off: no refresh token", true: "on: a refresh token that cannot be redeemed"}[on]
		t.Run(name, func(t *testing.T) {
			s, c := start(t, Options{})
			s.SetOAuth2JSONRefreshTokens(on)
			r := mint(t, c, s, OAuth2JSON)
			wantStatus(t, r, http.StatusOK)
			rt, issued := r.json(t)["refresh_token"].(string)
			if issued != on {
				t.Fatalf("refresh_token issued: got %v (%s), want %v", issued, r.body, on)
			}
			if !on {
				rt = s.SeedRefreshToken(OAuth2JSON, testClientID)
			}
			wantOAuthError(t, refresh(t, c, s, OAuth2JSON, rt), http.StatusBadRequest, "unsupported_grant_type")
			wantCounts(t, s, counts{ClientCredentials: 1})
			// A client that tries the same token again reuses a refused token.
			wantOAuthError(t, refresh(t, c, s, OAuth2JSON, rt), http.StatusBadRequest, "unsupported_grant_type")
			wantCounts(t, s, counts{ClientCredentials: 1, Reuses: 1})
			// The fallback, client credentials, works.
			wantStatus(t, mint(t, c, s, OAuth2JSON), http.StatusOK)
		})
	}
}
