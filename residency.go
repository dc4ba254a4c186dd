package tokenbroker

import (
	"cmp"
	"slices"
	"sync/atomic"
	"time"
)

// Residency: which names keep their token state in memory.
//
// A cached read is a map load of the name's snapshot, which holds its access
// token: at real providers' token sizes (a 1.5 KB JWT) most of what a name
// costs. A mount of 100 000 chains that few apps read keeps them all fresh
// in the background but need not keep every token in memory. So once more
// than residentMax names hold a loaded snapshot, the names read least
// recently give theirs up for an evicted one (evictedView): the schedule's
// due times, the gauges' values and the name's health, no token. Every user
// of a snapshot (b.loaded) sees an evicted name as not loaded and loads it
// from storage again, as after a restart: a read of it costs two storage
// reads once, then is cached again; its background refresh loads it when due.
//
// Kept resident whatever their last read: a state not yet saved (dirty,
// newer than storage), a chain failing or backing off (its health and
// last_error), one whose refresh token expires (reauthorize_by: the webhook
// notice and the alert read it from memory), one holding webhook events not
// yet in the outbox, and a name whose lock is held (a renewal or write in
// progress).
const (
	// defaultResidentMax: 10 000 names at about 3 KiB each (1.5 KB tokens)
	// keep the token cache near 30 MiB however many names the mount holds.
	defaultResidentMax = 10_000
	// residentSlack: a sweep evicts down to residentMax less this share, so
	// a busy mount does not sweep at every new load.
	residentSlack = 10 // percent
	// sweepGap is the least time between two sweeps: under a bulk first read
	// (500 mints a second) the loaded names exceed residentMax by at most
	// about two gaps' worth of loads.
	sweepGap = time.Second
)

// evictedView is what an evicted snapshot keeps of the full one, in as few
// bytes as a time allows (100 000 of them at a large mount): unixNano and
// unix are those of a time, 0 for the zero time.
type evictedView struct {
	// due, urgent and interval keep the name's background refresh where the
	// full snapshot had it (reschedule, urgentAt in background.go).
	dueUnixNano, urgentUnixNano int64
	interval                    time.Duration
	// accessExpiryUnix, refreshExpiryUnix: the gauges' values
	// (metrics_collector.go), in whole seconds as they show them.
	accessExpiryUnix, refreshExpiryUnix int64
}

func newEvictedView(due, urgent time.Time, interval time.Duration, accessExpiry, refreshExpiry time.Time) *evictedView {
	nano := func(t time.Time) int64 {
		if t.IsZero() {
			return 0
		}
		return t.UnixNano()
	}
	sec := func(t time.Time) int64 {
		if t.IsZero() {
			return 0
		}
		return t.Unix()
	}
	return &evictedView{dueUnixNano: nano(due), urgentUnixNano: nano(urgent), interval: interval,
		accessExpiryUnix: sec(accessExpiry), refreshExpiryUnix: sec(refreshExpiry)}
}

func (v *evictedView) due() time.Time          { return timeOf(v.dueUnixNano, 1) }
func (v *evictedView) urgent() time.Time       { return timeOf(v.urgentUnixNano, 1) }
func (v *evictedView) accessExpiry() time.Time { return timeOf(v.accessExpiryUnix, int64(time.Second)) }
func (v *evictedView) refreshExpiry() time.Time {
	return timeOf(v.refreshExpiryUnix, int64(time.Second))
}

// timeOf is the time n units after the Unix epoch, or the zero time for 0.
func timeOf(n, unit int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n*unit)
}

// residency counts the names holding a full snapshot and runs the sweeps.
type residency struct {
	max      int64 // residentMax; tests lower it
	resident atomic.Int64
	sweeping atomic.Bool
	// lastSweep is the time.Now().UnixNano() the last sweep started; the
	// sweep's own bookkeeping (sweepEpoch, and each entry's sweptReads and
	// lastReadSweep) is touched only by the one sweep running.
	lastSweep  atomic.Int64
	sweepEpoch uint64
}

// residentCost is what a name's entry holds for the sweep: its reads as the
// last sweep saw them, and the sweep that last saw them change.
type residentCost struct {
	sweptReads    uint64
	lastReadSweep uint64
}

