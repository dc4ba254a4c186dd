package tokenbroker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// residentEnv is an env whose backend keeps at most max names resident and
// sweeps only when the test says so (sweep), so what is evicted is known.
func residentEnv(t *testing.T, max int64) *env {
	t.Helper()
	e := newEnv(t)
	e.b.residency.max = max
	e.b.residency.sweeping.Store(true) // no automatic sweep: the test runs them
	return e
}

// sweep runs one residency sweep now.
func (e *env) sweep() { e.b.sweep() }

// evicted reports whether name's snapshot is an evicted one.
func (e *env) evicted(name string) bool {
	snap := e.b.inMemory(name)
	return snap != nil && snap.evicted != nil
}

// countGets counts storage reads of keys under prefix until the test ends.
func (e *env) countGets(prefix string) *atomic.Int64 {
	var n atomic.Int64
	f := func(key string) {
		if strings.HasPrefix(key, prefix) {
			n.Add(1)
		}
	}
	e.storage.onGet.Store(&f)
	e.t.Cleanup(func() { e.storage.onGet.Store(nil) })
	return &n
}

func numberedNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return out
}

// TestResidencyEvictsTheNamesReadLeastRecently: above residentMax, a sweep
// evicts names not read since the sweep before, never one read since, down to
// residentMax less the slack; a read of an evicted name serves the same token
// from storage without calling the provider, and status keeps its counts.
func TestResidencyEvictsTheNamesReadLeastRecently(t *testing.T) {
	e := residentEnv(t, 20)
	all := numberedNames("r", 40)
	hot := all[:5]
	tokens := map[string]string{}
	for _, name := range all {
		e.config(name, fakeprovider.Echo360, nil)
		tokens[name] = e.token(name)
	}
	expect(t, "resident names before a sweep", e.b.residency.resident.Load(), int64(40))

	e.sweep() // every name was read since the start: none is evicted yet
	expect(t, "resident names after the first sweep", e.b.residency.resident.Load(), int64(40))
	for _, name := range hot {
		e.token(name)
	}
	e.sweep()
	expect(t, "resident names after the second sweep", e.b.residency.resident.Load(), int64(18)) // 20 less 10 %
	for _, name := range hot {
		if e.evicted(name) {
			t.Errorf("%s, read since the last sweep, was evicted", name)
		}
	}
	evicted := 0
	for _, name := range all[5:] {
		if e.evicted(name) {
			evicted++
		}
	}
	expect(t, "cold names evicted", evicted, 22)

	var victim string
	for _, name := range all {
		if e.evicted(name) {
			victim = name
			break
		}
	}
	grants, gets := e.fake.TotalCalls(), e.countGets("")
	expect(t, "evicted name's token read again", e.token(victim), tokens[victim])
	expect(t, "provider calls for an evicted name's read", e.fake.TotalCalls(), grants)
	if got := gets.Load(); got == 0 || got > 3 {
		t.Errorf("storage reads to load the evicted name = %d, want 1 to 3 (its config, keys, state)", got)
	}
	expect(t, "evicted name loaded again", e.evicted(victim), false)
	expectField(t, e.status(victim), "mints", 1)
	gets.Store(0)
	e.token(victim)
	expect(t, "storage reads of the next, cached, read", gets.Load(), int64(0))
}

