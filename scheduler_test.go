package tokenbroker

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

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
// pace, not in one burst, and a name whose refresh window is half gone goes
// at once.
func TestPaceSpreadsABacklog(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var p pacer
	far := t0.Add(time.Hour)
	need := 1000.0 // refreshes a second the schedule needs: a pace of 1100/s
	now, sent := 0, 0
	for range 3000 {
		if !p.slot(t0, far, need).After(t0) {
			now++
		}
		sent++
	}
	if now < 100 || now > 120 {
		t.Fatalf("%d of %d refreshes due at once went at once, want a burst of about a tenth of a second's pace (110)", now, sent)
	}
	if at := p.slot(t0, far, need); at.Sub(t0) < 2*time.Second {
		t.Fatalf("the 3001st refresh's slot is %s after now, want about 2.6s at 1100/s", at.Sub(t0))
	}
	if at := p.slot(t0, t0, need); !at.Equal(t0) {
		t.Fatalf("an urgent refresh got a slot %s after now, want now", at.Sub(t0))
	}
}
