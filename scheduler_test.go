package tokenbroker

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

func TestScheduleOrdersByDueTime(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newSchedule()
	s.set("c", t0.Add(3*time.Second), 0)
	s.set("a", t0.Add(1*time.Second), 0)
	s.set("b", t0.Add(2*time.Second), 0)
	s.set("a", t0.Add(4*time.Second), 0) // moved later
	s.set("gone", t0, 0)
	s.remove("gone")
	s.set("never", time.Time{}, 0) // the zero time removes

	if got, want := s.popDue(t0), []string(nil); !slices.Equal(got, want) {
		t.Fatalf("popDue(t0) = %v, want %v", got, want)
	}
	if next, ok := s.next(); !ok || !next.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("next() = %v, %v; want t0+2s, true", next, ok)
	}
	if got, want := s.popDue(t0.Add(3*time.Second)), []string{"b", "c"}; !slices.Equal(got, want) {
		t.Fatalf("popDue(t0+3s) = %v, want %v", got, want)
	}
	if got, want := s.popDue(t0.Add(time.Hour)), []string{"a"}; !slices.Equal(got, want) {
		t.Fatalf("popDue(t0+1h) = %v, want %v", got, want)
	}
	if _, ok := s.next(); ok {
		t.Fatalf("next() after popping everything: ok = true, want false")
	}
}

// TestScheduleRandomTrials checks the heap against a sorted reference.
func TestScheduleRandomTrials(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newSchedule()
	want := map[string]time.Time{}
	for range 2000 {
		name := fmt.Sprintf("n%d", rng.IntN(300))
		switch rng.IntN(4) {
		case 0:
			s.remove(name)
			delete(want, name)
		default:
			due := t0.Add(time.Duration(rng.IntN(1000)) * time.Second)
			s.set(name, due, 0)
			want[name] = due
		}
	}
	cut := t0.Add(500 * time.Second)
	got := s.popDue(cut)
	var expected []string
	for name, due := range want {
		if !due.After(cut) {
			expected = append(expected, name)
		}
	}
	slices.Sort(expected)
	sorted := slices.Clone(got)
	slices.Sort(sorted)
	if !slices.Equal(sorted, expected) {
		t.Fatalf("popDue returned %d names, want %d (seed %d)", len(got), len(expected), seed)
	}
	for i := 1; i < len(got); i++ {
		if want[got[i]].Before(want[got[i-1]]) {
			t.Fatalf("popDue not soonest first at %d: %s (%v) after %s (%v) (seed %d)", i, got[i], want[got[i]], got[i-1], want[got[i-1]], seed)
		}
	}
}

// TestScheduleHoldsPacedSlots: a name the pacer moved to a later slot goes
// when popped at that slot, without asking for another; rescheduled
// meanwhile (a read renewed it), it asks again. A name in flight is never
// popped again before it is finished, whatever is set for it meanwhile.
func TestScheduleHoldsPacedSlots(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newSchedule()
	s.set("paced", t0, time.Minute)
	s.set("renewed", t0, time.Minute)
	s.popDue(t0)
	s.hold("paced", t0.Add(time.Second), 3*time.Millisecond)
	s.hold("renewed", t0.Add(time.Second), 0)
	s.set("renewed", t0.Add(2*time.Second), 0)
	if got := s.popDue(t0.Add(time.Minute)); len(got) != 0 {
		t.Fatalf("popDue before the names were finished = %v, want none", got)
	}
	s.finished("paced")
	s.finished("renewed")
	if got, want := s.popDue(t0.Add(time.Minute)), []string{"paced", "renewed"}; !slices.Equal(got, want) {
		t.Fatalf("popDue = %v, want %v", got, want)
	}
	for _, c := range []struct {
		name  string
		held  bool
		slot  time.Time
		shift time.Duration
	}{{"paced", true, t0.Add(time.Second), 3 * time.Millisecond}, {"renewed", false, time.Time{}, 0}, {"paced", false, time.Time{}, 0}, {"unknown", false, time.Time{}, 0}} {
		slot, shift, held := s.release(c.name)
		if held != c.held || !slot.Equal(c.slot) || shift != c.shift {
			t.Errorf("release(%q) = %v, %v, %v; want %v, %v, %v", c.name, slot, shift, held, c.slot, c.shift, c.held)
		}
	}
	if got, want := s.needRate(), 2/60.0; got != want {
		t.Errorf("needRate() = %v, want %v: holding a slot keeps a chain's rate", got, want)
	}
	s.remove("paced")                       // deleted while in flight
	s.hold("paced", t0.Add(2*time.Hour), 0) // deleted while its slot was handed out
	s.finished("paced")
	if got := s.popDue(t0.Add(3 * time.Hour)); slices.Contains(got, "paced") {
		t.Errorf("a removed name came back by its paced slot: popped %v", got)
	}
}