// TestResidencyKeepsWhatMemoryMustHold: a state not yet saved, a failing
// chain, one whose refresh token expires, and a name whose lock is held are
// never evicted, however long since they were read.
func TestResidencyKeepsWhatMemoryMustHold(t *testing.T) {
	e := residentEnv(t, 1)
	e.b.setLogger(hclog.NewNullLogger())
	e.config("plain", fakeprovider.Echo360, nil)
	e.token("plain")

	e.config("dirty", fakeprovider.Echo360, nil)
	e.token("dirty")
	e.storage.failAfterRotation.Store(true)
	e.b.persistRetryDelay = time.Millisecond
	e.clock.Add(2 * time.Hour)
	if _, err := e.creds("dirty", nil); err == nil { // refreshed; the rotated state stays in memory only
		t.Fatal("setup: dirty's read did not report the failed write")
	}
	e.storage.failAfterRotation.Store(false)
	if snap := e.b.loaded("dirty"); snap == nil || !snap.dirty {
		t.Fatal("setup: dirty's state is not dirty")
	}

	e.config("failing", fakeprovider.Echo360, nil)
	e.token("failing")
	e.clock.Add(2 * time.Hour)
	e.fake.Fail(3, fakeprovider.Fail500)
	if _, err := e.creds("failing", nil); err == nil {
		t.Fatal("setup: failing's read succeeded")
	}
	e.fake.ClearFailures()

	e.fake.SetRefreshTokenLifetime(30*24*time.Hour, fakeprovider.RefreshTokenExpiresIn)
	e.config("expiring", fakeprovider.Echo360, map[string]any{"client_secret": nil, "refresh_token": e.fake.SeedRefreshToken(fakeprovider.Echo360, testClientID)})
	e.token("expiring")

	e.config("locked", fakeprovider.Echo360, nil)
	e.token("locked")
	lock := e.b.lockFor("locked")
	lock.Lock()

	e.sweep()
	e.sweep()
	lock.Unlock()
	for name, want := range map[string]bool{"plain": true, "dirty": false, "failing": false, "expiring": false, "locked": false} {
		if got := e.evicted(name); got != want {
			t.Errorf("%s evicted = %v, want %v", name, got, want)
		}
	}
}

// TestResidencyEvictedChainsRefreshInTheBackground: chains evicted right
// after their first read are refreshed by the background when due, each once,
// no refresh token sent twice, paced like resident ones; every later read
// gets a token that is not expired.
func TestResidencyEvictedChainsRefreshInTheBackground(t *testing.T) {
	e := residentEnv(t, 10)
	e.b.setLogger(hclog.NewNullLogger())
	e.fake.SetLifetime(time.Hour)
	all := numberedNames("bg", 60)
	for _, name := range all {
		e.config(name, fakeprovider.Echo360, nil)
		e.token(name)
	}
	if err := e.periodic(); err != nil { // the loop starts, nothing due
		t.Fatal(err)
	}
	e.sweep()
	e.sweep()
	if got := e.b.residency.resident.Load(); got > 9 {
		t.Fatalf("resident names = %d, want ≤ 9", got)
	}
	before := e.fake.Grants("refresh_token")
	e.clock.Add(time.Hour - 3*time.Minute) // past every pass delay (a quarter of the 5-minute window)
	for range 10 {                         // no sweep: a chain renewed while evicted is evicted again
		if err := e.periodic(); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(time.Second)
	}
	expect(t, "background refreshes of 60 chains, mostly evicted", e.fake.Grants("refresh_token")-before, len(all))
	expect(t, "refresh tokens sent twice", e.fake.RefreshReuses(), 0)
	if got := e.b.residency.resident.Load(); got > 10 {
		t.Errorf("resident names after the background renewed them = %d, want ≤ 10 (evicted again)", got)
	}
	for _, name := range all {
		resp := e.mustDo(logical.ReadOperation, "creds/"+name, nil)
		if exp := resp.Data["expires_at_seconds"].(int64); exp < e.clock.Now().Add(50*time.Minute).Unix() {
			t.Errorf("creds/%s expires at %d, want a refreshed token (≥ 50 minutes left)", name, exp)
		}
	}
	expect(t, "refreshes after the reads", e.fake.Grants("refresh_token")-before, len(all))
}

// TestResidencyScrapeDoesNotLoadEvictedNames: a metrics scrape reads an
// evicted name's gauges from what it kept, without a storage read.
func TestResidencyScrapeDoesNotLoadEvictedNames(t *testing.T) {
	e := residentEnv(t, 2)
	all := numberedNames("m", 6)
	expiry := map[string]int64{}
	for _, name := range all {
		e.config(name, fakeprovider.Echo360, nil)
		expiry[name] = e.mustDo(logical.ReadOperation, "creds/"+name, nil).Data["expires_at_seconds"].(int64)
	}
	e.sweep()
	e.sweep()
	gets := e.countGets(tokenPrefix)
	got := scrapeSeries(e)
	expect(t, "token state reads during the scrape", gets.Load(), int64(0))
	want := map[string]float64{}
	for _, name := range all {
		want[`tokenbroker_access_token_expiry_timestamp_seconds{name="`+name+`"}`] = float64(expiry[name])
		want[`tokenbroker_chain_refresh_failing{name="`+name+`"}`] = 0
		want[`tokenbroker_chain_needs_reauthorization{name="`+name+`"}`] = 0
	}
	expectSeries(t, got, want)
	expect(t, "resident names after the scrape", e.b.residency.resident.Load(), int64(1))
}

