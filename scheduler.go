package tokenbroker

import (
	"container/heap"
	"sync"
	"time"
)

// schedule holds each chain's next background refresh time: a min-heap of
// (due, name), so the background finds what is due without visiting every
// name. Publishing a snapshot sets its name's entry; deleting a config
// removes it.
type schedule struct {
	mu    sync.Mutex
	items dueHeap
	byKey map[string]*dueItem
	// wake is signalled when an entry sooner than all others arrives, or
	// when someone wants the due entries run now.
	wake chan struct{}
	// inflight counts names popped and not yet finished.
	inflight int
	// need is how many refreshes a second the scheduled chains take in the
	// long run: the sum of 1/interval over them (see pace in background.go).
	need float64
}

type dueItem struct {
	name  string
	due   time.Time
	rate  float64 // 1/refresh interval, this chain's share of need
	index int     // in the heap; -1 when popped
	// held: due is a slot the pacer gave, when its shift was shift; popped
	// then, the name goes without asking for another.
	held  bool
	shift time.Duration
	// busy: popped and not yet finished. A due set meanwhile (the refresh
	// publishing its pending state, or its next due) waits in due until
	// finished, so a name in flight is never popped twice; requeue says
	// one was set.
	busy, requeue bool
}

func newSchedule() *schedule {
	return &schedule{byKey: map[string]*dueItem{}, wake: make(chan struct{}, 1)}
}

// set schedules name at due; the zero time removes it. interval is the
// chain's refresh interval (0: unchanged).
func (s *schedule) set(name string, due time.Time, interval time.Duration) {
	if due.IsZero() {
		s.remove(name)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.put(name, due, interval).held = false
}

// hold moves name to the later slot the pacer gave it, at, when the pacer's
// shift was shift; a name removed meanwhile (its config deleted) stays removed.
func (s *schedule) hold(name string, at time.Time, shift time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byKey[name]; ok {
		it := s.put(name, at, 0)
		it.held, it.shift = true, shift
	}
}

// release reports whether name, popped, was holding a slot, which slot and
// the pacer's shift then, and clears that.
func (s *schedule) release(name string) (slot time.Time, shift time.Duration, held bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.byKey[name]
	if !ok || !it.held {
		return time.Time{}, 0, false
	}
	it.held = false
	return it.due, it.shift, true
}

// put sets name's entry to due, and its rate from interval unless 0; s.mu is held.
func (s *schedule) put(name string, due time.Time, interval time.Duration) *dueItem {
	it, ok := s.byKey[name]
	switch {
	case ok && it.busy: // back into the heap when finished
		it.due, it.requeue = due, true
	case ok && it.index >= 0:
		it.due = due
		heap.Fix(&s.items, it.index)
	case ok: // popped earlier: back into the heap
		it.due = due
		heap.Push(&s.items, it)
	default:
		it = &dueItem{name: name, due: due}
		s.byKey[name] = it
		heap.Push(&s.items, it)
	}
	if interval > 0 {
		s.need += 1/interval.Seconds() - it.rate
		it.rate = 1 / interval.Seconds()
	}
	if len(s.items) > 0 && s.items[0].name == name {
		s.signal()
	}
	return it
}

func (s *schedule) remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if it, ok := s.byKey[name]; ok {
		if it.index >= 0 {
			heap.Remove(&s.items, it.index)
		}
		delete(s.byKey, name)
		s.need -= it.rate
	}
}

// popDue removes and returns the names due at now, soonest first. Each
// counts as in flight until finished is called for it.
func (s *schedule) popDue(now time.Time) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for len(s.items) > 0 && !s.items[0].due.After(now) {
		it := heap.Pop(&s.items).(*dueItem) // stays in byKey, its rate in need, until set or removed
		it.busy, it.requeue = true, false
		names = append(names, it.name)
	}
	s.inflight += len(names)
	return names
}

// finished marks the popped name as handled: a due set for it meanwhile
// takes effect now.
func (s *schedule) finished(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight--
	it, ok := s.byKey[name]
	if !ok || !it.busy {
		return
	}
	it.busy = false
	if it.requeue {
		heap.Push(&s.items, it)
		if s.items[0] == it {
			s.signal()
		}
	}
}

// needRate is the refreshes a second the scheduled chains take in the long
// run.
func (s *schedule) needRate() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.need
}

// next is the soonest due time; ok is false when nothing is scheduled.
func (s *schedule) next() (due time.Time, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.items) == 0 {
		return time.Time{}, false
	}
	return s.items[0].due, true
}

// pending counts the entries due at now and those popped but not finished.
func (s *schedule) pending(now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.inflight
	for _, it := range s.items {
		if !it.due.After(now) {
			n++
		}
	}
	return n
}

func (s *schedule) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// dueHeap implements heap.Interface, soonest first.
type dueHeap []*dueItem

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *dueHeap) Push(x any) {
	it := x.(*dueItem)
	it.index = len(*h)
	*h = append(*h, it)
}
func (h *dueHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	it.index = -1 // not in the heap
	return it
}
