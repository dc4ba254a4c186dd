package tokenbroker

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// want says when an existing access token is good enough.
type want struct {
	minTTL time.Duration
	// beyondWindow: the token must also be outside its refresh window
	// (the background refresh's standard).
	beyondWindow bool
	// renewedAfter: for a chain whose renewal ends the token it serves, the
	// token must be served past this time: a read in the handover before
	// the renewal wants the renewed token (snapshot.handoverWait).
	renewedAfter time.Time
}

func (w want) satisfiedBy(s *snapshot, now time.Time) bool {
	if s.state != nil && s.renewalEndsServed() {
		// The token serves until the renewal that ends it, whatever the
		// want: renewing sooner (for a min_ttl, say) would end the token
		// other readers were told they may use until then.
		until := s.servedUntil()
		return now.Before(until) && until.After(w.renewedAfter)
	}
	need := w.minTTL
	if s.state != nil {
		window := s.state.ExpiresAt.Sub(s.state.refreshAt(s.settings.refreshAhead))
		// No token lives longer than the provider makes it: a min_ttl beyond
		// what a fresh token has left is met by one still outside its refresh
		// window, so such reads cannot make every read call the provider.
		need = min(need, s.state.lifetime()-window)
		if w.beyondWindow {
			need = max(need, window)
		}
	}
	return s.state.usableFor(now, need)
}

// background is what a refresh nobody waits for wants; our own backoff
// applies to it, not to a caller that waits.
var background = want{beyondWindow: true}

// obtain waits until name holds a token that satisfies w, calling the
// provider if it must. Concurrent callers share one upstream call; the call
// runs on the backend's context, so a caller that gives up cannot cut it short.
// cold, when the caller loaded the name just now, spares the renewal loading
// its config again.
func (b *backend) obtain(ctx context.Context, name string, w want, cold *coldConfig) (*snapshot, error) {
	return b.shared(ctx, name, name, w, func() (*snapshot, error) { return b.lockAndObtain(name, w, cold) })
}

// shared runs do for name once for every concurrent caller with the same
// flight key and waits for it: the flight behind obtain, and behind a
// narrowed token's (variants.go). A caller that joined a call made for
// another need, which did not meet w, makes its own.
func (b *backend) shared(ctx context.Context, name, key string, w want, do func() (*snapshot, error)) (*snapshot, error) {
	for attempt := 1; ; attempt++ {
		led := false // this caller's function ran: it made the call others may share
		ch := b.flight.DoChan(key, func() (any, error) { led = true; return do() })
		select {
		case r := <-ch:
			if r.Shared && !led && w != background {
				b.counters(name).waiters.Add(1) // a read that shared another caller's upstream call
			}
			snap, _ := r.Val.(*snapshot)
			if r.Shared && attempt == 1 && (snap == nil || !w.satisfiedBy(snap, b.now())) {
				// We joined a call made for another need (a background
				// refresh, a smaller min_ttl) that did not meet ours: make our own.
				continue
			}
			return snap, r.Err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// refreshInBackground starts one refresh of name, if none is running, and
// does not wait for it.
func (b *backend) refreshInBackground(name string) {
	b.flight.DoChan(name, func() (any, error) { return b.lockAndObtain(name, background, nil) })
}

// lockAndObtain takes name's lock, re-reads its newest snapshot, returns it if
// it already satisfies w, and otherwise renews the chain (chain.go): the
// only way to the provider. It persists and publishes what it obtains.
func (b *backend) lockAndObtain(name string, w want, cold *coldConfig) (*snapshot, error) {
	lock := b.lockFor(name)
	lock.Lock()
	defer lock.Unlock()
	ctx := b.ctx

	snap, flushErr, err := b.freshView(ctx, name)
	if err != nil {
		return snap, err
	}
	now := b.now()
	if w.satisfiedBy(snap, now) {
		return snap, flushErr
	}
	if err := snap.mayRenew(name, now, w.beyondWindow); err != nil {
		return snap, err
	}

	r, err := b.beginRenewal(ctx, b.storage, name, snap, cold)
	if err != nil {
		return nil, err
	}
	r, st, err := b.renew(ctx, r)
	snap = r.snap
	if err != nil {
		snap = snap.with(func(n *snapshot) { n.health = n.health.failed(err, now) })
		b.publish(name, snap)
		return b.noteFailure(ctx, r, snap, now), err // webhook.go: connection.failing
	}
	st = st.withEvent(b.recoveredEvent(r, snap.state, st, st.IssuedAt)) // after connection.failing
	snap = snap.with(func(n *snapshot) {
		n.state = st
		n.health = n.health.succeeded(st.Grant, st.IssuedAt)
	})
	return b.persist(ctx, name, snap)
}

// freshView is name's newest snapshot for work under its lock, a state not
// yet saved saved first (flushErr: that still failed; work goes on from the
// newest, in-memory, refresh token and saves again). It fails with a 404
// without a config, and with logical.ErrReadOnly (and the view) on a node
// that may not rotate a chain.
func (b *backend) freshView(ctx context.Context, name string) (snap *snapshot, flushErr, err error) {
	snap, err = b.snapshot(ctx, b.storage, name)
	if err != nil {
		return nil, nil, err
	}
	if snap == nil {
		return nil, nil, errNoConfig(name)
	}
	if !b.WriteSafeReplicationState() {
		// Only a node that can write storage may rotate a chain.
		return snap, nil, logical.ErrReadOnly
	}
	if snap.dirty {
		snap, flushErr = b.persist(ctx, name, snap)
	}
	return snap, flushErr, nil
}

// mayRenew refuses to renew the chain now when it needs an operator, or
// is backing off after failures (background: the background's backoff).
func (s *snapshot) mayRenew(name string, now time.Time, background bool) error {
	if s.state != nil && s.state.NeedsRefreshToken {
		return errNeedsRefreshToken(name, nil)
	}
	if until := s.holdsBack(now, background); !until.IsZero() {
		lastErr, _ := s.lastError()
		return fmt.Errorf("provider for %q is backing off until %s after: %w",
			name, until.UTC().Format(time.RFC3339), lastErr)
	}
	return nil
}
