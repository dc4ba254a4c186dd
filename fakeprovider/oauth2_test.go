package fakeprovider

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestOAuth2ClientCredentials(t *testing.T) {
	bothTransports(t, func(t *testing.T, tlsOn bool) {
		s, c := start(t, Options{TLS: tlsOn})
		wantPrefix := map[bool]string{false: "http://127.0.0.1:", true: "https://127.0.0.1:"}[tlsOn]
		if !strings.HasPrefix(s.URL(), wantPrefix) {
			t.Fatalf("URL: got %q, want prefix %q", s.URL(), wantPrefix)
		}
		v := ccForm(testClientID, testClientSecret)
		v.Set("scope", "read  write")
		v.Set("audience", "https://api.example")
		r := postForm(t, c, s.URL()+PathOAuth2Token, v)
		wantStatus(t, r, http.StatusOK)
		wantContentType(t, r, "application/json")
		wantFields(t, r, map[string]any{"token_type": "Bearer", "expires_in": 3600.0, "scope": "read write"})
		if rt := r.str(t, "refresh_token"); rt == "" {
			t.Errorf("refresh_token: got %q, want a token", rt)
		}
		if got := r.header.Get("Pragma"); got != "no-cache" {
			t.Errorf("Pragma: got %q, want no-cache", got)
		}
		type recorded struct {
			Audience, Method, ContentType, ClientID string
			SecretSent, HasAuthorization            bool
		}
		rec := s.LastRequest(PathOAuth2Token)
		got := recorded{rec.Params["audience"], rec.Method, rec.ContentType, rec.ClientID, rec.SecretSent, rec.HasAuthorization}
		want := recorded{"https://api.example", "POST", contentTypeForm, testClientID, true, false}
		if got != want {
			t.Errorf("recorded request: got %+v, want %+v", got, want)
		}
		checkWhoami(t, c, s, r.str(t, "access_token"), testClientID)
	})
}

func TestOAuth2BasicAuthSpecialCharacters(t *testing.T) {
	bothTransports(t, func(t *testing.T, tlsOn bool) {
		s, c := start(t, Options{TLS: tlsOn})
		id := "svc:acct/1 é+%"
		secret := "p@ss:w%rd+&=/ü "
		s.AddClient(id, secret)
		u := s.URL() + PathOAuth2Token
		form := url.Values{"grant_type": {"client_credentials"}}

		t.Run("form-url-encoded per RFC 6749 §2.3.1", func(t *testing.T) {
			r := postForm(t, c, u, form, withBasic(id, secret))
			wantStatus(t, r, http.StatusOK)
			rec := s.LastRequest(PathOAuth2Token)
			if !rec.BasicAuth || !rec.HasAuthorization || rec.ClientID != id || !rec.SecretSent {
				t.Errorf("recorded: got BasicAuth=%v HasAuthorization=%v ClientID=%q SecretSent=%v, want true true %q true",
					rec.BasicAuth, rec.HasAuthorization, rec.ClientID, rec.SecretSent, id)
			}
			checkWhoami(t, c, s, r.str(t, "access_token"), id)
		})
		t.Run("not encoded does not match", func(t *testing.T) {
			raw := "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
			r := postForm(t, c, u, form, withHeader("Authorization", raw))
			wantOAuthError(t, r, http.StatusUnauthorized, "invalid_client")
			if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Basic") {
				t.Errorf("WWW-Authenticate: got %q, want Basic …", got)
			}
		})
		t.Run("Go's SetBasicAuth is fine for plain credentials", func(t *testing.T) {
			r := send(t, c, http.MethodPost, u, contentTypeForm, form.Encode(), func(r *http.Request) {
				r.SetBasicAuth(testClientID, testClientSecret)
			})
			wantStatus(t, r, http.StatusOK)
		})
	})
}

