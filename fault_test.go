package tokenbroker

// Fault-injection trials: each runs N times (FAULT_TRIALS, default 200; a
// tenth under -race, where `make test` runs them again without -race at full
// N) and logs a FAULT line with refresh-token reuses (must be 0), chains lost
// where healing was possible (must be 0) and upstream calls per expiry.
//
// The trials draw their faults from a random source seeded by -seed (default:
// the time). Each trial set logs its seed; `go test -run 'Fault…' -seed=N .`
// draws the same faults again.

import (
	"flag"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

var faultSeed = flag.Uint64("seed", 0, "seed of the fault trials' random draws (0: time-based)")

// trialSeed is the seed of every trial set in this run, fixed at first use.
var trialSeed = sync.OnceValue(func() uint64 {
	if *faultSeed != 0 {
		return *faultSeed
	}
	return uint64(time.Now().UnixNano())
})

// trialRand returns the random source of one trial set, and logs its seed.
func trialRand(t *testing.T) *rand.Rand {
	t.Helper()
	seed := trialSeed()
	t.Logf("seed %d (replay with -seed=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed))
}

func faultTrials(raceDivisor int) int {
	n := 200
	if v, err := strconv.Atoi(os.Getenv("FAULT_TRIALS")); err == nil && v > 0 {
		n = v
	}
	if raceEnabled {
		n = max(n/raceDivisor, 5)
	}
	return n
}

func newFaultEnv(t *testing.T) *env {
	e := newEnv(t)
	e.b.persistRetryDelay = 0
	e.b.setLogger(hclog.NewNullLogger())
	return e
}

func TestFaultDroppedAfterConsume(t *testing.T) {
	n := faultTrials(10)
	for _, tc := range []struct {
		name    string
		dialect fakeprovider.Dialect
		seeded  bool          // seed refresh token only: cannot heal, must never resend
		grace   time.Duration // the provider's and the config's refresh reuse grace
	}{
		{"echo360", fakeprovider.Echo360, false, 0},
		{"apivideo", fakeprovider.APIVideo, false, 0},
		{"apivideo-seed-only", fakeprovider.APIVideo, true, 0},
		{"apivideo-seed-only-30m-grace", fakeprovider.APIVideo, true, 30 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := trialRand(t)
			e := newFaultEnv(t)
			extra := map[string]any{}
			if tc.seeded {
				extra = map[string]any{"api_key": nil, "refresh_token": e.fake.SeedRefreshToken(tc.dialect, testAPIKey)}
			}
			e.fake.SetRefreshReuseGrace(tc.grace)
			extra["refresh_reuse_grace"] = int(tc.grace.Seconds())
			e.config("x", tc.dialect, extra)
			lost, reseeds := 0, 0
			for trial := range n {
				e.clock.Add(2 * time.Hour)
				dropped := rng.IntN(2) == 0
				if dropped {
					e.fake.Fail(1, fakeprovider.FailDropAfterConsume)
				}
				_, err := e.creds("x", nil)
				switch {
				case err == nil:
				case tc.seeded && dropped && isNeedsRefreshToken(err):
					reseeds++
					e.mustDo(logical.UpdateOperation, "config/x", map[string]any{"refresh_token": e.fake.SeedRefreshToken(tc.dialect, testAPIKey)})
				default:
					lost++
					t.Errorf("trial %d (answer dropped: %v): %v", trial, dropped, err)
				}
			}
			t.Logf("FAULT dropped-after-consume %s: trials=%d reuses=%d chains_lost_where_healable=%d reseeds_needed=%d",
				tc.name, n, e.fake.RefreshReuses(), lost, reseeds)
			expect(t, "refresh token reuses", e.fake.RefreshReuses(), 0)
			expect(t, "chains lost where healing was possible", lost, 0)
			if tc.grace > 0 {
				expect(t, "new seeds needed inside the reuse grace", reseeds, 0)
			}
		})
	}
}

func TestFaultStorageWriteFailsAfterRotation(t *testing.T) {
	n := faultTrials(10)
	rng := trialRand(t)
	e := newFaultEnv(t)
	e.config("x", fakeprovider.Echo360, nil)
	lost := 0
	for trial := range n {
		e.settle("x") // a background flush from the last trial must not mint under this one's fault
		e.clock.Add(2 * time.Hour)
		e.storage.failAfterRotation.Store(true)
		_, err := e.creds("x", nil)
		expectErr(t, "trial "+strconv.Itoa(trial)+": read whose rotated state cannot be saved", err, "not saved")
		if rng.IntN(2) == 0 {
			e.token("x") // the unsaved token is served from memory meanwhile
		}
		e.storage.failAfterRotation.Store(false)
		if rng.IntN(2) == 0 {
			e.clock.Add(2 * time.Hour) // the next read rotates again, from the newest token
		}
		if _, err := e.creds("x", nil); err != nil {
			lost++
			t.Errorf("trial %d: read after storage recovered: %v", trial, err)
		}
		if rng.IntN(4) == 0 {
			e.restart() // after storage recovered: only what was stored remains
		}
	}
	t.Logf("FAULT storage-write-fails: trials=%d reuses=%d chains_lost_where_healable=%d cc_grants=%d",
		n, e.fake.RefreshReuses(), lost, e.fake.Grants("client_credentials"))
	expect(t, "refresh token reuses", e.fake.RefreshReuses(), 0)
	expect(t, "chains lost where healing was possible", lost, 0)
	expect(t, "client_credentials grants (one chain throughout)", e.fake.Grants("client_credentials"), 1)
}

func TestFaultProviderBursts(t *testing.T) {
	n := faultTrials(4)
	rng := trialRand(t)
	e := newFaultEnv(t)
	e.config("x", fakeprovider.Echo360, map[string]any{"timeout": "1s"})
	modes := []fakeprovider.FailMode{fakeprovider.Fail500, fakeprovider.Fail503HTML, fakeprovider.FailHTML200, fakeprovider.Fail429}
	var served, failedExpired, warned int
	for i := range n {
		e.clock.Add(time.Duration(10+rng.IntN(60)) * time.Minute)
		mode := modes[rng.IntN(len(modes))]
		if i%40 == 0 {
			mode = fakeprovider.FailTimeout // a second each: a few suffice
		}
		burst := 1 + rng.IntN(3)
		e.fake.Fail(burst, mode)
		resp, err := e.creds("x", nil)
		if err == nil {
			served++
			if len(resp.Warnings) > 0 {
				warned++
			}
			exp, _ := time.Parse(time.RFC3339, resp.Data["expires_at"].(string))
			if !exp.After(e.clock.Now()) {
				t.Fatalf("trial %d (%d × %v): served a token that expired at %s, now %s", i, burst, mode, exp, e.clock.Now())
			}
		} else {
			failedExpired++
		}
		e.fake.ClearFailures()
		e.settle("x")
		e.clock.Add(3 * time.Second) // past any Retry-After
		e.forgetBackoff()            // and past our own backoff, to test recovery
		if _, err := e.creds("x", nil); err != nil {
			t.Fatalf("trial %d: no recovery after %d × %v: %v", i, burst, mode, err)
		}
	}
	t.Logf("FAULT provider-bursts: trials=%d served_during_burst=%d (with warning %d) failed_after_expiry=%d reuses=%d",
		n, served, warned, failedExpired, e.fake.RefreshReuses())
	expect(t, "refresh token reuses", e.fake.RefreshReuses(), 0)
}

func TestFaultStampedeOfExpiredToken(t *testing.T) {
	const readers = 1000
	n := faultTrials(20)
	rng := trialRand(t)
	e := newFaultEnv(t)
	e.config("x", fakeprovider.Echo360, nil)
	e.token("x")
	var failed int
	var mu sync.Mutex
	for trial := range n {
		e.clock.Add(2 * time.Hour)
		before := e.fake.TotalCalls()
		var wg sync.WaitGroup
		for range readers {
			delay := time.Duration(rng.IntN(2000)) * time.Microsecond
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(delay)
				if _, err := e.creds("x", nil); err != nil {
					mu.Lock()
					failed++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		expect(t, "trial "+strconv.Itoa(trial)+": upstream calls for one expiry and 1000 readers", e.fake.TotalCalls()-before, 1)
	}
	t.Logf("FAULT stampede: trials=%d readers_per_trial=%d upstream_calls_per_expiry=1 failed_reads=%d reuses=%d",
		n, readers, failed, e.fake.RefreshReuses())
	expect(t, "failed reads", failed, 0)
	expect(t, "refresh token reuses", e.fake.RefreshReuses(), 0)
}

// forgetBackoff ends every name's own backoff at once, as if its time had
// passed, without moving the clock.
func (e *env) forgetBackoff() {
	e.b.entries.Range(func(k, v any) bool {
		if snap := v.(*nameEntry).snap.Load(); snap != nil {
			e.b.publish(k.(string), snap.with(func(n *snapshot) { n.health = n.health.withoutBackoff() }))
		}
		return true
	})
}

// isNeedsRefreshToken reports whether err asks an operator for a new seed.
func isNeedsRefreshToken(err error) bool {
	return err != nil && strings.Contains(err.Error(), "write a new refresh_token")
}

// withoutBackoff ends a health's own backoff now, keeping the rest (tests only).
func (h health) withoutBackoff() health {
	if h.last != nil {
		f := *h.last
		f.backoffUntil = time.Time{}
		h.last = &f
	}
	return h
}
