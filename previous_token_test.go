package tokenbroker

// A provider that ends the previous access token when it issues the next
// (revokes_previous_token): a read never gets a token that tokenbroker's own
// renewal is about to end. The fake provider plays such a provider with its
// previous-token revocation switch and records when each token was revoked,
// so every served token can be held to the expires_at its read returned.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// revokingCase is a config whose renewals end the token served, against a
// fake that does what the config says.
type revokingCase struct {
	name     string
	fakeMode fakeprovider.PreviousTokenRevocation
	dialect  fakeprovider.Dialect
	fields   map[string]any // config fields beside the test credentials
	grant    string         // the grant of each renewal, at the fake
}

var revokingCases = []revokingCase{
	{"on_new_token/client credentials (oauth2, refresh_grant=never)", fakeprovider.RevokePreviousOnNewToken,
		fakeprovider.OAuth2, map[string]any{"revokes_previous_token": "on_new_token", "refresh_grant": "never"}, "client_credentials"},
	{"on_new_token/echo360 refresh chain", fakeprovider.RevokePreviousOnNewToken,
		fakeprovider.Echo360, map[string]any{"revokes_previous_token": "on_new_token"}, "refresh_token"},
	{"on_refresh/echo360 refresh chain", fakeprovider.RevokePreviousOnRefresh,
		fakeprovider.Echo360, map[string]any{"revokes_previous_token": "on_refresh"}, "refresh_token"},
}

// credsTerms is what a creds read promised about its token.
type credsTerms struct {
	token     string
	expiresAt time.Time // expires_at_seconds; expires_at must say the same
	ttl       int64
	rotation  int64
	warnings  []string
}

// termsOf reads a creds response; it returns an error rather than failing,
// so readers on other goroutines can use it.
func termsOf(resp *logical.Response) (credsTerms, error) {
	var c credsTerms
	if resp == nil || resp.Data == nil {
		return c, fmt.Errorf("creds response: got none, want data")
	}
	var ok [4]bool
	c.token, ok[0] = resp.Data["access_token"].(string)
	secs, ok1 := resp.Data["expires_at_seconds"].(int64)
	text, ok2 := resp.Data["expires_at"].(string)
	c.ttl, ok[1] = resp.Data["ttl"].(int64)
	c.rotation, ok[2] = resp.Data["rotation_period"].(int64)
	ok[3] = ok1 && ok2
	if ok != [4]bool{true, true, true, true} || c.token == "" {
		return c, fmt.Errorf("creds response: got fields %v, want access_token, expires_at(_seconds), ttl and rotation_period", keysOf(resp.Data))
	}
	c.expiresAt = time.Unix(secs, 0).UTC()
	if parsed, err := time.Parse(time.RFC3339, text); err != nil || !parsed.Equal(c.expiresAt) {
		return c, fmt.Errorf("expires_at %q and expires_at_seconds %d: got different times, want the same", text, secs)
	}
	c.warnings = resp.Warnings
	return c, nil
}

