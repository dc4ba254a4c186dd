package fakeprovider

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Test credentials; the odd characters exercise encoding paths.
const (
	testClientID     = "client-a"
	testClientSecret = "s3cret-A"
	otherClientID    = "client-b"
	otherSecret      = "s3cret-B"
	testAPIKey       = "apikey-0123456789"
)

// start runs a server for the test and returns it with a client that trusts
// it. Everything is torn down by t.Cleanup.
func start(t *testing.T, opts Options) (*Server, *http.Client) {
	t.Helper()
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	s := New(opts)
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	s.AddClient(testClientID, testClientSecret)
	s.AddClient(otherClientID, otherSecret)
	s.AddAPIKey(testAPIKey)
	tr := &http.Transport{}
	if opts.TLS {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(s.CAPEM())) {
			t.Fatal("CAPEM does not parse")
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		s.Close()
	})
	return s, c
}

// bothTransports runs f over plain HTTP and over HTTPS.
func bothTransports(t *testing.T, f func(t *testing.T, tlsOn bool)) {
	for _, tlsOn := range []bool{false, true} {
		name := "http"
		if tlsOn {
			name = "https"
		}
		t.Run(name, func(t *testing.T) { f(t, tlsOn) })
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object (%d %s): %v", r.status, r.body, err)
	}
	return m
}

// str returns member k of the JSON body as a string, failing if it is not one.
func (r response) str(t *testing.T, k string) string {
	t.Helper()
	v, ok := r.json(t)[k].(string)
	if !ok {
		t.Fatalf("%s is not a string in %s", k, r.body)
	}
	return v
}

type reqOpt func(*http.Request)

func withHeader(k, v string) reqOpt { return func(r *http.Request) { r.Header.Set(k, v) } }

func withBasic(id, secret string) reqOpt {
	return withHeader("Authorization", "Basic "+base64.StdEncoding.EncodeToString(
		[]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret))))
}

func send(t *testing.T, c *http.Client, method, u, contentType, body string, opts ...reqOpt) response {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s %s: %v", method, u, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func postForm(t *testing.T, c *http.Client, u string, v url.Values, opts ...reqOpt) response {
	t.Helper()
	return send(t, c, http.MethodPost, u, contentTypeForm, v.Encode(), opts...)
}

func postJSON(t *testing.T, c *http.Client, u string, v any, opts ...reqOpt) response {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return send(t, c, http.MethodPost, u, contentTypeJSON, string(b), opts...)
}

func whoami(t *testing.T, c *http.Client, s *Server, token string) response {
	t.Helper()
	return send(t, c, http.MethodGet, s.URL()+PathWhoami, "", "", withHeader("Authorization", "Bearer "+token))
}

// wantStatus checks the status and, for token endpoints, the headers every
// answer must carry.
func wantStatus(t *testing.T, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
	if got := r.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
}

// wantOAuthError checks an RFC 6749 §5.2 error answer.
func wantOAuthError(t *testing.T, r response, status int, code string) {
	t.Helper()
	wantStatus(t, r, status)
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	m := r.json(t)
	if m["error"] != code {
		t.Errorf("error = %v, want %s (body %s)", m["error"], code, r.body)
	}
	if d, _ := m["error_description"].(string); d == "" {
		t.Errorf("no error_description in %s", r.body)
	}
}

func ccForm(id, secret string) url.Values {
	return url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}
}

// TestDialects issues a token in every dialect over HTTP and HTTPS, checks
// the documented response shape, and proves the token at /api/whoami.
func TestDialects(t *testing.T) {
	bothTransports(t, func(t *testing.T, tlsOn bool) {
		s, c := start(t, Options{TLS: tlsOn})
		if !strings.HasPrefix(s.URL(), map[bool]string{false: "http://127.0.0.1:", true: "https://127.0.0.1:"}[tlsOn]) {
			t.Fatalf("URL = %q", s.URL())
		}

		t.Run("oauth2", func(t *testing.T) {
			v := ccForm(testClientID, testClientSecret)
			v.Set("scope", "read  write")
			v.Set("audience", "https://api.example")
			r := postForm(t, c, s.URL()+PathOAuth2Token, v)
			wantStatus(t, r, http.StatusOK)
			m := r.json(t)
			if m["token_type"] != "Bearer" || m["expires_in"] != 3600.0 || m["scope"] != "read write" {
				t.Errorf("body = %s", r.body)
			}
			if rt, _ := m["refresh_token"].(string); rt == "" {
				t.Errorf("no refresh_token in %s", r.body)
			}
			if r.header.Get("Pragma") != "no-cache" || r.header.Get("Content-Type") != "application/json" {
				t.Errorf("headers = %v", r.header)
			}
			rec := s.LastRequest(PathOAuth2Token)
			if rec.Params["audience"] != "https://api.example" || rec.Method != "POST" || rec.ContentType != contentTypeForm || !rec.SecretSent || rec.HasAuthorization || rec.ClientID != testClientID {
				t.Errorf("recorded %+v", rec)
			}
			checkWhoami(t, c, s, r.str(t, "access_token"), testClientID)
		})

		t.Run("oauth2_json", func(t *testing.T) {
			r := postJSON(t, c, s.URL()+PathOAuth2JSONToken, map[string]string{
				"client_id": testClientID, "client_secret": testClientSecret, "grant_type": "client_credentials",
			})
			wantStatus(t, r, http.StatusOK)
			m := r.json(t)
			if m["token_type"] != "Bearer" || m["expires_in"] != 3600.0 {
				t.Errorf("body = %s", r.body)
			}
			if _, ok := m["refresh_token"]; ok {
				t.Errorf("oauth2_json issued a refresh token: %s", r.body)
			}
			checkWhoami(t, c, s, r.str(t, "access_token"), testClientID)
		})

		t.Run("echo360", func(t *testing.T) {
			r := postForm(t, c, s.URL()+PathEcho360Token, ccForm(testClientID, testClientSecret))
			wantStatus(t, r, http.StatusOK)
			m := r.json(t)
			if m["token_type"] != "bearer" || m["expires_in"] != 3600.0 {
				t.Errorf("body = %s", r.body)
			}
			if rt, _ := m["refresh_token"].(string); rt == "" {
				t.Errorf("no refresh_token in %s", r.body)
			}
			checkWhoami(t, c, s, r.str(t, "access_token"), testClientID)
		})

		t.Run("apivideo", func(t *testing.T) {
			r := postJSON(t, c, s.URL()+PathAPIVideoAuth, map[string]string{"apiKey": testAPIKey})
			wantStatus(t, r, http.StatusOK)
			m := r.json(t)
			if m["token_type"] != "Bearer" || m["expires_in"] != 3600.0 {
				t.Errorf("body = %s", r.body)
			}
			if rt, _ := m["refresh_token"].(string); rt == "" {
				t.Errorf("no refresh_token in %s", r.body)
			}
			w := whoami(t, c, s, r.str(t, "access_token"))
			if w.status != http.StatusOK || strings.Contains(string(w.body), testAPIKey) {
				t.Errorf("whoami = %d %s (must succeed without revealing the key)", w.status, w.body)
			}
		})

		t.Run("endorsed", func(t *testing.T) {
			r := postJSON(t, c, s.URL()+PathEndorsedToken, map[string]any{
				"client_id": testClientID, "client_secret": testClientSecret, "grant_type": "client_credentials",
				"scope": []string{"all:read", "all:write"},
			})
			wantStatus(t, r, http.StatusOK)
			m := r.json(t)
			if m["is_error"] != false || m["token_type"] != "Bearer" || m["expires_in"] != "1209600" {
				t.Errorf("body = %s", r.body)
			}
			if fmt.Sprint(m["scope"]) != "[all:read all:write]" {
				t.Errorf("scope = %v", m["scope"])
			}
			checkWhoami(t, c, s, r.str(t, "access_token"), testClientID)
		})
	})
}

