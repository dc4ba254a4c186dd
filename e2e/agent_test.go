//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Vault Agent renders `{{ with secret "tokenbroker/creds/agent" }}` to a file and
// re-renders it with the next token before the old one expires, scheduling its
// re-reads from the response's ttl/rotation_period instead of polling.
//
// With a 40s token and refresh_ahead=10s the expected schedule is: read at 0s
// (token A, ttl 30) → read at ~31s inside A's refresh window (A again, a
// background refresh fetches B) → read a few seconds later renders B while A
// is still valid → the same again for B → C at ~70s.
func TestVaultAgentTemplate(t *testing.T) {
	t.Parallel()
	const (
		lifetime = 40 * time.Second
		runFor   = 85 * time.Second // ~2 lifetimes; the test stops at the second re-render (~70s)
	)
	v := StartVaultWithPlugin(t)
	fake := StartFake(t, lifetime)
	auditLog := filepath.Join(v.Dir, "audit.log")
	v.Must("audit", "enable", "file", "file_path="+auditLog)
	v.WriteConfig("agent", fake.ConfigArgs("echo360", "refresh_ahead=10s")...)

	start := time.Now()
	run := startAgent(t, v, `{{ with secret "tokenbroker/creds/agent" }}{{ .Data.access_token }}{{ end }}`)
	agent, out := run.agent, run.file

	// Watch the rendered file: it must always hold a token the provider accepts,
	// and each change must come while the previous token is still valid.
	type render struct {
		at    time.Time
		token string
	}
	var renders []render
	current := ""
	for time.Since(start) < runFor && len(renders) < 3 {
		select {
		case <-agent.done:
			t.Fatalf("vault agent exited:\n%s", tail(agent.log, 30))
		case <-time.After(100 * time.Millisecond):
		}
		b, err := os.ReadFile(out)
		if err != nil || len(b) == 0 {
			if current != "" {
				t.Fatalf("rendered file disappeared or emptied: %v", err)
			}
			continue
		}
		tok := strings.TrimSpace(string(b))
		if tok != current {
			if current != "" && !fake.Valid(current) {
				t.Errorf("at %s the file changed only after the old token had expired",
					time.Since(start).Round(time.Second))
			}
			renders = append(renders, render{time.Now(), tok})
			t.Logf("at %s: rendered token #%d (valid=%v)", time.Since(start).Round(100*time.Millisecond), len(renders), fake.Valid(tok))
			current = tok
		}
		if !fake.Valid(current) {
			t.Fatalf("at %s the rendered file holds a token the provider no longer accepts",
				time.Since(start).Round(time.Second))
		}
	}

	elapsed := time.Since(start).Round(time.Second)
	if len(renders) == 0 {
		t.Fatalf("agent never rendered the template:\n%s", tail(agent.log, 30))
	}
	if changes := len(renders) - 1; changes < 1 {
		t.Errorf("the rendered token never changed in %s (token lifetime %s)", elapsed, lifetime)
	}
	// Bounded work: one mint + a refresh per lifetime, not a poll every few seconds.
	if calls := fake.TotalCalls(); calls > 4 {
		t.Errorf("%d upstream calls in %s; want ≤ 4", calls, elapsed)
	}
	reads := countAuditRequests(t, auditLog, "read", mountPath+"/creds/agent")
	if reads > 10 {
		t.Errorf("agent read creds %d times in %s; want ≤ 10 (it should sleep until the ttl)", reads, elapsed)
	}
	if n := fake.RefreshReuses(); n != 0 {
		t.Errorf("fake saw %d reused refresh token(s)", n)
	}
	t.Logf("in %s: renders=%d upstream calls=%d creds reads=%d", elapsed, len(renders), fake.TotalCalls(), reads)
}

// countAuditRequests counts request entries in a file audit log for an operation and path.
func countAuditRequests(t *testing.T, auditLog, operation, path string) int {
	t.Helper()
	b, err := os.ReadFile(auditLog)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		var e struct {
			Type    string `json:"type"`
			Request struct {
				Operation string `json:"operation"`
				Path      string `json:"path"`
			} `json:"request"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Type == "request" &&
			e.Request.Operation == operation && e.Request.Path == path {
			n++
		}
	}
	return n
}