func keysOf(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// read reads creds/<name>; any error is fatal.
func (e *env) read(name string) credsTerms {
	e.t.Helper()
	resp, err := e.creds(name, nil)
	if err != nil {
		e.t.Fatalf("creds/%s: got %v, want a token", name, err)
	}
	c, err := termsOf(resp)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// wantTerms checks a read's promise against what the test expects.
func wantTerms(t *testing.T, what string, got credsTerms, token string, expiresAt time.Time, ttl int64) {
	t.Helper()
	if token != "" && got.token != token {
		t.Errorf("%s: got another access token, want the one served before", what)
	}
	if !got.expiresAt.Equal(expiresAt) || got.ttl != ttl {
		t.Errorf("%s: got expires_at %s, ttl %d; want %s, %d", what, got.expiresAt.Format(time.RFC3339), got.ttl, expiresAt.Format(time.RFC3339), ttl)
	}
}

// TestRevokesPreviousTokenTerms: on a frozen clock, a chain whose renewal
// ends the served token says so at every read: expires_at is the planned
// renewal (the refresh window's start), ttl the whole seconds to it less
// one; a read from the window's start waits for the renewal, N concurrent
// readers make one upstream call, and the old token is revoked no sooner
// than it was promised. status/<name> shows the setting and the renewal.
func TestRevokesPreviousTokenTerms(t *testing.T) {
	const (
		lifetime     = 10 * time.Minute
		refreshAhead = 2 * time.Minute
		readers      = 16
	)
	for _, tc := range revokingCases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.fake.SetPreviousTokenRevocation(tc.fakeMode)
			e.fake.SetLifetime(lifetime)
			e.config("x", tc.dialect, withFields(tc.fields, map[string]any{"refresh_ahead": int(refreshAhead.Seconds())}))
			t0 := e.clock.Now()
			renewal := t0.Add(lifetime - refreshAhead)

			first := e.read("x")
			wantTerms(t, "first read", first, "", renewal, int64((lifetime-refreshAhead)/time.Second)-1)
			expect(t, "rotation_period", first.rotation, int64(lifetime/time.Second))
			st := e.status("x")
			expectField(t, st, "revokes_previous_token", tc.fields["revokes_previous_token"])
			expectField(t, st, "next_renewal_at", renewal.Format(time.RFC3339))

			for _, step := range []struct {
				at  time.Duration // after the mint
				ttl int64
			}{
				{2*time.Minute + 30500*time.Millisecond, 328}, // 329.5 s to the renewal
				{7*time.Minute + 58500*time.Millisecond, 0},   // 1.5 s: Agent comes back within the last second
			} {
				e.clock.Add(t0.Add(step.at).Sub(e.clock.Now()))
				wantTerms(t, fmt.Sprintf("read %s after the mint", step.at), e.read("x"), first.token, renewal, step.ttl)
			}
			expect(t, "upstream calls before the window", e.fake.TotalCalls(), 1)

			// The window's start: every reader waits for the one renewal.
			e.clock.Add(renewal.Sub(e.clock.Now()))
			e.fake.SetLatency(200 * time.Millisecond)
			e.fake.Reset()
			got := make([]credsTerms, readers)
			errs := make([]error, readers)
			var wg sync.WaitGroup
			for i := range readers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, err := e.creds("x", nil)
					if err == nil {
						got[i], err = termsOf(resp)
					}
					errs[i] = err
				}()
			}
			wg.Wait()
			for i := range readers {
				if errs[i] != nil {
					t.Fatalf("reader %d at the window's start: got %v, want a token", i, errs[i])
				}
				if got[i].token == first.token {
					t.Fatalf("reader %d at the window's start: got the token the renewal ends, want the renewed one", i)
				}
				if got[i].token != got[0].token {
					t.Fatalf("reader %d at the window's start: got another token than reader 0, want one renewal for all", i)
				}
				wantTerms(t, fmt.Sprintf("reader %d", i), got[i], "", renewal.Add(lifetime-refreshAhead), int64((lifetime-refreshAhead)/time.Second)-1)
			}
			expect(t, "upstream calls for the renewal", e.fake.TotalCalls(), 1)
			expect(t, tc.grant+" grants for the renewal", e.fake.Grants(tc.grant), 1)
			expect(t, "token valid at the provider", e.fake.Valid(got[0].token), true)
			at, revoked := e.fake.RevokedAt(first.token)
			if !revoked || at.Before(first.expiresAt) {
				t.Errorf("the first token: RevokedAt got %v, %v; want revoked, no sooner than the expires_at %s it was served with", at, revoked, first.expiresAt)
			}
			expect(t, "tokens revoked at the provider", e.fake.RevokedTokens(), 1)
			expectField(t, e.status("x"), "next_renewal_at", renewal.Add(lifetime-refreshAhead).Format(time.RFC3339))
			expect(t, "refresh token reuses", e.fake.RefreshReuses(), 0)
		})
	}
}

