package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is written by the server's handlers and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// running is the command started by runCommand.
type running struct {
	base           string
	client         *http.Client
	stdout, stderr lockedBuffer
	cancel         context.CancelFunc
	code           chan int
}

// runCommand starts the command with args plus -addr-out, waits for its URL
// file, and returns a client that trusts its CA when caFile is given.
func runCommand(t *testing.T, caFile string, args ...string) *running {
	t.Helper()
	urlFile := filepath.Join(t.TempDir(), "url.txt")
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, code: make(chan int, 1)}
	t.Cleanup(cancel)
	go func() { r.code <- run(ctx, append(args, "-addr-out", urlFile), &r.stdout, &r.stderr) }()

	deadline := time.Now().Add(5 * time.Second)
	for {
		if b, err := os.ReadFile(urlFile); err == nil {
			r.base = strings.TrimSpace(string(b))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("URL file after 5s: got none, want one; stderr: %s", r.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	tr := &http.Transport{}
	if caFile != "" {
		caPEM, err := os.ReadFile(caFile)
		if err != nil {
			t.Fatalf("reading the CA file: got %v, want its PEM", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			t.Fatalf("CA file: got %q, want a PEM certificate", caPEM)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	t.Cleanup(tr.CloseIdleConnections)
	r.client = &http.Client{Transport: tr, Timeout: 5 * time.Second}
	return r
}

// stop cancels the command and checks that it exits cleanly.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case got := <-r.code:
		if got != 0 {
			t.Fatalf("exit code: got %d, want 0; stderr: %s", got, r.stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("run after cancel: still running after 5s, want it to return")
	}
}

// post sends a request and decodes a JSON object answer (nil otherwise).
func (r *running) post(t *testing.T, path, contentType, body string) (int, map[string]any) {
	t.Helper()
	resp, err := r.client.Post(r.base+path, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: got %v, want a response", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

// TestRun starts the command with TLS, mints an Echo360 and an api.video
// token with the demo credentials, and stops it through its context.
func TestRun(t *testing.T) {
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	r := runCommand(t, caFile, "-tls", "-ca-out", caFile,
		"-client-id", "cid", "-client-secret", "top-secret", "-api-key", "key-123", "-lifetime", "2m")
	if !strings.HasPrefix(r.base, "https://127.0.0.1:") {
		t.Fatalf("URL: got %q, want https://127.0.0.1:…", r.base)
	}

	cc := url.Values{"grant_type": {"client_credentials"}, "client_id": {"cid"}, "client_secret": {"top-secret"}}
	status, tok := r.post(t, "/oauth2/access_token", "application/x-www-form-urlencoded", cc.Encode())
	accessToken, _ := tok["access_token"].(string)
	if status != 200 || tok["expires_in"] != 120.0 || accessToken == "" {
		t.Fatalf("echo360 token: got %d %v, want 200 with an access token for 120s", status, tok)
	}
	if status, body := r.post(t, "/auth/api-key", "application/json", `{"apiKey":"key-123"}`); status != 200 {
		t.Fatalf("api-key: got %d %v, want 200", status, body)
	}
	r.stop(t)

	out, logs := r.stdout.String(), r.stderr.String()
	for _, want := range []string{r.base, "/oauth2/token", "/oauth/token", "/oauth2/access_token", "/auth/api-key", "/auth/refresh", "/api/v1/auth/tokens", "/api/whoami"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout: got\n%s\nwant it to contain %q", out, want)
		}
	}
	if want := "dialect=echo360 endpoint=/oauth2/access_token grant=client_credentials status=200"; !strings.Contains(logs, want) {
		t.Errorf("stderr: got\n%s\nwant a line containing %q", logs, want)
	}
	for _, secret := range []string{"top-secret", "key-123", accessToken} {
		if strings.Contains(out+logs, secret) {
			t.Errorf("output: got a secret or token %q in\nstdout:\n%s\nstderr:\n%s\nwant none", secret, out, logs)
		}
	}
}

// TestRunSwitches: the strictness flags reach the server.
func TestRunSwitches(t *testing.T) {
	r := runCommand(t, "", "-echo360-encoding", "query", "-oauth2-json-refresh-tokens",
		"-refresh-token-lifetime", "1h", "-refresh-expiry-field", "x_refresh_token_expires_in", "-refresh-reuse-grace", "30m")
	defer r.stop(t)
	cc := url.Values{"grant_type": {"client_credentials"}, "client_id": {"demo-client"}, "client_secret": {"demo-secret"}}

	t.Run("echo360 reads the query only", func(t *testing.T) {
		if status, body := r.post(t, "/oauth2/access_token?"+cc.Encode(), "", ""); status != 200 {
			t.Errorf("query parameters: got %d %v, want 200", status, body)
		}
		if status, body := r.post(t, "/oauth2/access_token", "application/x-www-form-urlencoded", cc.Encode()); status != 400 || body["error"] != "invalid_request" {
			t.Errorf("form body: got %d %v, want 400 invalid_request", status, body)
		}
	})
	t.Run("oauth2_json hands out refresh tokens with an announced lifetime", func(t *testing.T) {
		status, body := r.post(t, "/oauth/token", "application/json", `{"grant_type":"client_credentials","client_id":"demo-client","client_secret":"demo-secret"}`)
		if rt, _ := body["refresh_token"].(string); status != 200 || rt == "" || body["x_refresh_token_expires_in"] != 3600.0 {
			t.Errorf("token: got %d %v, want 200 with a refresh_token and x_refresh_token_expires_in 3600", status, body)
		}
	})
	t.Run("a rotated refresh token works again within the grace", func(t *testing.T) {
		_, first := r.post(t, "/auth/api-key", "application/json", `{"apiKey":"demo-api-key"}`)
		again := `{"refreshToken":"` + first["refresh_token"].(string) + `"}`
		for i := range 2 {
			if status, body := r.post(t, "/auth/refresh", "application/json", again); status != 200 {
				t.Errorf("refresh %d: got %d %v, want 200", i+1, status, body)
			}
		}
	})
}

// TestRunPreviousTokenRevocation: -previous-token-revocation reaches the
// server; without it, earlier tokens are kept.
func TestRunPreviousTokenRevocation(t *testing.T) {
	cc := url.Values{"grant_type": {"client_credentials"}, "client_id": {"demo-client"}, "client_secret": {"demo-secret"}}
	for _, tc := range []struct {
		name              string
		args              []string
		wantFirstAccepted bool // after a second mint, whoami still accepts the first token
	}{
		{"default: earlier tokens are kept", nil, true},
		{"kept", []string{"-previous-token-revocation", "kept"}, true},
		{"on_refresh: a new client-credentials token ends nothing", []string{"-previous-token-revocation", "on_refresh"}, true},
		{"on_new_token: one active token per client", []string{"-previous-token-revocation", "on_new_token"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCommand(t, "", tc.args...)
			defer r.stop(t)
			var tokens []string
			for range 2 {
				status, body := r.post(t, "/oauth2/token", "application/x-www-form-urlencoded", cc.Encode())
				tok, _ := body["access_token"].(string)
				if status != 200 || tok == "" {
					t.Fatalf("mint: got %d %v, want 200 with an access token", status, body)
				}
				tokens = append(tokens, tok)
			}
			for i, want := range []bool{tc.wantFirstAccepted, true} {
				req, _ := http.NewRequest(http.MethodGet, r.base+"/api/whoami", nil)
				req.Header.Set("Authorization", "Bearer "+tokens[i])
				resp, err := r.client.Do(req)
				if err != nil {
					t.Fatalf("whoami: got %v, want a response", err)
				}
				resp.Body.Close()
				if got := resp.StatusCode == 200; got != want {
					t.Errorf("whoami with token %d of 2: got %d, want accepted=%v", i+1, resp.StatusCode, want)
				}
			}
		})
	}
}

func TestRunBadFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"unknown flag", []string{"-no-such-flag"}, 2},
		{"-ca-out without -tls", []string{"-ca-out", filepath.Join(t.TempDir(), "ca.pem")}, 2},
		{"unknown echo360 encoding", []string{"-echo360-encoding", "json"}, 2},
		{"unknown refresh expiry field", []string{"-refresh-expiry-field", "expires_at"}, 2},
		{"unknown previous token revocation", []string{"-previous-token-revocation", "always"}, 2},
		{"bad address", []string{"-addr", "not an address"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut lockedBuffer
			if got := run(context.Background(), tc.args, &out, &errOut); got != tc.want {
				t.Errorf("exit code: got %d, want %d; stderr: %s", got, tc.want, errOut.String())
			}
		})
	}
}

// TestRunConsentPage: -consent-page makes a browser's GET of the
// authorization endpoint a page, prefilled with -account-email; without it
// the request is approved at once.
func TestRunConsentPage(t *testing.T) {
	auth := "/oauth2/authorize?" + url.Values{"response_type": {"code"}, "client_id": {"demo-client"},
		"redirect_uri": {"http://127.0.0.1:8200/v1/tokenbroker/callback"}, "state": {"st"}}.Encode()
	for _, tc := range []struct {
		name       string
		args       []string
		wantStatus int
		wantBody   string // in the page; "" for a redirect
	}{
		{"default: approved at once", nil, http.StatusFound, ""},
		{"-consent-page: the page", []string{"-consent-page"}, http.StatusOK, `value="user1@example.test"`},
		{"-consent-page -account-email: the page, prefilled", []string{"-consent-page", "-account-email", "demo-user@example.test"},
			http.StatusOK, `value="demo-user@example.test"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCommand(t, "", tc.args...)
			defer r.stop(t)
			r.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			resp, err := r.client.Get(r.base + auth)
			if err != nil {
				t.Fatalf("GET authorize: got %v, want a response", err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if got, want := resp.StatusCode, tc.wantStatus; got != want {
				t.Fatalf("GET authorize: got %d %s, want %d", got, b, want)
			}
			if tc.wantBody == "" {
				if got := resp.Header.Get("Location"); !strings.Contains(got, "code=") {
					t.Errorf("Location: got %q, want the redirect with a code", got)
				}
				return
			}
			if !strings.Contains(string(b), tc.wantBody) || !strings.Contains(string(b), ">Approve</button>") {
				t.Errorf("page: got %s, want %s and an Approve button", b, tc.wantBody)
			}
		})
	}
}
