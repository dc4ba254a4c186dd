package fakeprovider

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
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

// refreshDialects are the dialects with a refresh grant.
var refreshDialects = []Dialect{OAuth2, Echo360, APIVideo}

// start runs a server for the test and returns it with a client that trusts
// it. Everything is torn down by t.Cleanup.
func start(t *testing.T, opts Options) (*Server, *http.Client) {
	t.Helper()
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	s := New(opts)
	if err := s.Start(); err != nil {
		t.Fatalf("Start: got %v, want no error", err)
	}
	s.AddClient(testClientID, testClientSecret)
	s.AddClient(otherClientID, otherSecret)
	s.AddAPIKey(testAPIKey)
	tr := &http.Transport{}
	if opts.TLS {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(s.CAPEM())) {
			t.Fatalf("CAPEM: got %q, want a PEM certificate", s.CAPEM())
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
		t.Fatalf("body: got %d %s, want a JSON object (%v)", r.status, r.body, err)
	}
	return m
}

// str returns member k of the JSON body as a string, failing if it is not one.
func (r response) str(t *testing.T, k string) string {
	t.Helper()
	v, ok := r.json(t)[k].(string)
	if !ok {
		t.Fatalf("%s: got %s, want a string member", k, r.body)
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
		t.Fatalf("NewRequest(%s %s): %v", method, u, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: got %v, want a response", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s %s: got %v, want the body", method, u, err)
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
		t.Fatalf("json.Marshal(%v): %v", v, err)
	}
	return send(t, c, http.MethodPost, u, contentTypeJSON, string(b), opts...)
}

func whoami(t *testing.T, c *http.Client, s *Server, token string) response {
	t.Helper()
	return send(t, c, http.MethodGet, s.URL()+PathWhoami, "", "", withHeader("Authorization", "Bearer "+token))
}

func ccForm(id, secret string) url.Values {
	return url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}
}

func ccJSON(id, secret string) map[string]any {
	return map[string]any{"grant_type": "client_credentials", "client_id": id, "client_secret": secret}
}

// mint asks d's base grant for a token with the test client or API key.
func mint(t *testing.T, c *http.Client, s *Server, d Dialect) response {
	t.Helper()
	switch d {
	case APIVideo:
		return postJSON(t, c, s.URL()+PathAPIVideoAuth, map[string]string{"apiKey": testAPIKey})
	case OAuth2JSON, Endorsed:
		return postJSON(t, c, s.URL()+d.TokenPath(), ccJSON(testClientID, testClientSecret))
	default:
		return postForm(t, c, s.URL()+d.TokenPath(), ccForm(testClientID, testClientSecret))
	}
}

// refresh presents rt to d's refresh grant as a correct client of the test
// client would: oauth2 with HTTP Basic, echo360 with client_id and no
// secret, api.video with {"refreshToken"}, oauth2_json with a JSON body.
func refresh(t *testing.T, c *http.Client, s *Server, d Dialect, rt string) response {
	t.Helper()
	switch d {
	case APIVideo:
		return postJSON(t, c, s.URL()+PathAPIVideoRefresh, map[string]string{"refreshToken": rt})
	case OAuth2JSON:
		m := ccJSON(testClientID, testClientSecret)
		m["grant_type"], m["refresh_token"] = "refresh_token", rt
		return postJSON(t, c, s.URL()+PathOAuth2JSONToken, m)
	case Echo360:
		return postForm(t, c, s.URL()+PathEcho360Token, url.Values{"grant_type": {"refresh_token"}, "client_id": {testClientID}, "refresh_token": {rt}})
	default:
		return postForm(t, c, s.URL()+d.TokenPath(), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, withBasic(testClientID, testClientSecret))
	}
}

// wantStatus checks the status and, for token endpoints, the headers every
// answer must carry.
func wantStatus(t *testing.T, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status: got %d, want %d; body %s", r.status, status, r.body)
	}
	if got := r.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control: got %q, want no-store", got)
	}
}

// wantFields checks members of the JSON body; a nil want means absent.
// Numbers decode as float64.
func wantFields(t *testing.T, r response, want map[string]any) {
	t.Helper()
	m := r.json(t)
	for k, w := range want {
		got, present := m[k]
		switch {
		case w == nil && present:
			t.Errorf("%s: got %v, want no such member; body %s", k, got, r.body)
		case w != nil && !reflect.DeepEqual(got, w):
			t.Errorf("%s: got %v (%T), want %v (%T); body %s", k, got, got, w, w, r.body)
		}
	}
}

// wantContentType checks the media type of an answer.
func wantContentType(t *testing.T, r response, want string) {
	t.Helper()
	if got, _, _ := strings.Cut(r.header.Get("Content-Type"), ";"); got != want {
		t.Errorf("Content-Type: got %q, want %s", r.header.Get("Content-Type"), want)
	}
}

// wantOAuthError checks an RFC 6749 §5.2 error answer.
func wantOAuthError(t *testing.T, r response, status int, code string) {
	t.Helper()
	wantStatus(t, r, status)
	wantContentType(t, r, "application/json")
	wantFields(t, r, map[string]any{"error": code})
	if d, _ := r.json(t)["error_description"].(string); d == "" {
		t.Errorf("error_description: got %s, want a description", r.body)
	}
}

// owner is who d's refresh tokens belong to in these tests.
func owner(d Dialect) string {
	if d == APIVideo {
		return testAPIKey
	}
	return testClientID
}

// checkWhoami proves token at the protected resource, issued to client.
func checkWhoami(t *testing.T, c *http.Client, s *Server, token, client string) {
	t.Helper()
	if !s.Valid(token) {
		t.Errorf("Valid(%q): got false, want true for a fresh token", token)
	}
	w := whoami(t, c, s, token)
	if w.status != http.StatusOK {
		t.Fatalf("whoami: got %d %s, want 200", w.status, w.body)
	}
	wantFields(t, w, map[string]any{"ok": true, "client": client})
}

// wantPanic checks that f panics with a message containing has.
func wantPanic(t *testing.T, has string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		msg, _ := recover().(string)
		if !strings.Contains(msg, has) {
			t.Errorf("panic: got %q, want a message containing %q", msg, has)
		}
	}()
	f()
}