// counted notes that a name's entry went from old to next (either may be nil
// or evicted) and starts a sweep when too many names are resident.
func (b *backend) counted(old, next *snapshot) {
	was, is := old.isFull(), next.isFull()
	switch {
	case is && !was:
		if b.residency.resident.Add(1) > b.residency.max {
			b.sweepSoon()
		}
	case was && !is:
		b.residency.resident.Add(-1)
	}
}

// inMemory is name's snapshot as memory holds it: loaded, evicted, or nil.
func (b *backend) inMemory(name string) *snapshot {
	if e, ok := b.entries.Load(name); ok {
		return e.(*nameEntry).snap.Load()
	}
	return nil
}

// isFull reports whether s is a loaded snapshot, not nil or evicted.
func (s *snapshot) isFull() bool { return s != nil && s.evicted == nil }

// sweepSoon starts a sweep unless one runs or one started less than
// sweepGap ago.
func (b *backend) sweepSoon() {
	r := &b.residency
	if time.Now().UnixNano()-r.lastSweep.Load() < int64(sweepGap) || !r.sweeping.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer r.sweeping.Store(false)
		b.sweep()
	}()
}

// sweep notes which names were read since the last sweep and, above
// residentMax, evicts the names read least recently down to residentMax
// less residentSlack. Callers hold r.sweeping.
func (b *backend) sweep() {
	r := &b.residency
	r.lastSweep.Store(time.Now().UnixNano())
	r.sweepEpoch++
	type candidate struct {
		name     string
		entry    *nameEntry
		lastRead uint64
	}
	var idle []candidate
	b.entries.Range(func(key, value any) bool {
		e := value.(*nameEntry)
		if reads := e.counters.readsTotal(); reads != e.cost.sweptReads {
			e.cost.sweptReads, e.cost.lastReadSweep = reads, r.sweepEpoch
		}
		if snap := e.snap.Load(); snap.isFull() && snap.evictable() {
			idle = append(idle, candidate{key.(string), e, e.cost.lastReadSweep})
		}
		return true
	})
	excess := r.resident.Load() - r.max*(100-residentSlack)/100
	if excess <= 0 || len(idle) == 0 {
		return
	}
	slices.SortFunc(idle, func(a, b candidate) int { return cmp.Compare(a.lastRead, b.lastRead) })
	for _, c := range idle {
		if excess <= 0 {
			break
		}
		if c.lastRead == r.sweepEpoch {
			break // read since the last sweep: everyone left was too
		}
		if b.evict(c.name, c.entry) {
			excess--
		}
	}
}

// evictable reports whether s may give up its state (see Residency above).
func (s *snapshot) evictable() bool {
	if backoffUntil, notBefore := s.waits(); s.dirty || s.failing > 0 || !backoffUntil.IsZero() || !notBefore.IsZero() {
		return false
	}
	return s.state == nil || (s.reauthorizeBy().IsZero() && len(s.state.eventsHeld()) == 0)
}

// evict replaces name's full snapshot with an evicted one, unless its lock
// is held or it changed meanwhile.
func (b *backend) evict(name string, e *nameEntry) bool {
	if !e.lock.TryLock() {
		return false
	}
	defer e.lock.Unlock()
	snap := e.snap.Load()
	if !snap.isFull() || !snap.evictable() {
		return false
	}
	var accessExpiry, refreshExpiry time.Time
	if st := snap.state; st != nil {
		if st.AccessToken != "" {
			accessExpiry = st.ExpiresAt
		}
		if st.RefreshToken != "" {
			refreshExpiry = st.RefreshExpiresAt
		}
	}
	ev := &snapshot{health: snap.health, counters: snap.counters,
		evicted: newEvictedView(snap.backgroundDue(name), snap.urgentAt(), snap.backgroundInterval(name), accessExpiry, refreshExpiry)}
	if !e.snap.CompareAndSwap(snap, ev) {
		return false
	}
	e.variants.drop() // narrowed tokens are read through the name: not read lately either
	b.counted(snap, ev)
	return true
}
