package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
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

// TestRun starts the command with TLS, waits for its URL file, mints an
// Echo360 token with the demo credentials, and stops it through its context.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	urlFile := filepath.Join(dir, "url.txt")
	var stdout, stderr lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"-tls", "-ca-out", caFile, "-addr-out", urlFile,
			"-client-id", "cid", "-client-secret", "top-secret", "-api-key", "key-123", "-lifetime", "2m"}, &stdout, &stderr)
	}()

	var base string
	deadline := time.Now().Add(5 * time.Second)
	for {
		if b, err := os.ReadFile(urlFile); err == nil {
			base = strings.TrimSpace(string(b))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no URL file; stderr: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.HasPrefix(base, "https://127.0.0.1:") {
		t.Fatalf("URL = %q", base)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("CA file does not parse")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}

	resp, err := c.PostForm(base+"/oauth2/access_token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {"cid"}, "client_secret": {"top-secret"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || tok.ExpiresIn != 120 || tok.AccessToken == "" {
		t.Fatalf("token: %d %+v %v", resp.StatusCode, tok, err)
	}
	resp, err = c.Post(base+"/auth/api-key", "application/json", strings.NewReader(`{"apiKey":"key-123"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("api-key: %d", resp.StatusCode)
	}

	cancel()
	select {
	case got := <-code:
		if got != 0 {
			t.Fatalf("exit code %d; stderr: %s", got, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return after cancel")
	}

	out, logs := stdout.String(), stderr.String()
	for _, want := range []string{base, "/oauth2/token", "/oauth/token", "/oauth2/access_token", "/auth/api-key", "/auth/refresh", "/api/v1/auth/tokens", "/api/whoami"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(logs, "dialect=echo360 endpoint=/oauth2/access_token grant=client_credentials status=200") {
		t.Errorf("no request log line:\n%s", logs)
	}
	for _, secret := range []string{"top-secret", "key-123", tok.AccessToken} {
		if strings.Contains(out+logs, secret) {
			t.Errorf("output contains a secret or token %q:\nstdout:\n%s\nstderr:\n%s", secret, out, logs)
		}
	}
}

func TestRunBadFlags(t *testing.T) {
	var out, errOut lockedBuffer
	if got := run(context.Background(), []string{"-no-such-flag"}, &out, &errOut); got != 2 {
		t.Errorf("unknown flag: exit %d", got)
	}
	if got := run(context.Background(), []string{"-ca-out", filepath.Join(t.TempDir(), "ca.pem")}, &out, &errOut); got != 2 {
		t.Errorf("-ca-out without -tls: exit %d", got)
	}
	if got := run(context.Background(), []string{"-addr", "not an address"}, &out, &errOut); got != 1 {
		t.Errorf("bad address: exit %d", got)
	}
}
