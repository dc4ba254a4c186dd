package tokenbroker

import (
	"context"
	"fmt"
	"time"
)

// persistAttempts: a state write is retried this often before the newest
// state is kept in memory only (marked dirty) and retried later.
const persistAttempts = 3

// persist writes snap's state (retrying briefly) and publishes snap. If
// storage keeps failing, snap is published dirty: the newest state, and the
// refresh token in it, stays in memory and wins over the stale stored one
// until a later write succeeds.
func (b *backend) persist(ctx context.Context, name string, snap *snapshot) (*snapshot, error) {
	var err error
	for attempt := 1; attempt <= persistAttempts; attempt++ {
		if err = writeState(ctx, b.storage, name, snap.state); err == nil {
			snap = snap.with(func(n *snapshot) { n.dirty = false })
			b.publish(name, snap)
			return snap, nil
		}
		if attempt < persistAttempts {
			sleep(ctx, time.Duration(attempt)*b.persistRetryDelay)
		}
	}
	snap = snap.with(func(n *snapshot) { n.dirty = true })
	b.publish(name, snap)
	b.metrics.persistFailures.Inc()
	b.refreshLog.Error("token state not saved; keeping it in memory and retrying later", "name", name, "error", err)
	return snap, fmt.Errorf("token state for %q not saved (kept in memory, will retry): %w", name, err)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