// TestRestartSpreadsRefreshes: names minted together are not all refreshed at
// once after a restart: each is due at the start of its refresh window plus
// its own delay, so halfway into the delays about half of them are due.
func TestRestartSpreadsRefreshes(t *testing.T) {
	e := newEnv(t)
	e.fake.SetLifetime(time.Hour)
	const n = 100
	for i := range n {
		name := fmt.Sprintf("n%03d", i)
		e.config(name, fakeprovider.Echo360, nil)
		e.token(name)
	}
	e.restart()
	// Refresh window 5m before expiry; delays up to a quarter of it (75 s).
	e.clock.Add(time.Hour - 5*time.Minute + 37*time.Second)
	before := e.fake.Grants("refresh_token")
	if err := e.periodic(); err != nil {
		t.Fatalf("periodic: %v", err)
	}
	refreshed := e.fake.Grants("refresh_token") - before
	if refreshed == 0 || refreshed == n {
		t.Fatalf("refreshed %d of %d names halfway into their delays, want some but not all", refreshed, n)
	}
	t.Logf("refreshed %d of %d halfway into the delays", refreshed, n)
	e.clock.Add(time.Minute) // past every delay; the pace then spreads them over a few seconds
	for range 10 {
		if err := e.periodic(); err != nil {
			t.Fatalf("periodic: %v", err)
		}
		e.clock.Add(time.Second)
	}
	expect(t, "names refreshed once every delay passed", e.fake.Grants("refresh_token")-before, n)
}

// TestPaceSpreadsABacklog: a backlog of names due at once goes out at the
// pace, not in one burst, and a name three quarters into its refresh window
// goes at once.
func TestPaceSpreadsABacklog(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := pacer{floor: paceFloor}
	far := t0.Add(time.Hour)
	need := 1000.0 // refreshes a second the schedule needs: a pace of 1100/s
	now, sent := 0, 0
	for range 3000 {
		if !p.slot(t0, far, need).After(t0) {
			now++
		}
		sent++
	}
	if now < 22 || now > 25 {
		t.Fatalf("%d of %d refreshes due at once went at once, want a burst of about a fiftieth of a second's pace (22)", now, sent)
	}
	if at := p.slot(t0, far, need); at.Sub(t0) < 2*time.Second {
		t.Fatalf("the 3001st refresh's slot is %s after now, want about 2.6s at 1100/s", at.Sub(t0))
	}
	if at := p.slot(t0, t0, need); !at.Equal(t0) {
		t.Fatalf("an urgent refresh got a slot %s after now, want now", at.Sub(t0))
	}
}

// Bulk-minted chains for the pacing tests: 1500 chains with 100 s tokens (a
// 50 s window), minted over 20 s as a bulk import's first reads, so the
// refresh loop needs about 30 refreshes a second; the pace floor is lowered
// to show the pace at this scale.
const (
	bulkChains   = 1500
	bulkLifetime = 100 * time.Second
	bulkWindow   = bulkLifetime / 2 // refresh_ahead's 5m, capped at half the lifetime
)

func bulkMinted(t *testing.T) (*env, []string) {
	t.Helper()
	e := newEnv(t)
	e.b.setLogger(hclog.NewNullLogger()) // thousands of calls
	e.fake.SetLifetime(bulkLifetime)
	e.b.pacer.floor = 1 // the floor of 50/s would hide the pace at this scale
	names := make([]string, bulkChains)
	for i := range names {
		names[i] = fmt.Sprintf("bulk%04d", i)
		e.config(names[i], fakeprovider.Echo360, nil)
	}
	for i, name := range names {
		e.token(name)
		if i%75 == 74 {
			e.clock.Add(time.Second)
		}
	}
	return e, names
}

// TestBulkMintedChainsRefreshEvenly: chains minted together, then kept fresh
// by the refresh loop for a few token lifetimes, reach the provider at an
// even rate: the busiest second at most 1.5× the mean, as `make bench-scale`
// checks at 100 000 chains. No read waits for the provider, and calls stay
// within one per chain per refresh interval.
func TestBulkMintedChainsRefreshEvenly(t *testing.T) {
	for _, tc := range []struct {
		name        string
		residentMax int64 // 0: every name stays resident
	}{
		{"every name resident", 0},
		{"most names evicted between their reads", 100},
	} {
		t.Run(tc.name, func(t *testing.T) { bulkMintedChainsRefreshEvenly(t, tc.residentMax) })
	}
}

