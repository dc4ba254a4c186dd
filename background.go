package tokenbroker

import (
	"context"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// backgroundWorkers bounds how many names the background pass refreshes at
// once: enough to refresh 10 000 names with a 50 ms provider inside one pass
// interval (a minute), few enough not to flood a provider.
const backgroundWorkers = 16

// periodicRefresh is the background pass Vault runs about once a minute: it
// refreshes every token inside its refresh window (or expired) so reads are
// served from cache, with bounded concurrency and per-name backoff. No lock
// is held across another name's provider call.
func (b *backend) periodicRefresh(ctx context.Context, req *logical.Request) error {
	if !b.WriteSafeReplicationState() {
		return nil
	}
	names, err := req.Storage.List(ctx, configPrefix)
	if err != nil {
		return fmt.Errorf("list configs: %w", err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, name := range names {
		snap, err := b.snapshot(ctx, req.Storage, name)
		if err != nil || snap == nil || snap.state == nil {
			continue
		}
		if !snap.refreshWanted(b.now(), passDelay(name, snap.state.refreshWindow(snap.cfg.RefreshAhead))) {
			continue
		}
		select {
		case b.background <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer func() { <-b.background; wg.Done() }()
			if _, err := b.obtain(b.ctx, name, background); err != nil {
				b.refreshLog.Warn("background refresh failed", "name", name, "error", err)
			}
		}()
	}
	return nil
}

// passDelay delays a name's background refresh past the start of its refresh
// window by up to a quarter of the window, fixed per name, so names minted
// together (a bulk import, a restart) reach the provider spread over several
// passes, not in one burst. Reads still refresh at the window's start.
func passDelay(name string, window time.Duration) time.Duration {
	h := fnv.New32a()
	h.Write([]byte(name))
	return time.Duration(uint64(window/4) * uint64(h.Sum32()%1024) / 1024)
}