func TestOAuth2Errors(t *testing.T) {
	s, c := start(t, Options{})
	u := s.URL() + PathOAuth2Token
	cc := ccForm(testClientID, testClientSecret).Encode()
	jsonCC := `{"grant_type":"client_credentials","client_id":"client-a","client_secret":"s3cret-A"}`
	cases := []struct {
		name, method, url, ctype, body string
		opts                           []reqOpt
		status                         int
		code                           string
		wwwAuth                        bool
	}{
		{"GET", http.MethodGet, u, "", "", nil, 405, "invalid_request", false},
		{"JSON body", http.MethodPost, u, contentTypeJSON, jsonCC, nil, 400, "invalid_request", false},
		{"no content type", http.MethodPost, u, "", cc, nil, 400, "invalid_request", false},
		{"text/plain", http.MethodPost, u, "text/plain", cc, nil, 400, "invalid_request", false},
		{"Basic and body secret", http.MethodPost, u, contentTypeForm, cc, []reqOpt{withBasic(testClientID, testClientSecret)}, 400, "invalid_request", false},
		{"Basic and other body client_id", http.MethodPost, u, contentTypeForm, "grant_type=client_credentials&client_id=x", []reqOpt{withBasic(testClientID, testClientSecret)}, 400, "invalid_request", false},
		{"no client auth", http.MethodPost, u, contentTypeForm, "grant_type=client_credentials", nil, 401, "invalid_client", false},
		{"client_id without secret", http.MethodPost, u, contentTypeForm, "grant_type=client_credentials&client_id=client-a", nil, 401, "invalid_client", false},
		{"wrong body secret", http.MethodPost, u, contentTypeForm, ccForm(testClientID, "nope").Encode(), nil, 401, "invalid_client", false},
		{"unknown client", http.MethodPost, u, contentTypeForm, ccForm("ghost", testClientSecret).Encode(), nil, 401, "invalid_client", false},
		{"wrong Basic secret", http.MethodPost, u, contentTypeForm, "grant_type=client_credentials", []reqOpt{withBasic(testClientID, "nope")}, 401, "invalid_client", true},
		{"Bearer authorization", http.MethodPost, u, contentTypeForm, "grant_type=client_credentials", []reqOpt{withHeader("Authorization", "Bearer x")}, 401, "invalid_client", true},
		{"missing grant_type", http.MethodPost, u, contentTypeForm, "client_id=client-a&client_secret=s3cret-A", nil, 400, "invalid_request", false},
		{"password grant", http.MethodPost, u, contentTypeForm, "grant_type=password&client_id=client-a&client_secret=s3cret-A", nil, 400, "unsupported_grant_type", false},
		{"repeated parameter", http.MethodPost, u, contentTypeForm, cc + "&scope=a&scope=b", nil, 400, "invalid_request", false},
		{"secret in URL", http.MethodPost, u + "?client_secret=s3cret-A", contentTypeForm, "grant_type=client_credentials&client_id=client-a", nil, 400, "invalid_request", false},
		{"refresh without token", http.MethodPost, u, contentTypeForm, "grant_type=refresh_token&client_id=client-a&client_secret=s3cret-A", nil, 400, "invalid_request", false},
		{"refresh unknown token", http.MethodPost, u, contentTypeForm, "grant_type=refresh_token&refresh_token=rt_nope&client_id=client-a&client_secret=s3cret-A", nil, 400, "invalid_grant", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := send(t, c, tc.method, tc.url, tc.ctype, tc.body, tc.opts...)
			wantOAuthError(t, r, tc.status, tc.code)
			if got := r.header.Get("WWW-Authenticate"); (got != "") != tc.wwwAuth {
				t.Errorf("WWW-Authenticate: got %q, want present=%v", got, tc.wwwAuth)
			}
		})
	}
	wantCounts(t, s, counts{})
	if got := s.TotalCalls(); got != len(cases) {
		t.Errorf("TotalCalls: got %d, want %d", got, len(cases))
	}
	if got := s.Calls(PathOAuth2Token); got != len(cases) {
		t.Errorf("Calls(%s): got %d, want %d", PathOAuth2Token, got, len(cases))
	}
}

func TestOAuth2RefreshRotation(t *testing.T) {
	bothTransports(t, func(t *testing.T, tlsOn bool) {
		s, c := start(t, Options{TLS: tlsOn})
		u := s.URL() + PathOAuth2Token
		cc := ccForm(testClientID, testClientSecret)
		cc.Set("scope", "read write")
		first := postForm(t, c, u, cc)
		wantStatus(t, first, http.StatusOK)
		rt1 := first.str(t, "refresh_token")
		withScope := func(rt, scope string, opts ...reqOpt) response {
			v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "scope": {scope}}
			if len(opts) == 0 {
				v.Set("client_id", testClientID)
				v.Set("client_secret", testClientSecret)
			}
			return postForm(t, c, u, v, opts...)
		}

		// A refresh rotates both tokens and keeps the scope.
		second := refresh(t, c, s, OAuth2, rt1)
		wantStatus(t, second, http.StatusOK)
		rt2, at2 := second.str(t, "refresh_token"), second.str(t, "access_token")
		if rt2 == rt1 || at2 == first.str(t, "access_token") {
			t.Fatalf("rotation: got refresh %q access %q, want both new", rt2, at2)
		}
		wantFields(t, second, map[string]any{"scope": "read write"})
		checkWhoami(t, c, s, at2, testClientID)

		// The old refresh token is single-use.
		wantOAuthError(t, refresh(t, c, s, OAuth2, rt1), 400, "invalid_grant")
		wantCounts(t, s, counts{ClientCredentials: 1, RefreshToken: 1, Reuses: 1})
		// Another client cannot redeem rt2, and trying does not consume it.
		wantOAuthError(t, postForm(t, c, u, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt2}}, withBasic(otherClientID, otherSecret)), 400, "invalid_grant")
		// Refresh needs client authentication (§6).
		wantOAuthError(t, postForm(t, c, u, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt2}}), 401, "invalid_client")
		// Scope may narrow, not widen.
		wantOAuthError(t, withScope(rt2, "admin", withBasic(testClientID, testClientSecret)), 400, "invalid_scope")
		third := withScope(rt2, "read")
		wantStatus(t, third, http.StatusOK)
		wantFields(t, third, map[string]any{"scope": "read"})
		wantCounts(t, s, counts{ClientCredentials: 1, RefreshToken: 2, Reuses: 1})

		// A seeded refresh token works like an issued one; one seeded for
		// another dialect is unknown here.
		wantStatus(t, refresh(t, c, s, OAuth2, s.SeedRefreshToken(OAuth2, testClientID)), http.StatusOK)
		wantOAuthError(t, refresh(t, c, s, OAuth2, s.SeedRefreshToken(Echo360, testClientID)), 400, "invalid_grant")
	})
}