func checkWhoami(t *testing.T, c *http.Client, s *Server, token, client string) {
	t.Helper()
	if !s.Valid(token) {
		t.Errorf("Valid(%q) = false for a fresh token", token)
	}
	w := whoami(t, c, s, token)
	if w.status != http.StatusOK {
		t.Fatalf("whoami = %d %s", w.status, w.body)
	}
	m := w.json(t)
	if m["ok"] != true || m["client"] != client {
		t.Errorf("whoami body = %s", w.body)
	}
}

func TestOAuth2BasicAuthSpecialCharacters(t *testing.T) {
	bothTransports(t, func(t *testing.T, tlsOn bool) {
		s, c := start(t, Options{TLS: tlsOn})
		id := "svc:acct/1 é+%"
		secret := "p@ss:w%rd+&=/ü "
		s.AddClient(id, secret)
		u := s.URL() + PathOAuth2Token
		form := url.Values{"grant_type": {"client_credentials"}}

		r := postForm(t, c, u, form, withBasic(id, secret))
		wantStatus(t, r, http.StatusOK)
		rec := s.LastRequest(PathOAuth2Token)
		if !rec.BasicAuth || !rec.HasAuthorization || rec.ClientID != id || !rec.SecretSent {
			t.Errorf("recorded %+v", rec)
		}
		checkWhoami(t, c, s, r.str(t, "access_token"), id)

		// Without the §2.3.1 form-url-encoding the credentials do not match.
		raw := "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
		r = postForm(t, c, u, form, withHeader("Authorization", raw))
		wantOAuthError(t, r, http.StatusUnauthorized, "invalid_client")
		if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
		}

		// Go's SetBasicAuth does not encode; fine for plain ids and secrets.
		plain := send(t, c, http.MethodPost, u, contentTypeForm, form.Encode(), func(r *http.Request) {
			r.SetBasicAuth(testClientID, testClientSecret)
		})
		wantStatus(t, plain, http.StatusOK)
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
			if got := r.header.Get("WWW-Authenticate") != ""; got != tc.wwwAuth {
				t.Errorf("WWW-Authenticate = %q, want present=%v", r.header.Get("WWW-Authenticate"), tc.wwwAuth)
			}
		})
	}
	if s.Grants("client_credentials")+s.Grants("refresh_token") != 0 {
		t.Errorf("an error case issued a token")
	}
	if s.TotalCalls() != len(cases) || s.Calls(PathOAuth2Token) != len(cases) {
		t.Errorf("TotalCalls = %d, Calls = %d, want %d", s.TotalCalls(), s.Calls(PathOAuth2Token), len(cases))
	}
	if s.RefreshReuses() != 0 {
		t.Errorf("an unknown refresh token counted as a reuse")
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

		refresh := func(rt string, opts ...reqOpt) response {
			return postForm(t, c, u, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, opts...)
		}
		second := refresh(rt1, withBasic(testClientID, testClientSecret))
		wantStatus(t, second, http.StatusOK)
		rt2 := second.str(t, "refresh_token")
		at2 := second.str(t, "access_token")
		if rt2 == rt1 || at2 == first.str(t, "access_token") {
			t.Fatal("refresh did not rotate the tokens")
		}
		if second.str(t, "scope") != "read write" {
			t.Errorf("refresh lost the scope: %s", second.body)
		}
		checkWhoami(t, c, s, at2, testClientID)

		// The old refresh token is single-use.
		wantOAuthError(t, refresh(rt1, withBasic(testClientID, testClientSecret)), 400, "invalid_grant")
		if s.RefreshReuses() != 1 {
			t.Errorf("RefreshReuses = %d, want 1", s.RefreshReuses())
		}
		// Another client cannot redeem it, and trying does not consume it.
		wantOAuthError(t, refresh(rt2, withBasic(otherClientID, otherSecret)), 400, "invalid_grant")
		// Refresh needs client authentication (§6).
		wantOAuthError(t, refresh(rt2), 401, "invalid_client")
		// Scope may narrow, not widen.
		widen := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt2}, "scope": {"admin"}}
		wantOAuthError(t, postForm(t, c, u, widen, withBasic(testClientID, testClientSecret)), 400, "invalid_scope")
		narrow := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt2}, "scope": {"read"},
			"client_id": {testClientID}, "client_secret": {testClientSecret}}
		third := postForm(t, c, u, narrow)
		wantStatus(t, third, http.StatusOK)
		if third.str(t, "scope") != "read" {
			t.Errorf("narrowed scope = %s", third.body)
		}
		if s.Grants("refresh_token") != 2 || s.Grants("client_credentials") != 1 || s.RefreshReuses() != 1 {
			t.Errorf("grants cc=%d rt=%d reuses=%d", s.Grants("client_credentials"), s.Grants("refresh_token"), s.RefreshReuses())
		}

		// A seeded refresh token works like an issued one.
		seed := s.SeedRefreshToken(OAuth2, testClientID)
		wantStatus(t, refresh(seed, withBasic(testClientID, testClientSecret)), http.StatusOK)
		// A token seeded for another dialect is unknown here.
		wantOAuthError(t, refresh(s.SeedRefreshToken(Echo360, testClientID), withBasic(testClientID, testClientSecret)), 400, "invalid_grant")
	})
}

