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
	index int     // in the heap
	// held: due is a slot the pacer gave; popped then, the name goes
	// without asking for another.
	held bool
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

// hold moves name to the later slot the pacer gave it, at; a name removed
// meanwhile (its config deleted) stays removed.
func (s *schedule) hold(name string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byKey[name]; ok {
		s.put(name, at, 0).held = true
	}
}

// release reports whether name, popped, was holding a slot, and clears that.
func (s *schedule) release(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.byKey[name]
	if !ok || !it.held {
		return false
	}
	it.held = false
	return true
}

// put sets name's entry to due, and its rate from interval unless 0; s.mu is held.
func (s *schedule) put(name string, due time.Time, interval time.Duration) *dueItem {
	it, ok := s.byKey[name]
	switch {
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
	if s.items[0].name == name {
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
		names = append(names, it.name)
	}
	s.inflight += len(names)
	return names
}

// finished marks one popped name as handled.
func (s *schedule) finished() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight--
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
