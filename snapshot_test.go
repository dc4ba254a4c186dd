package tokenbroker

import (
	"testing"
	"time"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// TestPublishedSnapshotsHoldNoConfig: what stays in memory for a name is what
// reads need, never the config with its secrets and keys; renewing loads the
// config from storage, so a config written meanwhile is what renews.
func TestPublishedSnapshotsHoldNoConfig(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.Echo360, nil)
	e.token("x")
	e.clock.Add(2 * time.Hour)
	e.token("x") // a refresh, under the lock with the full config
	e.restart()
	e.token("x") // loaded from storage
	if snap := e.b.loaded("x"); snap == nil || snap.cfg != nil {
		t.Fatalf("published snapshot = %+v, want one without its config", snap)
	}
	expect(t, "refresh_ahead kept for reads", e.b.loaded("x").settings.refreshAhead, defaultRefreshAhead)
	expect(t, "can mint kept for status and metrics", e.b.loaded("x").settings.canMint, true)
}