// TestResidencyUnderConcurrentReadsRefreshesAndSweeps: readers of random
// names, the background refreshing them and sweeps evicting them, all at
// once over several token lifetimes: no read fails or is served an expired
// token, and no refresh token is sent twice.
func TestResidencyUnderConcurrentReadsRefreshesAndSweeps(t *testing.T) {
	e := residentEnv(t, 8)
	e.b.setLogger(hclog.NewNullLogger())
	e.fake.SetLifetime(10 * time.Minute)
	all := numberedNames("c", 40)
	for _, name := range all {
		e.config(name, fakeprovider.Echo360, nil)
		e.token(name)
	}
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr atomic.Value
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(r)))
			for ctx.Err() == nil {
				name := all[rng.IntN(len(all))]
				now := e.clock.Now().Unix()
				resp, err := e.creds(name, nil)
				if err == nil && resp.Data["expires_at_seconds"].(int64) <= now {
					err = fmt.Errorf("creds/%s served a token expired at %v (now %d)", name, resp.Data["expires_at_seconds"], now)
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	for range 120 { // 3 token lifetimes, 15 s a step
		e.clock.Add(15 * time.Second)
		if err := e.periodic(); err != nil {
			t.Error(err)
		}
		e.sweep()
	}
	cancel()
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d reads failed; first: %v", n, firstErr.Load())
	}
	expect(t, "refresh tokens sent twice", e.fake.RefreshReuses(), 0)
}

// TestResidencySweepsStartThemselves: without the test's hand, loading more
// names than residentMax starts a sweep that brings them back under it.
func TestResidencySweepsStartThemselves(t *testing.T) {
	e := newEnv(t)
	e.b.residency.max = 10
	all := numberedNames("a", 30)
	for _, name := range all {
		e.config(name, fakeprovider.Echo360, nil)
	}
	e.restart() // a new process: nothing loaded, no sweep for a second
	e.b.residency.max = 10
	for _, name := range all {
		e.token(name)
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.b.residency.resident.Load() > 10 && time.Now().Before(deadline) {
		e.token(all[0]) // a load-free read; the sweeps are started by loads
		e.config("extra", fakeprovider.Echo360, nil)
		e.mustDo(logical.DeleteOperation, "config/extra", nil)
		time.Sleep(50 * time.Millisecond)
	}
	if got := e.b.residency.resident.Load(); got > 10 {
		t.Fatalf("resident names = %d after 10 s, want ≤ 10", got)
	}
}

// TestResidencyMemoryOfAnEvictedName: a name loaded, read and evicted keeps
// well under a kilobyte of live heap (the budget `make bench-scale` checks at
// 100 000 names: 215 MiB for the whole process, tokens of the names read
// lately included). Measured on a backend started on stored names, so the
// storage and the fake are not counted; live heap after two collections.
func TestResidencyMemoryOfAnEvictedName(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 5000 names")
	}
	e := newEnv(t)
	e.b.setLogger(hclog.NewNullLogger())
	e.fake.SetAccessTokenSize(1500)
	e.app("scale", fakeprovider.OAuth2, nil)
	const n = 5000
	all := numberedNames("s", n)
	for _, name := range all {
		e.mustDo(logical.CreateOperation, "config/"+name, map[string]any{"app": "scale"})
		e.token(name)
	}
	e.restart()
	e.b.setLogger(hclog.NewNullLogger())
	e.b.residency.max = 100
	e.b.residency.sweeping.Store(true)
	live := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := live()
	for _, name := range all {
		e.token(name)
	}
	e.sweep()
	e.sweep()
	perName := (float64(live()) - float64(before)) / n
	t.Logf("%.0f bytes of live heap a name, %d of %d names resident", perName, e.b.residency.resident.Load(), n)
	if perName > 1024 {
		t.Errorf("live heap a name = %.0f bytes, want ≤ 1024", perName)
	}
}