// TestPreviousTokenKeptServesInTheWindow: where the renewal ends nothing
// (never, oauth2's default; on_refresh on a chain that renews by its base
// grant), a read in the window is served the cached token at once, with the
// provider's expiry, and one refresh runs in the background.
func TestPreviousTokenKeptServesInTheWindow(t *testing.T) {
	const (
		lifetime     = 10 * time.Minute
		refreshAhead = 2 * time.Minute
		latency      = 300 * time.Millisecond
	)
	for _, tc := range []struct {
		name     string
		fakeMode fakeprovider.PreviousTokenRevocation
		fields   map[string]any
		want     string // status revokes_previous_token
	}{
		{"never (oauth2's default)", fakeprovider.PreviousTokensKept, nil, "never"},
		{"never, said", fakeprovider.PreviousTokensKept, map[string]any{"revokes_previous_token": "never"}, "never"},
		{"on_refresh on a chain that mints (refresh_grant=never)", fakeprovider.RevokePreviousOnRefresh,
			map[string]any{"revokes_previous_token": "on_refresh", "refresh_grant": "never"}, "on_refresh"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.fake.SetPreviousTokenRevocation(tc.fakeMode)
			e.fake.SetLifetime(lifetime)
			e.config("x", fakeprovider.OAuth2, withFields(tc.fields, map[string]any{"refresh_ahead": int(refreshAhead.Seconds())}))
			t0 := e.clock.Now()
			first := e.read("x")
			wantTerms(t, "first read", first, "", t0.Add(lifetime), int64((lifetime-refreshAhead)/time.Second))
			expectField(t, e.status("x"), "revokes_previous_token", tc.want)

			e.clock.Add(lifetime - refreshAhead + 30*time.Second) // in the window
			e.fake.SetLatency(latency)
			began := time.Now()
			in := e.read("x")
			if took := time.Since(began); took >= latency {
				t.Errorf("read in the window took %s, want the cached token at once (the provider answers in %s)", took, latency)
			}
			wantTerms(t, "read in the window", in, first.token, t0.Add(lifetime), minAgentTTL)
			e.settle("x")
			next := e.read("x")
			if next.token == first.token || !e.fake.Valid(next.token) {
				t.Errorf("after the background refresh: got the same or an invalid token, want a new valid one")
			}
			if at, revoked := e.fake.RevokedAt(first.token); revoked {
				t.Errorf("the token served in the window: revoked at %s, want it kept", at)
			}
			expect(t, "upstream calls", e.fake.TotalCalls(), 2)
		})
	}
}

// TestRevokesPreviousTokenFailedRenewal: a renewal that fails for a while
// (the provider answers 503) leaves the served token alive at the provider;
// the read is served it, with expires_at and ttl moved to the retry time,
// and the retry then ends it no sooner than that.
func TestRevokesPreviousTokenFailedRenewal(t *testing.T) {
	const (
		lifetime     = 10 * time.Minute
		refreshAhead = 2 * time.Minute
	)
	for _, tc := range revokingCases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.fake.SetPreviousTokenRevocation(tc.fakeMode)
			e.fake.SetLifetime(lifetime)
			e.config("x", tc.dialect, withFields(tc.fields, map[string]any{"refresh_ahead": int(refreshAhead.Seconds())}))
			first := e.read("x")
			e.clock.Add(first.expiresAt.Sub(e.clock.Now())) // the planned renewal
			now := e.clock.Now()

			e.fake.Fail(1, fakeprovider.Fail503HTML)
			failed := e.read("x")
			if failed.token != first.token {
				t.Fatalf("read while the renewal fails: got another token, want the one still valid")
			}
			if len(failed.warnings) == 0 {
				t.Errorf("read while the renewal fails: got no warning, want one naming the failure")
			}
			if !failed.expiresAt.After(first.expiresAt) || !failed.expiresAt.Before(now.Add(lifetime-refreshAhead)) {
				t.Errorf("expires_at after the failure: got %s, want the retry time: after the planned renewal %s, before the token's own expiry",
					failed.expiresAt.Format(time.RFC3339), first.expiresAt.Format(time.RFC3339))
			}
			expect(t, "ttl after the failure", failed.ttl, int64(failed.expiresAt.Sub(now)/time.Second)-1)
			expectField(t, e.status("x"), "next_renewal_at", failed.expiresAt.Format(time.RFC3339))
			expect(t, "tokens revoked at the provider", e.fake.RevokedTokens(), 0)
			expect(t, "served token valid at the provider", e.fake.Valid(first.token), true)

			calls := e.fake.TotalCalls()
			wantTerms(t, "second read during the backoff", e.read("x"), first.token, failed.expiresAt, failed.ttl)
			expect(t, "upstream calls by a read during the backoff", e.fake.TotalCalls(), calls)

			e.clock.Add(failed.expiresAt.Add(time.Second).Sub(now)) // past the retry time
			retried := e.read("x")
			if retried.token == first.token || !e.fake.Valid(retried.token) {
				t.Fatalf("read after the retry time: got the old or an invalid token, want the renewed one")
			}
			at, revoked := e.fake.RevokedAt(first.token)
			if !revoked || at.Before(failed.expiresAt) {
				t.Errorf("the served token: RevokedAt got %v, %v; want revoked no sooner than the expires_at %s last served with it", at, revoked, failed.expiresAt)
			}
			expect(t, "refresh token reuses", e.fake.RefreshReuses(), 0)
		})
	}
}

