package tokenbroker

// Fault-injection trials: each runs N times (FAULT_TRIALS, default 200; a
// tenth under -race, where `make test` runs them again without -race at full
// N) and logs a FAULT line with refresh-token reuses (must be 0), chains lost
// where healing was possible (must be 0) and upstream calls per expiry.

import (
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

func faultTrials(t *testing.T, raceDivisor int) int {
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
	n := faultTrials(t, 10)
	for _, tc := range []struct {
		name    string
		dialect fakeprovider.Dialect
		seeded  bool // seed refresh token only: cannot heal, must never resend
	}{
		{"echo360", fakeprovider.Echo360, false},
		{"apivideo", fakeprovider.APIVideo, false},
		{"apivideo-seed-only", fakeprovider.APIVideo, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFaultEnv(t)
			extra := map[string]any{}
			if tc.seeded {
				extra = map[string]any{"api_key": nil, "refresh_token": e.fake.SeedRefreshToken(tc.dialect, testAPIKey)}
			}
			e.config("x", tc.dialect, extra)
			lost, reseeds := 0, 0
			for range n {
				e.clock.Add(2 * time.Hour)
				dropped := rand.IntN(2) == 0
				if dropped {
					e.fake.Fail(1, fakeprovider.FailDropAfterConsume)
				}
				_, err := e.do(logical.ReadOperation, "creds/x", nil)
				switch {
				case err == nil:
				case tc.seeded && dropped && strings.Contains(err.Error(), "write a new refresh_token"):
					reseeds++
					e.mustDo(logical.UpdateOperation, "config/x", map[string]any{"refresh_token": e.fake.SeedRefreshToken(tc.dialect, testAPIKey)})
				default:
					lost++
					t.Errorf("trial failed: %v", err)
				}
			}
			t.Logf("FAULT dropped-after-consume %s: trials=%d reuses=%d chains_lost_where_healable=%d reseeds_needed=%d",
				tc.name, n, e.fake.RefreshReuses(), lost, reseeds)
			if e.fake.RefreshReuses() != 0 || lost != 0 {
				t.Fatal("a refresh token was reused or a healable chain was lost")
			}
		})
	}
}

func TestFaultStorageWriteFailsAfterRotation(t *testing.T) {
	n := faultTrials(t, 10)
	e := newFaultEnv(t)
	e.config("x", fakeprovider.Echo360, nil)
	lost := 0
	for range n {
		e.settle("x") // a background flush from the last trial must not mint under this one's fault
		e.clock.Add(2 * time.Hour)
		e.storage.failAfterRotation.Store(true)
		if _, err := e.do(logical.ReadOperation, "creds/x", nil); err == nil || !strings.Contains(err.Error(), "not saved") {
			t.Fatalf("expected an unsaved-state error, got %v", err)
		}
		if rand.IntN(2) == 0 {
			e.token("x") // the unsaved token is served from memory meanwhile
		}
		e.storage.failAfterRotation.Store(false)
		if rand.IntN(2) == 0 {
			e.clock.Add(2 * time.Hour) // the next read rotates again, from the newest token
		}
		if _, err := e.do(logical.ReadOperation, "creds/x", nil); err != nil {
			lost++
		}
		if rand.IntN(4) == 0 {
			// A restart after storage recovered: only what was stored remains.
			e.settle("x")
			e.b.snapshots.Clear()
		}
	}
	t.Logf("FAULT storage-write-fails: trials=%d reuses=%d chains_lost_where_healable=%d cc_grants=%d",
		n, e.fake.RefreshReuses(), lost, e.fake.Grants("client_credentials"))
	if e.fake.RefreshReuses() != 0 || lost != 0 || e.fake.Grants("client_credentials") != 1 {
		t.Fatal("a stale refresh token was used or the chain broke")
	}
}

func TestFaultProviderBursts(t *testing.T) {
	n := faultTrials(t, 4)
	e := newFaultEnv(t)
	e.config("x", fakeprovider.Echo360, map[string]any{"timeout": "1s"})
	modes := []fakeprovider.FailMode{fakeprovider.Fail500, fakeprovider.Fail503HTML, fakeprovider.FailHTML200, fakeprovider.Fail429}
	var served, failedExpired, warned int
	for i := range n {
		e.clock.Add(time.Duration(10+rand.IntN(60)) * time.Minute)
		mode := modes[rand.IntN(len(modes))]
		if i%40 == 0 {
			mode = fakeprovider.FailTimeout // a second each: a few suffice
		}
		e.fake.Fail(1+rand.IntN(3), mode)
		resp, err := e.do(logical.ReadOperation, "creds/x", nil)
		if err == nil {
			served++
			if len(resp.Warnings) > 0 {
				warned++
			}
			exp, _ := time.Parse(time.RFC3339, resp.Data["expires_at"].(string))
			if !exp.After(e.clock.Now()) {
				t.Fatal("an expired token was served during an outage")
			}
		} else {
			failedExpired++
		}
		e.fake.Fail(0, fakeprovider.Fail500)
		e.settle("x")
		e.clock.Add(3 * time.Second)              // past any Retry-After
		e.b.snapshots.Range(func(k, v any) bool { // and past our own backoff, to test recovery
			e.b.publish(k.(string), v.(*snapshot).with(func(n *snapshot) { n.backoffUntil = time.Time{} }))
			return true
		})
		if _, err := e.do(logical.ReadOperation, "creds/x", nil); err != nil {
			t.Fatalf("no recovery after a %v burst: %v", mode, err)
		}
	}
	t.Logf("FAULT provider-bursts: trials=%d served_during_burst=%d (with warning %d) failed_after_expiry=%d reuses=%d",
		n, served, warned, failedExpired, e.fake.RefreshReuses())
	if e.fake.RefreshReuses() != 0 {
		t.Fatal("a refresh token was reused")
	}
}

func TestFaultStampedeOfExpiredToken(t *testing.T) {
	n := faultTrials(t, 20)
	e := newFaultEnv(t)
	e.config("x", fakeprovider.Echo360, nil)
	e.token("x")
	var failed int
	var mu sync.Mutex
	for range n {
		e.clock.Add(2 * time.Hour)
		before := e.fake.TotalCalls()
		var wg sync.WaitGroup
		for range 1000 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
				if _, err := e.do(logical.ReadOperation, "creds/x", nil); err != nil {
					mu.Lock()
					failed++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if calls := e.fake.TotalCalls() - before; calls != 1 {
			t.Fatalf("one expiry, 1000 readers: %d upstream calls", calls)
		}
	}
	t.Logf("FAULT stampede: trials=%d readers_per_trial=1000 upstream_calls_per_expiry=1 failed_reads=%d reuses=%d",
		n, failed, e.fake.RefreshReuses())
	if failed != 0 || e.fake.RefreshReuses() != 0 {
		t.Fatal("reads failed or a refresh token was reused")
	}
}