func TestOAuth2JSON(t *testing.T) {
	s, c := start(t, Options{})
	u := s.URL() + PathOAuth2JSONToken
	good := `{"client_id":"client-a","client_secret":"s3cret-A","grant_type":"client_credentials"}`

	// The document says GET; its examples POST. Both work.
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		r := send(t, c, method, u, "application/json; charset=utf-8", good)
		wantStatus(t, r, http.StatusOK)
		checkWhoami(t, c, s, r.str(t, "access_token"), testClientID)
	}
	rec := s.LastRequest(PathOAuth2JSONToken)
	if rec.JSON["client_id"] != testClientID || rec.Params["grant_type"] != "client_credentials" || !rec.SecretSent {
		t.Errorf("recorded %+v", rec)
	}

	cases := []struct {
		name, method, ctype, body string
		status                    int
		code                      string
	}{
		{"form body", http.MethodPost, contentTypeForm, ccForm(testClientID, testClientSecret).Encode(), 400, "invalid_request"},
		{"no body", http.MethodGet, "", "", 400, "invalid_request"},
		{"invalid JSON", http.MethodPost, contentTypeJSON, `{"client_id":`, 400, "invalid_request"},
		{"JSON array", http.MethodPost, contentTypeJSON, `[]`, 400, "invalid_request"},
		{"trailing data", http.MethodPost, contentTypeJSON, good + `{}`, 400, "invalid_request"},
		{"missing secret", http.MethodPost, contentTypeJSON, `{"client_id":"client-a","grant_type":"client_credentials"}`, 400, "invalid_request"},
		{"number secret", http.MethodPost, contentTypeJSON, `{"client_id":"client-a","client_secret":1,"grant_type":"client_credentials"}`, 400, "invalid_request"},
		{"other grant", http.MethodPost, contentTypeJSON, `{"client_id":"client-a","client_secret":"s3cret-A","grant_type":"password"}`, 400, "unsupported_grant_type"},
		{"wrong secret", http.MethodPost, contentTypeJSON, `{"client_id":"client-a","client_secret":"nope","grant_type":"client_credentials"}`, 401, "invalid_client"},
		{"PUT", http.MethodPut, contentTypeJSON, good, 405, "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantOAuthError(t, send(t, c, tc.method, u, tc.ctype, tc.body), tc.status, tc.code)
		})
	}
	if s.Grants("client_credentials") != 2 {
		t.Errorf("Grants = %d, want 2", s.Grants("client_credentials"))
	}
}

func TestEcho360(t *testing.T) {
	bothTransports(t, func(t *testing.T, tlsOn bool) {
		s, c := start(t, Options{TLS: tlsOn})
		u := s.URL() + PathEcho360Token

		// Parameters in the query string, as Echo360's Swagger page sends them.
		q := send(t, c, http.MethodPost, u+"?"+ccForm(testClientID, testClientSecret).Encode(), "", "")
		wantStatus(t, q, http.StatusOK)
		if rec := s.LastRequest(PathEcho360Token); rec.Query["client_id"] != testClientID || rec.Params["client_id"] != testClientID {
			t.Errorf("recorded %+v", rec)
		}

		first := postForm(t, c, u, ccForm(testClientID, testClientSecret))
		wantStatus(t, first, http.StatusOK)
		rt1 := first.str(t, "refresh_token")

		// Refresh with client_id and refresh_token only: no secret.
		refresh := func(id, rt string) response {
			return postForm(t, c, u, url.Values{"grant_type": {"refresh_token"}, "client_id": {id}, "refresh_token": {rt}})
		}
		second := refresh(testClientID, rt1)
		wantStatus(t, second, http.StatusOK)
		if rec := s.LastRequest(PathEcho360Token); rec.SecretSent {
			t.Errorf("recorded a secret on a refresh that sent none: %+v", rec)
		}
		rt2 := second.str(t, "refresh_token")
		if rt2 == rt1 || second.str(t, "token_type") != "bearer" {
			t.Fatalf("refresh response %s", second.body)
		}
		checkWhoami(t, c, s, second.str(t, "access_token"), testClientID)

		// Single use.
		reuse := refresh(testClientID, rt1)
		wantOAuthError(t, reuse, http.StatusBadRequest, "invalid_grant")
		if s.RefreshReuses() != 1 {
			t.Errorf("RefreshReuses = %d, want 1", s.RefreshReuses())
		}
		// Bound to its client; a wrong client does not consume it.
		wantOAuthError(t, refresh(otherClientID, rt2), http.StatusBadRequest, "invalid_grant")
		// A secret sent along with a refresh is accepted when right...
		withSecret := url.Values{"grant_type": {"refresh_token"}, "client_id": {testClientID}, "refresh_token": {rt2}, "client_secret": {testClientSecret}}
		third := postForm(t, c, u, withSecret)
		wantStatus(t, third, http.StatusOK)
		if !s.LastRequest(PathEcho360Token).SecretSent {
			t.Error("SecretSent = false for a refresh that sent client_secret")
		}
		// ...and rejected when wrong.
		withSecret.Set("refresh_token", third.str(t, "refresh_token"))
		withSecret.Set("client_secret", "nope")
		wantOAuthError(t, postForm(t, c, u, withSecret), http.StatusUnauthorized, "invalid_client")

		// A seeded refresh token starts a chain.
		seeded := refresh(testClientID, s.SeedRefreshToken(Echo360, testClientID))
		wantStatus(t, seeded, http.StatusOK)

		// Errors.
		wantOAuthError(t, postForm(t, c, u, ccForm(testClientID, "nope")), 401, "invalid_client")
		basicOnly := url.Values{"grant_type": {"client_credentials"}, "client_id": {testClientID}}
		wantOAuthError(t, postForm(t, c, u, basicOnly, withBasic(testClientID, testClientSecret)), 401, "invalid_client")
		wantOAuthError(t, postJSON(t, c, u, map[string]string{"grant_type": "client_credentials", "client_id": testClientID, "client_secret": testClientSecret}), 400, "invalid_request")
		wantOAuthError(t, postForm(t, c, u, url.Values{"client_id": {testClientID}}), 400, "invalid_request")
		wantOAuthError(t, postForm(t, c, u, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}), 400, "invalid_request")
		wantOAuthError(t, postForm(t, c, u, url.Values{"grant_type": {"password"}, "client_id": {testClientID}}), 400, "unsupported_grant_type")
		wantOAuthError(t, refresh(testClientID, "rt_unknown"), 400, "invalid_grant")
		wantOAuthError(t, send(t, c, http.MethodGet, u+"?"+ccForm(testClientID, testClientSecret).Encode(), "", ""), 405, "invalid_request")

		if got := s.Grants("client_credentials"); got != 2 {
			t.Errorf("Grants(client_credentials) = %d, want 2", got)
		}
		if got := s.Grants("refresh_token"); got != 3 {
			t.Errorf("Grants(refresh_token) = %d, want 3", got)
		}
		if s.RefreshReuses() != 1 {
			t.Errorf("RefreshReuses = %d, want 1", s.RefreshReuses())
		}
	})
}