// TestRevokesPreviousTokenSpentRenewal: a renewal that may have ended the
// served token (its refresh refused, or its answer lost after the provider
// issued the next token) never serves that token again: a config that can
// mint serves a new token in the same read, a seed-only chain an error; a
// lost mint of a one-token-per-client config an error, then a new token.
func TestRevokesPreviousTokenSpentRenewal(t *testing.T) {
	type chain struct {
		name     string
		c        revokingCase
		seedOnly bool
	}
	var chains []chain
	for _, c := range revokingCases[1:] { // the refresh chains
		chains = append(chains, chain{c.name + "/config can mint", c, false}, chain{c.name + "/seed only", c, true})
	}
	for _, ch := range chains {
		for _, class := range refreshFailures() {
			if !class.spends {
				continue
			}
			t.Run(ch.name+"/"+class.name, func(t *testing.T) {
				e := newEnv(t)
				e.fake.SetPreviousTokenRevocation(ch.c.fakeMode)
				if ch.seedOnly {
					without := map[string]any{"client_secret": nil} // kept as nil: seedConfig's withFields deletes it
					for k, v := range ch.c.fields {
						without[k] = v
					}
					e.seedConfig("x", ch.c.dialect, without)
				} else {
					e.config("x", ch.c.dialect, ch.c.fields)
				}
				first := e.read("x")
				e.clock.Add(first.expiresAt.Sub(e.clock.Now()))
				class.inject(e.fake)

				resp, err := e.creds("x", nil)
				switch {
				case ch.seedOnly:
					expectErr(t, "seed-only read after the chain died", err, "write a new refresh_token to config/x")
				case err != nil:
					t.Fatalf("read after the refresh failed: got %v, want a token minted in the same read", err)
				default:
					got, err := termsOf(resp)
					if err != nil {
						t.Fatal(err)
					}
					if got.token == first.token || !e.fake.Valid(got.token) {
						t.Fatalf("read after the refresh failed: got the old or an invalid token, want a new one")
					}
				}
				// Whatever follows, the old token is never served again.
				for i := range 2 {
					if resp, err := e.creds("x", nil); err == nil && resp.Data["access_token"] == first.token {
						t.Fatalf("read %d after the failure: got the token the failed renewal may have ended", i+1)
					}
				}
				expect(t, "refresh token reuses", e.fake.RefreshReuses(), 0)
			})
		}
	}

	t.Run("on_new_token/client credentials/lost mint", func(t *testing.T) {
		c := revokingCases[0]
		e := newEnv(t)
		e.fake.SetPreviousTokenRevocation(c.fakeMode)
		e.config("x", c.dialect, c.fields)
		first := e.read("x")
		e.clock.Add(first.expiresAt.Sub(e.clock.Now()))
		e.fake.Fail(1, fakeprovider.FailDropAfterConsume)
		if resp, err := e.creds("x", nil); err == nil && resp.Data["access_token"] == first.token {
			t.Fatalf("read after a lost mint: got the token the lost mint ended (revoked at the provider: %v)", !e.fake.Valid(first.token))
		}
		next := e.read("x")
		if next.token == first.token || !e.fake.Valid(next.token) {
			t.Fatalf("read after a lost mint: got the old or an invalid token, want a new one")
		}
	})
}

