package fakeprovider

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLifecycle(t *testing.T) {
	s := New(Options{})
	if got := s.URL(); got != "" {
		t.Errorf("URL before Start: got %q, want \"\"", got)
	}
	steps := []struct {
		name    string
		do      func() error
		wantErr bool
	}{
		{"Start", s.Start, false},
		{"second Start", s.Start, true},
		{"Close", func() error { s.Close(); return nil }, false},
		{"second Close", func() error { s.Close(); return nil }, false},
		{"Start after Close", s.Start, true},
		{"Close before Start", func() error { New(Options{}).Close(); return nil }, false},
		{"TLS on an explicit address", func() error {
			s2 := New(Options{Addr: "127.0.0.1:0", TLS: true})
			defer s2.Close()
			return s2.Start()
		}, false},
		{"bad address", New(Options{Addr: "not an address"}).Start, true},
	}
	for _, step := range steps {
		if err := step.do(); (err != nil) != step.wantErr {
			t.Errorf("%s: got error %v, want error %v", step.name, err, step.wantErr)
		}
	}
}

func TestTLSCertificate(t *testing.T) {
	s, c := start(t, Options{TLS: true})
	block, _ := pem.Decode([]byte(s.CAPEM()))
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("CAPEM: got %q, want a PEM certificate", s.CAPEM())
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("ParseCertificate: got %v, want the CA", err)
	}
	if key, ok := ca.PublicKey.(*ecdsa.PublicKey); !ok || key.Curve != elliptic.P256() || !ca.IsCA {
		t.Errorf("CA: got key %T, IsCA %v; want ECDSA P-256, true", ca.PublicKey, ca.IsCA)
	}

	pool := x509.NewCertPool()
	pool.AddCert(ca)
	host := strings.TrimPrefix(s.URL(), "https://")
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", host, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("TLS dial: got %v, want a connection", err)
	}
	state := conn.ConnectionState()
	conn.Close()
	if state.NegotiatedProtocol == "h2" {
		t.Errorf("negotiated protocol: got h2, want HTTP/1.1")
	}
	for _, name := range []string{"localhost", "127.0.0.1", "::1"} {
		t.Run("leaf verifies for "+name, func(t *testing.T) {
			if _, err := state.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: name, Roots: pool}); err != nil {
				t.Errorf("Verify: got %v, want no error", err)
			}
		})
	}
	t.Run("a client without the CA is refused", func(t *testing.T) {
		untrusting := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{}}
		defer untrusting.CloseIdleConnections()
		if resp, err := untrusting.Get(s.URL() + PathWhoami); err == nil {
			resp.Body.Close()
			t.Errorf("GET: got %d, want a certificate error", resp.StatusCode)
		}
	})
	t.Run("a client with the CA connects", func(t *testing.T) {
		if r := whoami(t, c, s, "x"); r.status != 401 {
			t.Errorf("whoami: got %d, want 401", r.status)
		}
	})
	t.Run("no CAPEM without TLS", func(t *testing.T) {
		if got := New(Options{}).CAPEM(); got != "" {
			t.Errorf("CAPEM: got %q, want \"\"", got)
		}
	})
}

func TestLatency(t *testing.T) {
	s, c := start(t, Options{Latency: 150 * time.Millisecond})
	timed := func(f func()) time.Duration {
		began := time.Now()
		f()
		return time.Since(began)
	}
	if d := timed(func() { wantStatus(t, mint(t, c, s, OAuth2), 200) }); d < 150*time.Millisecond {
		t.Errorf("answered after: got %v, want >= 150ms", d)
	}

	t.Run("a request that gives up during the latency gets no answer and no token", func(t *testing.T) {
		s.SetLatency(5 * time.Second)
		defer s.SetLatency(0)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL()+PathOAuth2Token, strings.NewReader(ccForm(testClientID, testClientSecret).Encode()))
		req.Header.Set("Content-Type", contentTypeForm)
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("got a response (%d), want the client's timeout", resp.StatusCode)
		}
		wantCounts(t, s, counts{ClientCredentials: 1})
	})
	t.Run("SetLatency(0)", func(t *testing.T) {
		if d := timed(func() { wantStatus(t, mint(t, c, s, OAuth2), 200) }); d > time.Second {
			t.Errorf("answered after: got %v, want no delay", d)
		}
	})
	t.Run("whoami is not delayed", func(t *testing.T) {
		s.SetLatency(5 * time.Second)
		defer s.SetLatency(0)
		if d := timed(func() { whoami(t, c, s, "x") }); d > time.Second {
			t.Errorf("whoami answered after: got %v, want no delay", d)
		}
	})
}

// TestCloseUnblocksHangingHandlers: Close returns promptly even with a request
// hanging in FailTimeout, and the client sees the connection end.
func TestCloseUnblocksHangingHandlers(t *testing.T) {
	s := New(Options{Logf: t.Logf})
	if err := s.Start(); err != nil {
		t.Fatalf("Start: got %v, want no error", err)
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
			t.Fatalf("TotalCalls after 2s: got 0, want the request to arrive")
		}
		time.Sleep(5 * time.Millisecond)
	}
	began := time.Now()
	s.Close()
	if d := time.Since(began); d > time.Second {
		t.Errorf("Close took: got %v, want under 1s", d)
	}
	select {
	case err := <-errc:
		if err == nil {
			t.Errorf("hanging request: got a response, want the connection closed")
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("client 2s after Close: got no error yet, want the connection closed")
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
	r := mint(t, c, s, Echo360)
	rt, at := r.str(t, "refresh_token"), r.str(t, "access_token")
	refresh(t, c, s, Echo360, rt)
	mint(t, c, s, APIVideo)
	postForm(t, c, s.URL()+PathOAuth2Token, url.Values{"grant_type": {testClientSecret}}, withBasic(testClientID, testClientSecret))
	s.Fail(1, FailEchoSecret)
	mint(t, c, s, OAuth2)
	s.Close()

	mu.Lock()
	defer mu.Unlock()
	all := strings.Join(lines, "\n")
	for _, secret := range []string{testClientSecret, testAPIKey, rt, at} {
		if strings.Contains(all, secret) {
			t.Errorf("log: got a secret or token in\n%s\nwant none", all)
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
			t.Errorf("log: got\n%s\nwant a line containing %q", all, want)
		}
	}
	if len(lines) != 5 {
		t.Errorf("log lines: got %d, want 5, one per token request:\n%s", len(lines), all)
	}
}

func TestEndpoints(t *testing.T) {
	for _, d := range []Dialect{OAuth2, OAuth2JSON, Echo360, APIVideo, Endorsed} {
		if d.TokenPath() == "" {
			t.Errorf("%s.TokenPath(): got \"\", want a path", d)
		}
	}
	if got := Dialect("nope").TokenPath(); got != "" {
		t.Errorf("unknown dialect's TokenPath: got %q, want \"\"", got)
	}
	if got := len(Endpoints()); got != 15 {
		t.Errorf("len(Endpoints()): got %d, want 15 (7, revocation, userinfo, GitHub's /user, and 5 of the signing dialects)", got)
	}
}