// wantProblem checks an api.video error answer.
func wantProblem(t *testing.T, r response, status int, titleHas string) {
	t.Helper()
	wantStatus(t, r, status)
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q", ct)
	}
	m := r.json(t)
	typ, _ := m["type"].(string)
	title, _ := m["title"].(string)
	if !strings.HasPrefix(typ, "https://docs.api.video/reference/") || m["status"] != float64(status) || !strings.Contains(title, titleHas) {
		t.Errorf("problem = %s", r.body)
	}
}

func TestAPIVideo(t *testing.T) {
	bothTransports(t, func(t *testing.T, tlsOn bool) {
		s, c := start(t, Options{TLS: tlsOn})
		auth := s.URL() + PathAPIVideoAuth
		ref := s.URL() + PathAPIVideoRefresh

		first := postJSON(t, c, auth, map[string]string{"apiKey": testAPIKey})
		wantStatus(t, first, http.StatusOK)
		if rec := s.LastRequest(PathAPIVideoAuth); !rec.SecretSent || rec.JSON["apiKey"] != testAPIKey {
			t.Errorf("recorded %+v", rec)
		}
		rt1 := first.str(t, "refresh_token")

		second := postJSON(t, c, ref, map[string]string{"refreshToken": rt1})
		wantStatus(t, second, http.StatusOK)
		rt2 := second.str(t, "refresh_token")
		if rt2 == rt1 {
			t.Fatal("refresh token not rotated")
		}
		if s.LastRequest(PathAPIVideoRefresh).SecretSent {
			t.Error("SecretSent on a refresh that sent no key")
		}
		if !s.Valid(first.str(t, "access_token")) || !s.Valid(second.str(t, "access_token")) {
			t.Error("access tokens should stay valid until they expire")
		}

		wantProblem(t, postJSON(t, c, ref, map[string]string{"refreshToken": rt1}), 400, "The refresh token is either expired or invalid.")
		if s.RefreshReuses() != 1 {
			t.Errorf("RefreshReuses = %d, want 1", s.RefreshReuses())
		}
		wantProblem(t, postJSON(t, c, ref, map[string]string{"refreshToken": "rt_unknown"}), 400, "expired or invalid")
		wantProblem(t, postJSON(t, c, ref, map[string]string{"refresh_token": rt2}), 400, "required")
		wantProblem(t, postJSON(t, c, auth, map[string]string{"apiKey": "wrong"}), 401, "API key")
		wantProblem(t, postJSON(t, c, auth, map[string]string{"api_key": testAPIKey}), 400, "required")
		wantProblem(t, postJSON(t, c, auth, map[string]any{"apiKey": 42}), 400, "string")
		wantProblem(t, postForm(t, c, auth, url.Values{"apiKey": {testAPIKey}}), 400, "Content-Type")
		wantProblem(t, send(t, c, http.MethodPost, auth, "", `{"apiKey":"`+testAPIKey+`"}`), 400, "Content-Type")
		wantProblem(t, send(t, c, http.MethodPost, auth, contentTypeJSON, `{"apiKey":`), 400, "JSON")
		wantProblem(t, send(t, c, http.MethodGet, auth, "", ""), 405, "method")
		if p := postJSON(t, c, auth, map[string]string{"apiKey": "wrong"}); strings.Contains(string(p.body), "wrong") {
			t.Errorf("error echoes the key: %s", p.body)
		}

		// rt2 survived all of that, and a seeded token works too.
		wantStatus(t, postJSON(t, c, ref, map[string]string{"refreshToken": rt2}), http.StatusOK)
		wantStatus(t, postJSON(t, c, ref, map[string]string{"refreshToken": s.SeedRefreshToken(APIVideo, testAPIKey)}), http.StatusOK)
		if s.Grants("api_key") != 1 || s.Grants("refresh_token") != 3 || s.RefreshReuses() != 1 {
			t.Errorf("api_key=%d refresh=%d reuses=%d", s.Grants("api_key"), s.Grants("refresh_token"), s.RefreshReuses())
		}
	})
}

// wantEndorsedError checks an Endorsed error answer.
func wantEndorsedError(t *testing.T, r response, status int, code string) {
	t.Helper()
	wantStatus(t, r, status)
	m := r.json(t)
	if m["is_error"] != true || m["error"] != code {
		t.Errorf("body = %s, want is_error and error %s", r.body, code)
	}
	if msg, _ := m["message"].(string); msg == "" {
		t.Errorf("no message in %s", r.body)
	}
}