// newLiveEnv is newEnv on the real clock: the fake provider, the backend and
// its refresh loop all use time.Now, so reads that wait until the renewal
// and the scheduler that makes it run as they do in Vault. There is no
// e.clock; restart is not for it.
func newLiveEnv(t *testing.T) *env {
	t.Helper()
	fake := fakeprovider.New(fakeprovider.Options{TLS: true})
	if err := fake.Start(); err != nil {
		t.Fatalf("start the fake provider: %v", err)
	}
	t.Cleanup(fake.Close)
	fake.AddClient(testClientID, testClientSecret)
	fake.AddAPIKey(testAPIKey)
	e := &env{t: t, storage: &faultyStorage{InmemStorage: &logical.InmemStorage{}}, fake: fake}
	conf := logical.TestBackendConfig()
	conf.StorageView = e.storage
	e.b = newBackend(conf)
	e.b.now = time.Now
	if err := e.b.Setup(context.Background(), conf); err != nil {
		t.Fatalf("backend setup: %v", err)
	}
	e.b.setLogger(hclog.NewNullLogger()) // readers all the time: too many lines to be of use
	t.Cleanup(func() { e.b.Cleanup(context.Background()) })
	return e
}

// servedRead is one read of the live trial.
type servedRead struct {
	reader     int
	agent      bool
	start, end time.Time
	credsTerms
}

// failures reports the first few failures of each kind and counts the rest,
// so a broken trial of thousands of reads prints a readable report.
type failures struct {
	t      *testing.T
	mu     sync.Mutex
	counts map[string]int
}

const failuresShown = 5

func newFailures(t *testing.T) *failures {
	f := &failures{t: t, counts: map[string]int{}}
	t.Cleanup(func() {
		for kind, n := range f.counts {
			if n > failuresShown {
				t.Errorf("%d more failures like this: %s", n-failuresShown, kind)
			}
		}
	})
	return f
}

// fail reports a failure of kind; kind names the check in the summary.
func (f *failures) fail(kind, format string, args ...any) {
	f.t.Helper()
	f.mu.Lock()
	f.counts[kind]++
	show := f.counts[kind] <= failuresShown
	f.mu.Unlock()
	if show {
		f.t.Errorf(format, args...)
	}
}

// TestRevokesPreviousTokenLiveReaders: on the real clock, with the refresh
// loop running, readers reading all the time and readers that come back at
// ttl+1 s as Vault Agent does, over several renewals of 5 s tokens: every
// token served is valid when served and is not revoked before the
// expires_at its read returned; ttl never points past the planned renewal;
// an Agent-like reader holds a revoked token only for as long as its read
// in the handover takes to return after the provider's answer; one upstream
// call per renewal.
func TestRevokesPreviousTokenLiveReaders(t *testing.T) {
	rng := trialRand(t)
	for _, tc := range revokingCases {
		trial := liveTrial{
			latency: time.Duration(20+rng.IntN(180)) * time.Millisecond,
			seeds:   make([]uint64, liveReaders+liveAgents),
		}
		for i := range trial.seeds {
			trial.seeds[i] = rng.Uint64()
		}
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			trial.run(t, tc)
		})
	}
}

// The live trial's shape: 5 s tokens renewed 3 s after issue, watched for
// four renewals or so.
const (
	liveLifetime     = 5 * time.Second
	liveRefreshAhead = 2 // seconds
	liveRunFor       = 13 * time.Second
	liveReaders      = 6
	liveAgents       = 2
	// liveHeldMargin: how long after the provider's answer an Agent-like
	// reader's waiting read may return (the state saved, the handler
	// returning, goroutine scheduling on a busy machine).
	liveHeldMargin = 500 * time.Millisecond
)

// liveTrial is one random trial: the provider's latency and each reader's seed.
type liveTrial struct {
	latency time.Duration
	seeds   []uint64
}

