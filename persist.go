package tokenbroker

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// persistAttempts: a state write is retried this often before the newest
// state is kept in memory only (marked dirty) and retried later.
const persistAttempts = 3

// save writes snap's state to s and publishes snap, saved: the one way a
// token state is stored and shown to readers. On failure nothing is published.
func (b *backend) save(ctx context.Context, s logical.Storage, name string, snap *snapshot) (*snapshot, error) {
	if err := stateEntries.save(ctx, s, name, snap.state); err != nil {
		return snap, err
	}
	snap = snap.with(func(n *snapshot) { n.dirty = false })
	b.publish(name, snap)
	if len(snap.state.eventsHeld()) > 0 {
		b.hooks.markUnflushed(name) // stored with the change: now to the outbox (webhook.go)
	}
	return snap, nil
}

// persist saves snap's state (retrying briefly) and publishes snap. If
// storage keeps failing, snap is published dirty: the newest state, and the
// refresh token in it, stays in memory and wins over the stale stored one
// until a later write succeeds.
func (b *backend) persist(ctx context.Context, name string, snap *snapshot) (*snapshot, error) {
	var lastErr error
	for attempt := 1; attempt <= persistAttempts; attempt++ {
		saved, err := b.save(ctx, b.storage, name, snap)
		if err == nil {
			return saved, nil
		}
		lastErr = err
		if attempt < persistAttempts {
			sleep(ctx, time.Duration(attempt)*b.persistRetryDelay)
		}
	}
	snap = snap.with(func(n *snapshot) { n.dirty = true })
	b.publish(name, snap)
	b.metrics.persistFailures.Inc()
	b.refreshLog.Error("token state not saved; keeping it in memory and retrying later", "name", name, "error", lastErr)
	return snap, fmt.Errorf("token state for %q not saved (kept in memory, will retry): %w", name, lastErr)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