func TestEndorsed(t *testing.T) {
	bothTransports(t, func(t *testing.T, tlsOn bool) {
		s, c := start(t, Options{TLS: tlsOn})
		u := s.URL() + PathEndorsedToken
		base := map[string]any{"client_id": testClientID, "client_secret": testClientSecret, "grant_type": "client_credentials"}
		with := func(k string, v any) map[string]any {
			m := map[string]any{}
			for kk, vv := range base {
				m[kk] = vv
			}
			m[k] = v
			return m
		}
		scopeOf := func(r response) string { return fmt.Sprint(r.json(t)["scope"]) }

		r := postJSON(t, c, u, with("scope", []string{"all:read"}))
		wantStatus(t, r, http.StatusOK)
		if scopeOf(r) != "[all:read]" || r.json(t)["expires_in"] != "1209600" {
			t.Errorf("body = %s", r.body)
		}
		if rec := s.LastRequest(PathEndorsedToken); rec.Params["scope"] != `["all:read"]` || rec.JSON["scope"] == nil {
			t.Errorf("recorded %+v", rec)
		}
		checkWhoami(t, c, s, r.str(t, "access_token"), testClientID)

		// Default scope, JSON.
		if r := postJSON(t, c, u, base); r.status != 200 || scopeOf(r) != "[all:read all:write]" {
			t.Errorf("default JSON scope: %d %s", r.status, r.body)
		}
		// Form, scope space-delimited.
		form := ccForm(testClientID, testClientSecret)
		form.Set("scope", "all:write all:read")
		if r := postForm(t, c, u, form); r.status != 200 || scopeOf(r) != "[all:write all:read]" {
			t.Errorf("form scope: %d %s", r.status, r.body)
		}
		// No Content-Type: a form, the documented default.
		if r := send(t, c, http.MethodPost, u, "", ccForm(testClientID, testClientSecret).Encode()); r.status != 200 || scopeOf(r) != "[all:read all:write]" {
			t.Errorf("no content type: %d %s", r.status, r.body)
		}

		wantEndorsedError(t, postJSON(t, c, u, with("scope", "all:read all:write")), 400, "invalid_request")
		wantEndorsedError(t, postJSON(t, c, u, with("scope", []any{"all:read", 7})), 400, "invalid_request")
		wantEndorsedError(t, postJSON(t, c, u, with("scope", []string{"admin"})), 400, "invalid_request")
		form.Set("scope", "all:read admin")
		wantEndorsedError(t, postForm(t, c, u, form), 400, "invalid_request")
		wantEndorsedError(t, postJSON(t, c, u, with("grant_type", "password")), 400, "invalid_request")
		wantEndorsedError(t, postJSON(t, c, u, with("client_secret", "")), 400, "invalid_request")
		wantEndorsedError(t, postJSON(t, c, u, with("client_secret", "nope")), 401, "invalid_client")
		wantEndorsedError(t, send(t, c, http.MethodPost, u, "text/plain", ccForm(testClientID, testClientSecret).Encode()), 400, "invalid_request")
		wantEndorsedError(t, send(t, c, http.MethodPost, u, contentTypeJSON, "{"), 400, "invalid_request")
		wantEndorsedError(t, send(t, c, http.MethodGet, u, "", ""), 405, "invalid_request")
		if s.Grants("client_credentials") != 4 {
			t.Errorf("Grants = %d, want 4", s.Grants("client_credentials"))
		}
	})
}

func TestLifetime(t *testing.T) {
	s, c := start(t, Options{Lifetime: 90 * time.Second})
	expiresIn := func(d Dialect) any {
		t.Helper()
		var r response
		switch d {
		case APIVideo:
			r = postJSON(t, c, s.URL()+PathAPIVideoAuth, map[string]string{"apiKey": testAPIKey})
		case OAuth2JSON, Endorsed:
			r = postJSON(t, c, s.URL()+d.TokenPath(), map[string]string{"client_id": testClientID, "client_secret": testClientSecret, "grant_type": "client_credentials"})
		default:
			r = postForm(t, c, s.URL()+d.TokenPath(), ccForm(testClientID, testClientSecret))
		}
		wantStatus(t, r, http.StatusOK)
		return r.json(t)["expires_in"]
	}
	for _, d := range []Dialect{OAuth2, OAuth2JSON, Echo360, APIVideo} {
		if got := expiresIn(d); got != 90.0 {
			t.Errorf("%s expires_in = %v, want 90", d, got)
		}
	}
	if got := expiresIn(Endorsed); got != "90" {
		t.Errorf("endorsed expires_in = %v, want \"90\"", got)
	}
	s.SetLifetime(0) // documented defaults
	if got := expiresIn(Endorsed); got != "1209600" {
		t.Errorf("endorsed default expires_in = %v", got)
	}
	if got := expiresIn(Echo360); got != 3600.0 {
		t.Errorf("echo360 default expires_in = %v", got)
	}
	s.SetLifetime(1500 * time.Millisecond) // whole seconds, at least 1
	if got := expiresIn(OAuth2); got != 1.0 {
		t.Errorf("expires_in = %v, want 1", got)
	}
}

// fakeClock is an injectable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestExpiryWithInjectedClock(t *testing.T) {
	clock := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	s, c := start(t, Options{Now: clock.Now, Lifetime: time.Minute})
	r := postForm(t, c, s.URL()+PathEcho360Token, ccForm(testClientID, testClientSecret))
	wantStatus(t, r, http.StatusOK)
	at, rt := r.str(t, "access_token"), r.str(t, "refresh_token")

	clock.Advance(59 * time.Second)
	if !s.Valid(at) {
		t.Fatal("token invalid before expiry")
	}
	if w := whoami(t, c, s, at); w.status != 200 || w.json(t)["expires_in"] != 1.0 {
		t.Errorf("whoami = %d %s", w.status, w.body)
	}
	clock.Advance(time.Second)
	if s.Valid(at) {
		t.Fatal("token valid at expiry")
	}
	if w := whoami(t, c, s, at); w.status != http.StatusUnauthorized {
		t.Errorf("whoami on an expired token = %d", w.status)
	}
	// Echo360 refresh tokens never expire.
	clock.Advance(365 * 24 * time.Hour)
	r = postForm(t, c, s.URL()+PathEcho360Token, url.Values{"grant_type": {"refresh_token"}, "client_id": {testClientID}, "refresh_token": {rt}})
	wantStatus(t, r, http.StatusOK)
	if !s.Valid(r.str(t, "access_token")) {
		t.Error("new token invalid")
	}
}

func TestWhoami(t *testing.T) {
	s, c := start(t, Options{})
	r := postForm(t, c, s.URL()+PathOAuth2Token, ccForm(testClientID, testClientSecret))
	at := r.str(t, "access_token")
	for name, tc := range map[string]struct {
		method, authz string
		status        int
	}{
		"ok":                {http.MethodGet, "Bearer " + at, 200},
		"lower-case scheme": {http.MethodGet, "bearer " + at, 200},
		"no header":         {http.MethodGet, "", 401},
		"unknown token":     {http.MethodGet, "Bearer at_nope", 401},
		"refresh token":     {http.MethodGet, "Bearer " + r.str(t, "refresh_token"), 401},
		"basic":             {http.MethodGet, "Basic " + at, 401},
		"POST":              {http.MethodPost, "Bearer " + at, 405},
	} {
		t.Run(name, func(t *testing.T) {
			var opts []reqOpt
			if tc.authz != "" {
				opts = append(opts, withHeader("Authorization", tc.authz))
			}
			w := send(t, c, tc.method, s.URL()+PathWhoami, "", "", opts...)
			if w.status != tc.status {
				t.Fatalf("status = %d, want %d (%s)", w.status, tc.status, w.body)
			}
			if tc.status == 401 && !strings.HasPrefix(w.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate = %q", w.header.Get("WWW-Authenticate"))
			}
		})
	}
	// whoami is neither a token call nor subject to failure injection.
	s.Fail(1, Fail500)
	if w := whoami(t, c, s, at); w.status != 200 {
		t.Errorf("whoami consumed an injected failure: %d", w.status)
	}
	if s.TotalCalls() != 1 || s.Calls(PathWhoami) != 8 {
		t.Errorf("TotalCalls = %d, Calls(whoami) = %d", s.TotalCalls(), s.Calls(PathWhoami))
	}
	s.Fail(0, Fail500)
}