func (trial liveTrial) run(t *testing.T, tc revokingCase) {
	latency := trial.latency
	t.Logf("provider latency %s", latency)
	e := newLiveEnv(t)
	fails := newFailures(t)
	e.fake.SetPreviousTokenRevocation(tc.fakeMode)
	e.fake.SetLifetime(liveLifetime)
	e.fake.SetLatency(latency)
	e.config("x", tc.dialect, withFields(tc.fields, map[string]any{"refresh_ahead": liveRefreshAhead}))
	if err := e.periodic(); err != nil { // starts the refresh loop
		t.Fatalf("periodic: %v", err)
	}

	var mu sync.Mutex
	var reads []servedRead
	stop := time.Now().Add(liveRunFor)
	var wg sync.WaitGroup
	for i := range liveReaders + liveAgents {
		agent := i >= liveReaders
		r := rand.New(rand.NewPCG(trial.seeds[i], uint64(i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				start := time.Now()
				resp, err := e.creds("x", nil)
				end := time.Now()
				var c credsTerms
				if err == nil {
					c, err = termsOf(resp)
				}
				if err != nil {
					t.Errorf("reader %d at %s: got %v, want a token", i, start.Format(time.StampMilli), err)
					return
				}
				checkServed(fails, e.fake, i, start, c)
				mu.Lock()
				reads = append(reads, servedRead{reader: i, agent: agent, start: start, end: end, credsTerms: c})
				mu.Unlock()
				if agent {
					time.Sleep(time.Until(end.Add(time.Duration(c.ttl+1) * time.Second)))
				} else {
					time.Sleep(time.Duration(r.IntN(40)) * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()

	tokens := map[string]bool{}
	waited := 0
	for _, rd := range reads {
		tokens[rd.token] = true
		if rd.end.Sub(rd.start) >= latency {
			waited++
		}
		if at, revoked := e.fake.RevokedAt(rd.token); revoked && (at.Before(rd.expiresAt) || !at.After(rd.start)) {
			fails.fail("served a revoked token", "reader %d at %s: served a token revoked at %s, before the expires_at %s it promised or the read",
				rd.reader, rd.start.Format(time.StampMilli), at.Format(time.StampMilli), rd.expiresAt.Format(time.StampMilli))
		}
	}
	// An Agent-like reader's next read, made at ttl+1 s, returns the
	// renewed token right after the provider's answer.
	last := map[int]servedRead{}
	for _, rd := range reads {
		if !rd.agent {
			continue
		}
		if prev, ok := last[rd.reader]; ok && rd.token != prev.token {
			if at, revoked := e.fake.RevokedAt(prev.token); revoked && rd.end.Sub(at) > liveHeldMargin {
				fails.fail("agent held a revoked token", "agent reader %d held a revoked token for %s (revoked at %s, its next read returned at %s), want at most %s",
					rd.reader, rd.end.Sub(at), at.Format(time.StampMilli), rd.end.Format(time.StampMilli), liveHeldMargin)
			}
		}
		last[rd.reader] = rd
	}
	calls := e.fake.TotalCalls()
	t.Logf("%d reads, %d tokens, %d upstream calls, %d reads waited, %d tokens revoked", len(reads), len(tokens), calls, waited, e.fake.RevokedTokens())
	if renewals := len(tokens) - 1; renewals < 3 {
		t.Errorf("renewals in %s: got %d, want at least 3", liveRunFor, renewals)
	}
	if calls < len(tokens) || calls > len(tokens)+1 {
		t.Errorf("upstream calls: got %d for %d tokens served, want one per token (one more if a renewal came after the last read)", calls, len(tokens))
	}
	if waited == 0 {
		t.Errorf("reads that waited for a renewal: got none, want some (reads in the window wait)")
	}
	expect(t, "refresh token reuses", e.fake.RefreshReuses(), 0)
}

// checkServed checks one live read right when it returns: its promise is
// in the future and Agent's re-read comes before it, and the provider still
// accepts the token unless the promised time has passed meanwhile.
func checkServed(f *failures, fake *fakeprovider.Server, reader int, start time.Time, c credsTerms) {
	f.t.Helper()
	if !c.expiresAt.After(start) {
		f.fail("expires_at not after the read", "reader %d at %s: expires_at %s is not after the read", reader, start.Format(time.StampMilli), c.expiresAt.Format(time.StampMilli))
	}
	if reread := start.Add(time.Duration(c.ttl) * time.Second); !reread.Before(c.expiresAt) {
		f.fail("ttl past the renewal", "reader %d at %s: ttl %d points to %s, not before the expires_at %s (the planned renewal)",
			reader, start.Format(time.StampMilli), c.ttl, reread.Format(time.StampMilli), c.expiresAt.Format(time.StampMilli))
	}
	valid := fake.Valid(c.token)
	if checked := time.Now(); !valid && checked.Before(c.expiresAt) {
		at, revoked := fake.RevokedAt(c.token)
		f.fail("refused before expires_at", "reader %d at %s: the provider refuses the token at %s (revoked %v at %s), before the expires_at %s it was served with",
			reader, start.Format(time.StampMilli), checked.Format(time.StampMilli), revoked, at.Format(time.StampMilli), c.expiresAt.Format(time.StampMilli))
	}
}