func bulkMintedChainsRefreshEvenly(t *testing.T, residentMax int64) {
	const (
		n        = bulkChains
		lifetime = bulkLifetime
		window   = bulkWindow
		run      = 300 * time.Second
	)
	e, names := bulkMinted(t)
	if residentMax > 0 {
		e.b.residency.max = residentMax
		e.b.residency.sweeping.Store(true) // swept below, once a second
	}
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d", seed)
	perSecond := make([]int, run/time.Second)
	before := e.fake.Grants("refresh_token")
	for sec := range perSecond {
		e.clock.Add(time.Second)
		if err := e.periodic(); err != nil {
			t.Fatalf("periodic at %ds: %v", sec, err)
		}
		for range 2 { // readers on a random sample
			name := names[rng.IntN(n)]
			resp := e.mustDo(logical.ReadOperation, "creds/"+name, nil)
			if exp := resp.Data["expires_at_seconds"].(int64); exp <= e.clock.Now().Unix() {
				t.Fatalf("creds/%s at %ds served a token expired at %d", name, sec, exp)
			}
		}
		after := e.fake.Grants("refresh_token")
		perSecond[sec], before = after-before, after
		if residentMax > 0 {
			e.sweep()
			if got := e.b.residency.resident.Load(); sec > 0 && got > residentMax { // the first sweep sees every name read
				t.Fatalf("at %ds %d names resident after a sweep, want ≤ %d", sec, got, residentMax)
			}
		}
	}
	calls, busiest := 0, 0
	for _, c := range perSecond {
		calls += c
		busiest = max(busiest, c)
	}
	mean := float64(calls) / run.Seconds()
	t.Logf("%d refreshes in %s: mean %.1f/s, busiest second %d (%.2f× the mean)", calls, run, mean, busiest, float64(busiest)/mean)
	if float64(busiest) > 1.5*mean {
		t.Errorf("busiest second %d refreshes, want ≤ 1.5× the mean %.1f/s; per second: %v", busiest, mean, perSecond)
	}
	if most := float64(n) * run.Seconds() / (lifetime - window).Seconds(); float64(calls) > 1.05*most {
		t.Errorf("%d refreshes, want ≤ 1.05× one per chain per refresh interval (%.0f)", calls, most)
	}
	waited := uint64(0)
	e.b.entries.Range(func(_, v any) bool {
		waited += v.(*nameEntry).counters.reads[readWaited].Load()
		return true
	})
	expect(t, "reads that waited for the provider, first reads excluded", waited, uint64(n))
}

// TestStalledRefreshesAreNotMadeUp: when storage stalls every refresh for a
// while (all workers wait), the slots that passed meanwhile are not made up
// in one burst once it recovers: every paced slot moves by the stall.
func TestStalledRefreshesAreNotMadeUp(t *testing.T) {
	e, _ := bulkMinted(t)
	const stall = 5 * time.Second
	pace := 1.1 * bulkChains / (bulkLifetime - bulkWindow + bulkWindow/8).Seconds() // about 30/s
	for range 60 {                                                                  // into the first round of refreshes, with a backlog held in paced slots
		e.clock.Add(time.Second)
		if err := e.periodic(); err != nil {
			t.Fatal(err)
		}
	}
	var blocked atomic.Int64
	release := make(chan struct{})
	gate := func(entry *logical.StorageEntry) {
		if strings.HasPrefix(entry.Key, tokenPrefix) {
			blocked.Add(1)
			<-release
		}
	}
	e.storage.onPut.Store(&gate)
	before := e.fake.Grants("refresh_token")
	e.clock.Add(time.Second)
	e.b.sched.signal()
	deadline := time.Now().Add(10 * time.Second)
	for blocked.Load() < backgroundWorkers && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if blocked.Load() < backgroundWorkers {
		t.Fatalf("%d refreshes blocked in storage, want all %d workers", blocked.Load(), backgroundWorkers)
	}
	time.Sleep(20 * time.Millisecond) // the loop waits for a free worker
	e.clock.Add(stall)
	e.storage.onPut.Store(nil)
	close(release)
	if err := e.periodic(); err != nil {
		t.Fatal(err)
	}
	got := e.fake.Grants("refresh_token") - before
	t.Logf("%d refreshes at the end of a %s stall (pace %.0f/s)", got, stall, pace)
	if float64(got) > 2*pace {
		t.Errorf("%d refreshes at once after a %s stall, want at most 2 s of the pace (%.0f): the slots missed are not made up", got, stall, 2*pace)
	}
}
