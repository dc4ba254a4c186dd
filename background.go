package tokenbroker

import (
	"context"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// backgroundWorkers bounds how many names the background refreshes at once:
// enough to keep 100 000 chains fresh with a 50 ms provider, few enough not
// to flood a provider (settings' rate_limit bounds the rate on top).
const backgroundWorkers = 16

// Loop timing: the loop sleeps until the next due refresh, but never longer
// than loopMaxSleep (so a clock change is noticed); a name whose state could
// not be saved is retried every dirtyRetry.
const (
	loopMaxSleep = time.Second
	dirtyRetry   = 30 * time.Second
)

// periodicRefresh is Vault's periodic call, about once a minute. It only
// makes sure the refresh loop runs on the node that can write storage and is
// stopped elsewhere; the loop refreshes what the schedule says is due, so no
// refresh waits for, or is bound by, Vault's periodic cadence and time cap.
func (b *backend) periodicRefresh(ctx context.Context, req *logical.Request) error {
	if !b.WriteSafeReplicationState() {
		b.loop.stop()
		b.hooks.stop()
		return nil
	}
	b.loop.start(b)
	b.hooks.start(b)                              // webhook_delivery.go: resumes after a failover
	b.noteReauthorizeBy(ctx)                      // webhook.go
	b.reconcileTombstones(ctx)                    // webhook.go
	b.sched.signal()                              // run what is due now
	b.resumePollers(ctx, req.Storage)             // device.go
	b.dropExpiredAuthorizations(ctx, req.Storage) // onboarding.go
	b.dropIdleVariants()                          // variants.go
	return nil
}

// initialize runs when the mount starts (a mount, an unseal, a plugin
// reload): the refresh loop starts at once on the node that can write
// storage, so chains due meanwhile are not left for Vault's first periodic
// call, up to a minute later, and then refreshed in one burst.
func (b *backend) initialize(context.Context, *logical.InitializationRequest) error {
	if b.WriteSafeReplicationState() {
		b.loop.start(b)
		b.hooks.start(b)
	}
	return nil
}

// worker is one goroutine that runs until it returns or is stopped: the
// refresh loop, the webhook delivery (webhook_delivery.go). mu guards its
// run and what its owner shares with the run.
type worker struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// start runs run on a child of parent unless a run is going; prepare, if
// set, runs first under mu.
func (w *worker) start(parent context.Context, prepare func(), run func(ctx context.Context)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(parent)
	done := make(chan struct{})
	w.cancel, w.done = cancel, done
	if prepare != nil {
		prepare()
	}
	go func() {
		defer close(done)
		run(ctx)
		w.mu.Lock()
		if w.done == done { // not stopped and restarted meanwhile
			w.cancel = nil
		}
		w.mu.Unlock()
		cancel()
	}()
}

// stop ends the run and waits for it.
func (w *worker) stop() {
	w.mu.Lock()
	cancel, done := w.cancel, w.done
	w.cancel = nil
	w.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// refreshLoop is the goroutine that runs scheduled refreshes; stop lets
// refreshes in flight finish first.
type refreshLoop struct {
	worker
	// built is closed once every stored name has been loaded and scheduled.
	built chan struct{}
}

func (l *refreshLoop) start(b *backend) {
	var built chan struct{}
	l.worker.start(b.ctx, func() { built = make(chan struct{}); l.built = built }, func(ctx context.Context) {
		if err := b.runRefreshLoop(ctx, built); err != nil {
			b.refreshLog.Error("background refresh loop stopped; the next periodic call restarts it", "error", err)
		}
	})
}

// runRefreshLoop loads every stored name once (so each has a due time; reads
// are served meanwhile), then refreshes what is due, sleeping until the next.
func (b *backend) runRefreshLoop(ctx context.Context, built chan struct{}) error {
	if err := b.scheduleStored(ctx); err != nil {
		return err
	}
	close(built)
	timer := time.NewTimer(0)
	defer timer.Stop()
	var inFlight sync.WaitGroup
	defer inFlight.Wait() // refreshes in flight finish before the loop ends
	for ctx.Err() == nil {
		b.refreshDue(ctx, &inFlight)
		sleep := loopMaxSleep
		if due, ok := b.sched.next(); ok {
			sleep = min(max(due.Sub(b.now()), 0), loopMaxSleep)
		}
		timer.Reset(sleep)
		select {
		case <-ctx.Done():
		case <-b.sched.wake:
		case <-timer.C:
		}
	}
	return nil
}

// scheduleStored loads the snapshot of every stored name, which schedules it.
// It lists them through the name index, which is then ready for LIST.
func (b *backend) scheduleStored(ctx context.Context) error {
	names, err := b.names.page(ctx, b.storage, "", 0)
	if err != nil {
		return fmt.Errorf("schedule the refreshes: %w", err)
	}
	for _, name := range names {
		if ctx.Err() != nil {
			return nil
		}
		if _, err := b.snapshot(ctx, b.storage, name); err != nil {
			b.refreshLog.Warn("loading a config to schedule its refresh failed", "name", name, "error", err)
		}
	}
	return nil
}

// refreshDue starts renewing every chain due now whose paced slot has come,
// backgroundWorkers at a time; it does not wait for them (inFlight does), so
// the loop keeps to the slots while slow refreshes finish.
func (b *backend) refreshDue(ctx context.Context, inFlight *sync.WaitGroup) {
	names := b.sched.popDue(b.now())
	if len(names) == 0 {
		return
	}
	defer b.metrics.timePass(time.Now())
	need := b.sched.needRate()
	for i, name := range names {
		now := b.now()
		if at, later := b.pacedSlot(name, now, need); later {
			b.sched.hold(name, at, b.pacer.shift) // its slot comes later
			b.sched.finished(name)
			continue
		}
		waitFrom := b.now()
		select {
		case b.refreshWorkers <- struct{}{}:
		case <-ctx.Done():
			for _, rest := range names[i:] {
				b.reschedule(rest, b.now())
				b.sched.finished(rest)
			}
			return
		}
		b.pacer.waited(b.now().Sub(waitFrom))
		inFlight.Add(1)
		go func() {
			defer func() { <-b.refreshWorkers; b.sched.finished(name); inFlight.Done() }()
			b.refreshScheduled(name)
		}()
	}
}

// pacedSlot is when name's refresh may go: the slot it holds (moved by how
// far the loop fell behind since it was given), or a new one; later says it
// is not now. A name past its urgentAt goes now, slot or not.
func (b *backend) pacedSlot(name string, now time.Time, need float64) (at time.Time, later bool) {
	urgent := b.urgentAt(name, now)
	if slot, shift, held := b.sched.release(name); held {
		at = slot.Add(b.pacer.shift - shift)
		return at, at.After(now) && at.Before(urgent)
	}
	at = b.pacer.slot(now, urgent, need)
	return at, at.After(now)
}

// Pacing: names minted together (a bulk import, a restart after downtime)
// come due together. Rather than send them in one burst, the loop gives
// background refreshes slots at most paceFactor times the rate the schedule
// needs in the long run (each chain once per backgroundInterval), never fewer
// than paceFloor a second, with small bursts. A name moved to a later slot
// stays inside its refresh window: once three quarters of the window have
// passed, it goes at once. So a backlog drains at an even rate as long as the
// pace clears it within three quarters of a window (100 000 names minted at
// 900/s do, with 5-minute windows); a larger one goes, past that point, as
// fast as it came due. Slots are on the backend's clock, so tests that drive
// the clock see the same pacing.
const (
	paceFactor = 1.1
	paceFloor  = 50.0
	// A burst is paceBurst's worth of slots, or paceBurstMin slots if
	// that is more: a few names due together at a small mount just go.
	paceBurst    = time.Second / 50
	paceBurstMin = 10
)

// pacer hands out background refresh slots. Only the refresh loop uses it;
// a name given a later slot keeps it in the schedule (hold).
type pacer struct {
	next  time.Time // the next free slot
	floor float64   // the least pace, refreshes a second: paceFloor (tests lower it)
	// shift is how long, in all, the loop waited for a free worker beyond a
	// burst's time (storage or the provider slowed down): every slot given
	// moves by it, so slots missed meanwhile are not made up in a burst.
	shift time.Duration
}

// waited records that the loop waited d for a free worker.
func (p *pacer) waited(d time.Duration) {
	if d > paceBurst {
		p.shift += d
		p.next = p.next.Add(d)
	}
}

// slot returns when a refresh may go, at need refreshes a second, and takes
// that slot; urgentAt is when the refresh must go whatever the pace.
func (p *pacer) slot(now, urgentAt time.Time, need float64) time.Time {
	limit := max(paceFactor*need, p.floor)
	gap := time.Duration(float64(time.Second) / limit)
	burst := max(paceBurst, paceBurstMin*gap)
	at := p.next
	if floor := now.Add(-burst); at.Before(floor) {
		at = floor // unused slots of the last moments serve a small burst
	}
	if !at.Before(urgentAt) {
		return now
	}
	p.next = at.Add(gap)
	if at.Before(now) {
		return now
	}
	return at
}

// urgentAt is when name's refresh must go, paced or not (snapshot.urgentAt,
// or what an evicted name kept of it); now when that says at once.
func (b *backend) urgentAt(name string, now time.Time) time.Time {
	var urgent time.Time
	switch snap := b.inMemory(name); {
	case snap.isFull():
		urgent = snap.urgentAt()
	case snap != nil:
		urgent = snap.evicted.urgent()
	}
	if urgent.IsZero() {
		return now
	}
	return urgent
}

// loading reports whether the loop is running and still loading the stored
// names (after a start or a plugin reload: about a minute at 100 000).
func (l *refreshLoop) loading() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancel == nil {
		return false
	}
	select {
	case <-l.built:
		return false
	default:
		return true
	}
}

// settle waits, up to timeout, until the loop has loaded every stored name
// and nothing due now is left or in flight: for tests and benchmarks that
// drive the clock.
func (l *refreshLoop) settle(b *backend, timeout time.Duration) error {
	l.mu.Lock()
	built := l.built
	l.mu.Unlock()
	if built == nil {
		return nil // never started
	}
	deadline := time.After(timeout)
	for {
		select {
		case <-built:
			if b.sched.pending(b.now()) == 0 {
				return nil
			}
		default:
		}
		b.sched.signal()
		select {
		case <-deadline:
			return fmt.Errorf("background refreshes not settled after %s", timeout)
		case <-time.After(time.Millisecond):
		}
	}
}

// refreshScheduled renews name if it still wants it, then schedules its next visit.
// A name that was not in memory (evicted: residency.go) is evicted again
// once renewed, unless read meanwhile: keeping idle chains fresh does not
// fill the cache.
func (b *backend) refreshScheduled(name string) {
	e := b.entry(name)
	idle, reads := !e.snap.Load().isFull(), e.counters.readsTotal()
	snap, cold, err := b.snapshotAndConfig(b.ctx, b.storage, name)
	if err != nil || snap == nil {
		if err != nil {
			b.refreshLog.Warn("background refresh could not load its config", "name", name, "error", err)
			b.sched.set(name, b.now().Add(backoffBase), 0)
		}
		return
	}
	if snap.refreshWanted(b.now(), snap.passDelay(name)) {
		_, err := b.obtain(b.ctx, name, background, cold)
		b.metrics.backgroundRefresh(err)
		if err != nil {
			b.refreshLog.Warn("background refresh failed", "name", name, "error", err)
		}
	}
	b.reschedule(name, b.now())
	if idle && e.counters.readsTotal() == reads && b.residency.resident.Load() > b.residency.max/2 {
		b.evict(name, e)
	}
}

// reschedule sets name's next visit from its current snapshot, never sooner
// than a second from now (so a chain that stays due cannot spin the loop),
// and a dirty one after dirtyRetry.
func (b *backend) reschedule(name string, now time.Time) {
	snap := b.inMemory(name)
	var due time.Time
	var interval time.Duration
	switch {
	case snap == nil:
		b.sched.remove(name) // forgotten: the next load schedules it again
		return
	case snap.evicted != nil: // evicted since its refresh: keep what it kept
		due, interval = snap.evicted.due(), snap.evicted.interval
	case snap.dirty:
		due, interval = now.Add(dirtyRetry), snap.backgroundInterval(name)
	default:
		due, interval = snap.backgroundDue(name), snap.backgroundInterval(name)
	}
	if !due.IsZero() && due.Before(now.Add(time.Second)) {
		due = now.Add(time.Second)
	}
	b.sched.set(name, due, interval)
}

// passDelay delays a name's background refresh past the start of its refresh
// window by up to a quarter of the window, fixed per name, so names minted
// together (a bulk import, a restart) reach the provider spread out, not in
// one burst. Reads still refresh at the window's start.
func passDelay(name string, window time.Duration) time.Duration {
	h := fnv.New32a()
	h.Write([]byte(name))
	return time.Duration(uint64(window/4) * uint64(h.Sum32()%1024) / 1024)
}
