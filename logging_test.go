package tokenbroker

// No secret reaches a log line.

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// TestNoSecretInLogs runs the main flows of every dialect with trace logging
// (mint, a provider error that echoes the secrets it was sent, a refresh
// whose answer is lost, healing, refresh) and asserts that no client secret,
// API key, refresh token or access token reaches a log line. Every token
// state the backend writes is collected, so tokens that lived only briefly
// count too. The warnings and errors the reads return are checked as well.
func TestNoSecretInLogs(t *testing.T) {
	e := newEnv(t)
	var logs syncBuffer
	e.b.setLogger(hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: &logs}))
	secrets := newSecretSet(testClientSecret, testAPIKey)
	record := func(entry *logical.StorageEntry) {
		var st tokenState
		if strings.HasPrefix(entry.Key, tokenPrefix) && json.Unmarshal(entry.Value, &st) == nil {
			secrets.add(st.AccessToken, st.RefreshToken)
		}
	}
	e.storage.onPut.Store(&record)
	var answers []string // errors and warnings, checked for secrets too
	defer e.storage.onPut.Store(nil)

	for _, d := range []fakeprovider.Dialect{fakeprovider.OAuth2, fakeprovider.Echo360, fakeprovider.APIVideo, fakeprovider.Endorsed, fakeprovider.OAuth2JSON} {
		name := string(d)
		e.config(name, d, map[string]any{"encoding": nil})
		e.token(name)
		e.fake.Fail(1, fakeprovider.FailEchoSecret)
		// Depending on the dialect: an error, the cached token with a
		// warning, or a new chain (the error refused the refresh token).
		e.clock.Add(2 * time.Hour)
		resp, err := e.creds(name, nil)
		if resp != nil {
			answers = append(answers, resp.Warnings...)
		}
		answers = append(answers, fmt.Sprint(err))
		e.fake.Fail(1, fakeprovider.FailDropAfterConsume)
		e.clock.Add(2 * time.Hour)
		e.token(name)
		e.clock.Add(2 * time.Hour)
		e.token(name)
		e.settle(name)
		e.fake.ClearFailures() // drop what this dialect did not consume
	}
	if logs.Len() == 0 {
		t.Fatal("log is empty, want the flows above logged at trace level")
	}
	if n := secrets.len(); n < 10 {
		t.Fatalf("collected %d secrets, want the test credentials and every token written", n)
	}
	out := logs.String() + strings.Join(answers, "\n")
	for _, secret := range secrets.list() {
		if strings.Contains(out, secret) {
			t.Fatalf("a secret reached the log or an answer: %q", secret)
		}
	}
}

// secretSet collects secrets from several goroutines; "" is never one.
type secretSet struct {
	mu sync.Mutex
	m  map[string]bool
}

func newSecretSet(secrets ...string) *secretSet {
	s := &secretSet{m: map[string]bool{}}
	s.add(secrets...)
	return s
}

func (s *secretSet) add(secrets ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range secrets {
		if v != "" {
			s.m[v] = true
		}
	}
}

func (s *secretSet) len() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.m) }

func (s *secretSet) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.m))
	for v := range s.m {
		out = append(out, v)
	}
	return out
}

// syncBuffer is a log destination safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
func (s *syncBuffer) Len() int       { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Len() }
