package tokenbroker

// Storage failures: a rotated refresh token is never lost and a stale one is
// never sent.

import (
	"testing"
	"time"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

// rotateUnsaved mints x (Echo360) and lets it expire; the next read's refresh
// succeeds at the provider but its answer cannot be saved, so the read fails
// and the newest state (and refresh token) lives only in memory. Storage
// keeps failing that way until the caller sets failAfterRotation to false.
func rotateUnsaved(e *env) {
	e.t.Helper()
	e.config("x", fakeprovider.Echo360, nil)
	e.token("x")
	e.clock.Add(2 * time.Hour)
	e.storage.failAfterRotation.Store(true)
	_, err := e.creds("x", nil)
	expectErr(e.t, "read whose rotated state cannot be saved", err, "not saved")
}

func TestStorageFailureKeepsNewestRefreshToken(t *testing.T) {
	e := newEnv(t)
	rotateUnsaved(e)
	status := e.status("x")
	expectField(t, status, "state_saved", false)
	expectField(t, status, "healthy", false)

	// The rotated state lives in memory; the next read serves it and a later
	// refresh uses its refresh token, never the stale stored one.
	if served := e.token("x"); !e.fake.Valid(served) {
		t.Fatalf("unsaved token %q: the fake does not accept it", served)
	}
	e.clock.Add(2 * time.Hour)
	_, err := e.creds("x", nil)
	expectErr(t, "read while storage still fails", err, "not saved")

	e.storage.failAfterRotation.Store(false)
	e.clock.Add(2 * time.Hour)
	e.token("x")
	expect(t, "refresh token reuses", e.fake.RefreshReuses(), 0)
	expectField(t, e.status("x"), "state_saved", true)

	// Once storage works the newest state is persisted: a fresh backend on the
	// same storage continues the chain.
	e.restart()
	e.clock.Add(2 * time.Hour)
	e.token("x")
	expect(t, "refresh token reuses after a restart", e.fake.RefreshReuses(), 0)
	expect(t, "client_credentials grants (one chain throughout)", e.fake.Grants("client_credentials"), 1)
	expect(t, "refresh grants", e.fake.Grants("refresh_token"), 4)
}

func TestStorageDownRefreshNotSent(t *testing.T) {
	e := newEnv(t)
	e.config("x", fakeprovider.Echo360, nil)
	e.token("x")
	e.clock.Add(2 * time.Hour)
	e.storage.FailPut(true)
	calls := e.fake.TotalCalls()
	_, err := e.creds("x", nil)
	expectErr(t, "read while storage is down", err, "not attempted")
	expect(t, "upstream calls while the pending mark cannot be stored", e.fake.TotalCalls(), calls)

	e.storage.FailPut(false)
	e.token("x")
	expect(t, "refresh grants once storage recovered", e.fake.Grants("refresh_token"), 1)
	expect(t, "client_credentials grants (the chain continued)", e.fake.Grants("client_credentials"), 1)
}