func TestFailModes(t *testing.T) {
	bothTransports(t, func(t *testing.T, tlsOn bool) {
		s, c := start(t, Options{TLS: tlsOn})
		tokenURL := s.URL() + PathOAuth2Token
		cc := ccForm(testClientID, testClientSecret)
		ok := func(t *testing.T) {
			t.Helper()
			wantStatus(t, postForm(t, c, tokenURL, cc), http.StatusOK)
		}

		t.Run("Fail500", func(t *testing.T) {
			s.Fail(1, Fail500)
			r := postForm(t, c, tokenURL, cc)
			wantStatus(t, r, 500)
			if r.header.Get("Content-Type") != "application/json" || r.json(t)["error"] != "server_error" {
				t.Errorf("500 = %v %s", r.header, r.body)
			}
			ok(t)
		})
		t.Run("Fail503HTML", func(t *testing.T) {
			s.Fail(1, Fail503HTML)
			r := postJSON(t, c, s.URL()+PathAPIVideoAuth, map[string]string{"apiKey": testAPIKey})
			wantStatus(t, r, 503)
			if !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || !strings.Contains(string(r.body), "<html>") {
				t.Errorf("503 = %v %s", r.header, r.body)
			}
			ok(t)
		})
		t.Run("FailHTML200", func(t *testing.T) {
			s.Fail(1, FailHTML200)
			r := postForm(t, c, s.URL()+PathEcho360Token, cc)
			wantStatus(t, r, 200)
			if !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || !strings.Contains(string(r.body), "password") {
				t.Errorf("html 200 = %v %s", r.header, r.body)
			}
			ok(t)
		})
		t.Run("Fail429", func(t *testing.T) {
			s.Fail(1, Fail429)
			r := postForm(t, c, tokenURL, cc)
			wantStatus(t, r, 429)
			if r.header.Get("Retry-After") != "2" {
				t.Errorf("Retry-After = %q", r.header.Get("Retry-After"))
			}
			ok(t)
		})
		t.Run("FailDropAfterConsume", func(t *testing.T) {
			s.Reset()
			first := postForm(t, c, s.URL()+PathEcho360Token, cc)
			wantStatus(t, first, http.StatusOK)
			rt := first.str(t, "refresh_token")
			refresh := url.Values{"grant_type": {"refresh_token"}, "client_id": {testClientID}, "refresh_token": {rt}}

			s.Fail(1, FailDropAfterConsume)
			resp, err := c.PostForm(s.URL()+PathEcho360Token, refresh)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("got a response (%d) from a dropped connection", resp.StatusCode)
			}
			// The refresh happened: the token is spent and new ones were issued.
			if s.Grants("refresh_token") != 1 || s.RefreshReuses() != 0 {
				t.Errorf("grants = %d, reuses = %d", s.Grants("refresh_token"), s.RefreshReuses())
			}
			wantOAuthError(t, postForm(t, c, s.URL()+PathEcho360Token, refresh), 400, "invalid_grant")
			if s.RefreshReuses() != 1 {
				t.Errorf("RefreshReuses = %d, want 1", s.RefreshReuses())
			}
			ok(t)
		})
		t.Run("FailTimeout", func(t *testing.T) {
			s.Fail(1, FailTimeout)
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(cc.Encode()))
			req.Header.Set("Content-Type", contentTypeForm)
			began := time.Now()
			resp, err := c.Do(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("got a response (%d) from a hanging server", resp.StatusCode)
			}
			if !errors.Is(err, context.DeadlineExceeded) || time.Since(began) > time.Second {
				t.Errorf("err = %v after %v", err, time.Since(began))
			}
			ok(t)
		})
		t.Run("FailEchoSecret", func(t *testing.T) {
			s.Fail(1, FailEchoSecret)
			r := postForm(t, c, tokenURL, cc)
			wantStatus(t, r, 400)
			m := r.json(t)
			for _, k := range []string{"error_description", "title", "message"} {
				if v, _ := m[k].(string); !strings.Contains(v, testClientSecret) {
					t.Errorf("%s = %q does not echo the secret", k, v)
				}
			}
			s.Fail(2, FailEchoSecret)
			r = postJSON(t, c, s.URL()+PathAPIVideoAuth, map[string]string{"apiKey": testAPIKey})
			if !strings.Contains(r.str(t, "title"), testAPIKey) {
				t.Errorf("api key not echoed: %s", r.body)
			}
			r = postForm(t, c, tokenURL, url.Values{"grant_type": {"client_credentials"}}, withBasic(testClientID, testClientSecret))
			if !strings.Contains(r.str(t, "error_description"), testClientSecret) {
				t.Errorf("Basic password not echoed: %s", r.body)
			}
			ok(t)
		})
		t.Run("FailNoAccessToken", func(t *testing.T) {
			s.Fail(1, FailNoAccessToken)
			r := postForm(t, c, tokenURL, cc)
			wantStatus(t, r, 200)
			if _, has := r.json(t)["access_token"]; has {
				t.Errorf("body has access_token: %s", r.body)
			}
			ok(t)
		})
		t.Run("FailHugeBody", func(t *testing.T) {
			s.Fail(1, FailHugeBody)
			r := postForm(t, c, tokenURL, cc)
			wantStatus(t, r, 200)
			if len(r.body) != HugeBodySize || !json.Valid(r.body) {
				t.Errorf("body is %d bytes, valid JSON %v", len(r.body), json.Valid(r.body))
			}
			ok(t)
		})
		t.Run("FailWrongTypes", func(t *testing.T) {
			s.Fail(1, FailWrongTypes)
			r := postForm(t, c, tokenURL, cc)
			wantStatus(t, r, 200)
			m := r.json(t)
			if _, isNum := m["access_token"].(float64); !isNum {
				t.Errorf("access_token = %T", m["access_token"])
			}
			if _, isObj := m["expires_in"].(map[string]any); !isObj {
				t.Errorf("expires_in = %T", m["expires_in"])
			}
			ok(t)
		})
	})
}

