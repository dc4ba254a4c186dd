//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// Vault Agent against a provider that keeps one active token per client
// (the fake's on_new_token switch: any token issued to the client revokes
// the one before, a refresh as much as a mint). With revokes_previous_token,
// tokenbroker tells Agent to come back right before the renewal (ttl counts to
// it) and makes the read that comes in the handover wait for the renewed
// token, so the rendered file holds a revoked token only from the moment the
// provider issues the next one until Agent has written it: never longer than
// the provider's answer time plus the render margin below.
//
// With 20 s tokens and refresh_ahead=5s each token is renewed 15 s after it
// was issued, by the scheduler and Agent's read together (one upstream call);
// the test watches three renewals (about 47 s).
func TestVaultAgentRendersNoRevokedToken(t *testing.T) {
	t.Parallel()
	const (
		lifetime = 20 * time.Second
		latency  = 300 * time.Millisecond // the provider's answer time
		renewals = 3
		runFor   = 70 * time.Second // the renewals are due by ~47 s
		poll     = 50 * time.Millisecond
		// renderMargin: from the provider's answer to the file on disk: the
		// answer saved and returned through the plugin and Vault, Agent's
		// render and rename, and this test's poll interval.
		renderMargin = 500 * time.Millisecond
	)
	for _, tc := range []struct {
		name   string
		config []string
	}{
		{"client credentials, minted anew at each renewal", []string{"oauth2", "refresh_grant=never"}},
		{"refresh chain", []string{"echo360"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := StartVaultWithPlugin(t)
			fake := StartFake(t, lifetime, withLatency(latency),
				withPreviousTokenRevocation(fakeprovider.RevokePreviousOnNewToken))
			auditLog := filepath.Join(v.Dir, "audit.log")
			v.Must("audit", "enable", "file", "file_path="+auditLog)
			v.WriteConfig("agent", fake.ConfigArgs(tc.config[0],
				append(tc.config[1:], "refresh_ahead=5s", "revokes_previous_token=on_new_token")...)...)

			out := startAgent(t, v, `{{ with secret "tokenbroker/creds/agent" }}{{ .Data.access_token }} {{ .Data.expires_at_seconds }} {{ .Data.ttl }}{{ end }}`)
			start := time.Now()

			// Every distinct content of the file, and the tokens in order.
			type seen struct {
				at time.Time // the first poll that saw it
				renderedCreds
			}
			type render struct {
				seen
				contents   []seen        // this token's renderings (a re-read may change ttl)
				invalidFor time.Duration // sampled: how long polls found it refused
			}
			var renders []*render
			var current *render
			var last renderedCreds
			var invalidSince time.Time
			stoppedByRenewal := false
		watch:
			for time.Since(start) < runFor {
				select {
				case <-out.agent.done:
					t.Fatalf("vault agent exited:\n%s", tail(out.agent.log, 30))
				case <-time.After(poll):
				}
				b, err := os.ReadFile(out.file)
				if err != nil || len(b) == 0 {
					if current != nil {
						t.Fatalf("rendered file disappeared or emptied: %v", err)
					}
					continue
				}
				now := time.Now()
				r := parseRender(t, string(b))
				switch {
				case current == nil || r.token != current.token:
					if len(renders) == renewals+1 {
						stoppedByRenewal = true
						break watch // a fourth renewal: three are watched
					}
					current = &render{seen: seen{now, r}}
					current.contents = []seen{current.seen}
					renders = append(renders, current)
					invalidSince = time.Time{}
					t.Logf("at %s: token #%d rendered, expires_at %s, ttl %d", now.Sub(start).Round(10*time.Millisecond),
						len(renders), r.expiresAt.Sub(start).Round(10*time.Millisecond), r.ttl)
				case r != last:
					current.contents = append(current.contents, seen{now, r})
				}
				last = r
				if !fake.Valid(current.token) { // the provider's own check: revoked or expired
					if invalidSince.IsZero() {
						invalidSince = now
					}
					current.invalidFor = now.Sub(invalidSince) + poll
				}
				if len(renders) == renewals+1 && now.Sub(current.at) > 2*time.Second {
					break // the last renewal has settled
				}
			}
			elapsed := time.Since(start).Round(time.Second)
			if len(renders) < renewals+1 {
				t.Fatalf("in %s: %d renders, want %d (%d renewals)\nagent log:\n%s", elapsed, len(renders), renewals+1, renewals, tail(out.agent.log, 30))
			}

			// The provider's record: when each rendered token was revoked,
			// and how long the file still held it then.
			for i, r := range renders {
				revoked, ok := fake.RevokedAt(r.token)
				switch {
				case !ok && i < len(renders)-1:
					t.Errorf("token #%d: never revoked, want it revoked by the renewal that replaced it (on_new_token)", i+1)
					continue
				case !ok:
					continue
				case i == len(renders)-1 && !stoppedByRenewal:
					t.Errorf("token #%d (the last one rendered): revoked at %s, want it live", i+1, revoked.Sub(start).Round(10*time.Millisecond))
				}
				for _, c := range r.contents {
					if revoked.Before(c.expiresAt) {
						t.Errorf("token #%d: revoked at %s, before the expires_at %s rendered with it",
							i+1, revoked.Sub(start).Round(10*time.Millisecond), c.expiresAt.Sub(start))
					}
					// Agent reads again ttl+1 s after its read, which came
					// before c.at; reads in that last second wait for the renewal.
					if reread := c.at.Add(time.Duration(c.ttl) * time.Second); !reread.Before(revoked) {
						t.Errorf("token #%d: ttl %d rendered by %s points to %s, not before its revocation at %s",
							i+1, c.ttl, c.at.Sub(start).Round(10*time.Millisecond), reread.Sub(start).Round(10*time.Millisecond), revoked.Sub(start).Round(10*time.Millisecond))
					}
				}
				if i == len(renders)-1 {
					continue
				}
				held := renders[i+1].at.Sub(revoked)
				t.Logf("token #%d: revoked at %s; the file held it %s longer (polls found it refused for ~%s)",
					i+1, revoked.Sub(start).Round(10*time.Millisecond), held.Round(time.Millisecond), r.invalidFor)
				if limit := latency + renderMargin; held > limit || r.invalidFor > limit {
					t.Errorf("token #%d: the file held it revoked for %s (polls: %s), want at most the provider's answer time %s plus %s",
						i+1, held.Round(time.Millisecond), r.invalidFor, latency, renderMargin)
				}
			}

			// Bounded work: one upstream call per token, one or two reads each.
			if calls := fake.TotalCalls(); calls != len(renders) && !(stoppedByRenewal && calls == len(renders)+1) {
				t.Errorf("upstream calls: got %d, want %d (one per rendered token: reads in the window waited for the one renewal)", calls, len(renders))
			}
			if n := fake.RefreshReuses(); n != 0 {
				t.Errorf("reused refresh tokens: got %d, want 0", n)
			}
			reads := countAuditRequests(t, auditLog, "read", mountPath+"/creds/agent")
			if limit := 2*len(renders) + 1; reads > limit {
				t.Errorf("creds reads by Agent: got %d in %s, want at most %d (it sleeps until ttl+1)", reads, elapsed, limit)
			}
			t.Logf("in %s: renders=%d upstream calls=%d creds reads=%d revoked tokens=%d", elapsed, len(renders), fake.TotalCalls(), reads, fake.RevokedTokens())
		})
	}
}

// renderedCreds is one rendering of "<access_token> <expires_at_seconds> <ttl>".
type renderedCreds struct {
	token     string
	expiresAt time.Time
	ttl       int64
}

func parseRender(t *testing.T, s string) renderedCreds {
	t.Helper()
	f := strings.Fields(s)
	if len(f) != 3 {
		t.Fatalf("rendered file: got %d fields, want 3 (token, expires_at_seconds, ttl)", len(f))
	}
	exp, err1 := strconv.ParseInt(f[1], 10, 64)
	ttl, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("rendered file: expires_at_seconds %q, ttl %q: want integers", f[1], f[2])
	}
	return renderedCreds{token: f[0], expiresAt: time.Unix(exp, 0), ttl: ttl}
}
