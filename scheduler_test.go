package tokenbroker

import (
	"fmt"
	"math/rand/v2"
	"slices"
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
// meanwhile (a read renewed it), it asks again.
func TestScheduleHoldsPacedSlots(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newSchedule()
	s.set("paced", t0, time.Minute)
	s.set("renewed", t0, time.Minute)
	s.popDue(t0)
	s.hold("paced", t0.Add(time.Second))
	s.hold("renewed", t0.Add(time.Second))
	s.set("renewed", t0.Add(2*time.Second), 0)
	if got, want := s.popDue(t0.Add(time.Minute)), []string{"paced", "renewed"}; !slices.Equal(got, want) {
		t.Fatalf("popDue = %v, want %v", got, want)
	}
	for _, c := range []struct {
		name string
		want bool
	}{{"paced", true}, {"renewed", false}, {"paced", false}, {"unknown", false}} {
		if got := s.release(c.name); got != c.want {
			t.Errorf("release(%q) = %v, want %v", c.name, got, c.want)
		}
	}
	if got, want := s.needRate(), 2/60.0; got != want {
		t.Errorf("needRate() = %v, want %v: holding a slot keeps a chain's rate", got, want)
	}
	s.popDue(t0.Add(time.Hour))
	s.remove("paced")
	s.hold("paced", t0.Add(2*time.Hour)) // deleted while its slot was handed out
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

// TestBulkMintedChainsRefreshEvenly: chains minted together, then kept fresh
// by the refresh loop for a few token lifetimes, reach the provider at an
// even rate: the busiest second at most 1.5× the mean, as `make bench-scale`
// checks at 100 000 chains, here at 1500 chains with 100 s tokens (a 50 s
// window), so about 30 refreshes a second. No read waits for the provider,
// and calls stay within one per chain per refresh interval.
func TestBulkMintedChainsRefreshEvenly(t *testing.T) {
	const (
		n        = 1500
		lifetime = 100 * time.Second
		window   = lifetime / 2 // refresh_ahead's 5m, capped at half the lifetime
		run      = 300 * time.Second
	)
	e := newEnv(t)
	e.b.setLogger(hclog.NewNullLogger()) // some 6000 calls
	e.fake.SetLifetime(lifetime)
	e.b.pacer.floor = 1 // the floor of 50/s would hide the pace at this scale
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("bulk%04d", i)
		e.config(names[i], fakeprovider.Echo360, nil)
	}
	for i, name := range names { // minted over 20 s, as a bulk import's first reads
		e.token(name)
		if i%75 == 74 {
			e.clock.Add(time.Second)
		}
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