func TestFailQueue(t *testing.T) {
	s, c := start(t, Options{})
	u := s.URL() + PathOAuth2Token
	cc := ccForm(testClientID, testClientSecret)
	s.Fail(1, Fail500)
	s.Fail(2, Fail429)
	var got []int
	for range 4 {
		got = append(got, postForm(t, c, u, cc).status)
	}
	if fmt.Sprint(got) != "[500 429 429 200]" {
		t.Errorf("statuses = %v", got)
	}
	s.Fail(3, Fail500)
	s.Fail(0, Fail500) // cancels
	wantStatus(t, postForm(t, c, u, cc), 200)
	// Any token endpoint takes the next failure.
	s.Fail(1, Fail500)
	wantStatus(t, postJSON(t, c, s.URL()+PathAPIVideoRefresh, map[string]string{"refreshToken": "x"}), 500)
	if FailWrongTypes.String() != "FailWrongTypes" || FailMode(99).String() != "FailMode(99)" {
		t.Error("FailMode.String")
	}
}

func TestLatency(t *testing.T) {
	s, c := start(t, Options{Latency: 150 * time.Millisecond})
	u := s.URL() + PathOAuth2Token
	cc := ccForm(testClientID, testClientSecret)
	began := time.Now()
	wantStatus(t, postForm(t, c, u, cc), 200)
	if d := time.Since(began); d < 150*time.Millisecond {
		t.Errorf("answered after %v, want >= 150ms", d)
	}

	// A request that gives up during the latency gets no answer, and the
	// handler does not linger.
	s.SetLatency(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(cc.Encode()))
	req.Header.Set("Content-Type", contentTypeForm)
	if resp, err := c.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("expected the request to time out")
	}
	if s.Grants("client_credentials") != 1 {
		t.Errorf("a cancelled request issued a token")
	}
	s.SetLatency(0)
	began = time.Now()
	wantStatus(t, postForm(t, c, u, cc), 200)
	if d := time.Since(began); d > time.Second {
		t.Errorf("SetLatency(0) ignored: %v", d)
	}
	// whoami is not delayed.
	s.SetLatency(5 * time.Second)
	began = time.Now()
	whoami(t, c, s, "x")
	if d := time.Since(began); d > time.Second {
		t.Errorf("whoami delayed %v", d)
	}
	s.SetLatency(0)
}

func TestCountersAndReset(t *testing.T) {
	s, c := start(t, Options{})
	cc := ccForm(testClientID, testClientSecret)
	r := postForm(t, c, s.URL()+PathOAuth2Token, cc)
	postForm(t, c, s.URL()+PathOAuth2Token, ccForm(testClientID, "nope"))
	postForm(t, c, s.URL()+PathEcho360Token, cc)
	postJSON(t, c, s.URL()+PathAPIVideoAuth, map[string]string{"apiKey": testAPIKey})
	send(t, c, http.MethodGet, s.URL()+"/nowhere", "", "")
	at := r.str(t, "access_token")
	whoami(t, c, s, at)

	if s.Calls(PathOAuth2Token) != 2 || s.Calls(PathEcho360Token) != 1 || s.Calls(PathAPIVideoAuth) != 1 || s.Calls("/nowhere") != 1 || s.Calls(PathWhoami) != 1 {
		t.Errorf("Calls: %d %d %d %d %d", s.Calls(PathOAuth2Token), s.Calls(PathEcho360Token), s.Calls(PathAPIVideoAuth), s.Calls("/nowhere"), s.Calls(PathWhoami))
	}
	if s.TotalCalls() != 4 {
		t.Errorf("TotalCalls = %d, want 4", s.TotalCalls())
	}
	if s.Grants("client_credentials") != 2 || s.Grants("api_key") != 1 {
		t.Errorf("Grants cc=%d api_key=%d", s.Grants("client_credentials"), s.Grants("api_key"))
	}
	if rec := s.LastRequest(PathOAuth2Token); rec.Params["client_secret"] != "nope" {
		t.Errorf("LastRequest is not the last: %+v", rec)
	}

	s.Reset()
	if s.TotalCalls() != 0 || s.Calls(PathOAuth2Token) != 0 || s.Grants("client_credentials") != 0 || s.RefreshReuses() != 0 || s.LastRequest(PathOAuth2Token).Method != "" {
		t.Error("Reset left counters")
	}
	// Reset keeps clients and tokens.
	if !s.Valid(at) {
		t.Error("Reset forgot issued tokens")
	}
	wantStatus(t, postForm(t, c, s.URL()+PathOAuth2Token, cc), 200)
	if s.TotalCalls() != 1 {
		t.Errorf("TotalCalls after Reset = %d", s.TotalCalls())
	}
}

// TestConcurrentRefresh sends one refresh token from many goroutines: exactly
// one use may succeed, every other one is a counted reuse.
func TestConcurrentRefresh(t *testing.T) {
	s, c := start(t, Options{})
	u := s.URL() + PathEcho360Token
	rt := s.SeedRefreshToken(Echo360, testClientID)
	const n = 8
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.PostForm(u, url.Values{"grant_type": {"refresh_token"}, "client_id": {testClientID}, "refresh_token": {rt}})
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
			_ = s.TotalCalls() // counters are read concurrently with handlers
		}()
	}
	wg.Wait()
	close(statuses)
	okCount := 0
	for st := range statuses {
		if st == 200 {
			okCount++
		}
	}
	if okCount != 1 || s.RefreshReuses() != n-1 || s.Grants("refresh_token") != 1 {
		t.Errorf("ok = %d, reuses = %d, grants = %d", okCount, s.RefreshReuses(), s.Grants("refresh_token"))
	}
}

func TestLastRequest(t *testing.T) {
	s, c := start(t, Options{})
	if s.LastRequest(PathEndorsedToken).Method != "" {
		t.Error("LastRequest before any request is not zero")
	}
	postJSON(t, c, s.URL()+PathEndorsedToken+"?trace=1", map[string]any{
		"client_id": testClientID, "client_secret": testClientSecret, "grant_type": "client_credentials", "scope": []string{"all:read"},
	}, withHeader("Accept", "application/json"))
	rec := s.LastRequest(PathEndorsedToken)
	if rec.Method != "POST" || rec.Path != PathEndorsedToken || rec.ContentType != contentTypeJSON || rec.Header.Get("Accept") != "application/json" {
		t.Errorf("recorded %+v", rec)
	}
	if rec.Query["trace"] != "1" || rec.Params["trace"] != "1" || rec.Params["client_id"] != testClientID || rec.Params["scope"] != `["all:read"]` {
		t.Errorf("params %v query %v", rec.Params, rec.Query)
	}
	if list, ok := rec.JSON["scope"].([]any); !ok || len(list) != 1 {
		t.Errorf("JSON scope = %#v", rec.JSON["scope"])
	}
	if !rec.SecretSent || rec.HasAuthorization || rec.BasicAuth || rec.ClientID != testClientID {
		t.Errorf("recorded %+v", rec)
	}
	// A rejected request is recorded too.
	send(t, c, http.MethodPost, s.URL()+PathOAuth2Token, "text/plain", "hello", withHeader("Authorization", "Bearer x"))
	rec = s.LastRequest(PathOAuth2Token)
	if rec.ContentType != "text/plain" || !rec.HasAuthorization || rec.BasicAuth || rec.SecretSent {
		t.Errorf("recorded %+v", rec)
	}
}

func TestTLSCertificate(t *testing.T) {
	s, c := start(t, Options{TLS: true})
	block, _ := pem.Decode([]byte(s.CAPEM()))
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatal("CAPEM is not a PEM certificate")
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if key, ok := ca.PublicKey.(*ecdsa.PublicKey); !ok || key.Curve != elliptic.P256() || !ca.IsCA {
		t.Errorf("CA key %T, IsCA %v", ca.PublicKey, ca.IsCA)
	}

	// The server certificate verifies for every loopback name.
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	host := strings.TrimPrefix(s.URL(), "https://")
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", host, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	leaf := conn.ConnectionState().PeerCertificates[0]
	if proto := conn.ConnectionState().NegotiatedProtocol; proto == "h2" {
		t.Errorf("negotiated %s; the fake must stay on HTTP/1.1", proto)
	}
	conn.Close()
	for _, name := range []string{"localhost", "127.0.0.1", "::1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool}); err != nil {
			t.Errorf("leaf does not verify for %s: %v", name, err)
		}
	}

	// A client that does not trust the CA is refused.
	untrusting := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{}}
	defer untrusting.CloseIdleConnections()
	if resp, err := untrusting.Get(s.URL() + PathWhoami); err == nil {
		resp.Body.Close()
		t.Error("a client without the CA connected")
	}
	// And one that does is fine.
	if r := whoami(t, c, s, "x"); r.status != 401 {
		t.Errorf("whoami = %d", r.status)
	}

	if New(Options{}).CAPEM() != "" {
		t.Error("CAPEM without TLS is not empty")
	}
}

func TestLifecycle(t *testing.T) {
	s := New(Options{})
	if s.URL() != "" {
		t.Error("URL before Start")
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err == nil {
		t.Error("second Start succeeded")
	}
	s.Close()
	s.Close()
	if err := s.Start(); err == nil {
		t.Error("Start after Close succeeded")
	}
	New(Options{}).Close() // Close before Start is fine

	// Listening elsewhere than the default.
	s2 := New(Options{Addr: "127.0.0.1:0", TLS: true})
	if err := s2.Start(); err != nil {
		t.Fatal(err)
	}
	s2.Close()
	if err := New(Options{Addr: "not an address"}).Start(); err == nil {
		t.Error("Start on a bad address succeeded")
	}
}

// TestCloseUnblocksHangingHandlers: Close returns promptly even with a request
// hanging in FailTimeout, and the client sees the connection end.
func TestCloseUnblocksHangingHandlers(t *testing.T) {
	s := New(Options{Logf: t.Logf})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.AddClient(testClientID, testClientSecret)
	s.Fail(1, FailTimeout)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	errc := make(chan error, 1)
	go func() {
		resp, err := c.PostForm(s.URL()+PathOAuth2Token, ccForm(testClientID, testClientSecret))
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	deadline := time.Now().Add(2 * time.Second)
	for s.TotalCalls() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("request never arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}
	began := time.Now()
	s.Close()
	if d := time.Since(began); d > time.Second {
		t.Errorf("Close took %v", d)
	}
	select {
	case err := <-errc:
		if err == nil {
			t.Error("hanging request got a response")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("client still waiting after Close")
	}
}

// TestLogHasNoSecrets: the request log names dialect, grant and status, and
// never a secret or a token, even when a client puts a secret where the grant
// type goes.
func TestLogHasNoSecrets(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	s, c := start(t, Options{Logf: func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, fmt.Sprintf(format, args...))
	}})
	r := postForm(t, c, s.URL()+PathEcho360Token, ccForm(testClientID, testClientSecret))
	rt := r.str(t, "refresh_token")
	at := r.str(t, "access_token")
	postForm(t, c, s.URL()+PathEcho360Token, url.Values{"grant_type": {"refresh_token"}, "client_id": {testClientID}, "refresh_token": {rt}})
	postJSON(t, c, s.URL()+PathAPIVideoAuth, map[string]string{"apiKey": testAPIKey})
	postForm(t, c, s.URL()+PathOAuth2Token, url.Values{"grant_type": {testClientSecret}}, withBasic(testClientID, testClientSecret))
	s.Fail(1, FailEchoSecret)
	postForm(t, c, s.URL()+PathOAuth2Token, ccForm(testClientID, testClientSecret))
	s.Close()

	mu.Lock()
	defer mu.Unlock()
	all := strings.Join(lines, "\n")
	for _, secret := range []string{testClientSecret, testAPIKey, rt, at} {
		if strings.Contains(all, secret) {
			t.Errorf("log contains a secret or token:\n%s", all)
		}
	}
	for _, want := range []string{
		"dialect=echo360 endpoint=/oauth2/access_token grant=client_credentials status=200",
		"dialect=echo360 endpoint=/oauth2/access_token grant=refresh_token status=200",
		"dialect=apivideo endpoint=/auth/api-key grant=api_key status=200",
		"dialect=oauth2 endpoint=/oauth2/token grant=other status=400",
		"status=400 injected=FailEchoSecret",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("log lacks %q:\n%s", want, all)
		}
	}
	if len(lines) != 5 {
		t.Errorf("%d log lines, want one per token request:\n%s", len(lines), all)
	}
}

func TestEndpoints(t *testing.T) {
	for _, d := range []Dialect{OAuth2, OAuth2JSON, Echo360, APIVideo, Endorsed} {
		if d.TokenPath() == "" {
			t.Errorf("%s has no token path", d)
		}
	}
	if Dialect("nope").TokenPath() != "" {
		t.Error("unknown dialect has a token path")
	}
	if len(Endpoints()) != 7 {
		t.Errorf("Endpoints() = %d routes", len(Endpoints()))
	}
}
