package tokenbroker

// The background pass Vault runs about once a minute.

import (
	"fmt"
	"testing"
	"time"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

func TestPeriodicRefresh(t *testing.T) {
	e := newEnv(t)
	e.fake.SetLifetime(time.Hour)
	names := []string{"a", "b", "c"}
	for _, name := range names {
		e.config(name, fakeprovider.Echo360, nil)
		e.token(name)
	}
	e.config("unread", fakeprovider.Echo360, nil) // no token yet: the pass leaves it alone
	pass := func(what string) {
		t.Helper()
		if err := e.periodic(); err != nil {
			t.Fatalf("%s: periodic pass: %v", what, err)
		}
	}

	pass("fresh tokens")
	expect(t, "upstream calls after a pass over fresh tokens", e.fake.TotalCalls(), 3)

	e.clock.Add(57*time.Minute + 30*time.Second) // inside every name's jittered window
	pass("tokens in their window")
	expect(t, "names the pass refreshed", e.fake.Grants("refresh_token"), 3)
	calls := e.fake.TotalCalls()
	for _, name := range names {
		e.token(name)
	}
	expect(t, "upstream calls by reads after the pass", e.fake.TotalCalls()-calls, 0)

	// Failures back off: a second pass right after a failed one does not call again.
	e.clock.Add(57*time.Minute + 30*time.Second)
	e.fake.Fail(100, fakeprovider.Fail500)
	before := e.fake.TotalCalls()
	pass("failing provider")
	failed := e.fake.TotalCalls()
	expect(t, "upstream calls by the failing pass", failed-before, 3)
	pass("right after a failed pass")
	expect(t, "upstream calls by the pass during backoff", e.fake.TotalCalls()-failed, 0)
	expectField(t, e.status("a"), "consecutive_failures", 1)
}

func TestPeriodicPassSavesUnsavedState(t *testing.T) {
	e := newEnv(t)
	rotateUnsaved(e)

	e.storage.failAfterRotation.Store(false)
	calls := e.fake.TotalCalls()
	if err := e.periodic(); err != nil {
		t.Fatalf("periodic pass: %v", err)
	}
	expect(t, "upstream calls by a pass that only saves", e.fake.TotalCalls(), calls)
	expectField(t, e.status("x"), "state_saved", true)
	stored, served := e.storedState("x"), e.token("x")
	expect(t, "stored access token", stored.AccessToken, served)
}

// passDelay spreads names over the first quarter of their window, the same
// for a name every time.
func TestPassDelaySpreadsNamesOverAQuarterOfTheWindow(t *testing.T) {
	const window = 20 * time.Minute
	distinct := map[time.Duration]bool{}
	for i := range 100 {
		name := fmt.Sprintf("name-%d", i)
		d := passDelay(name, window)
		if d < 0 || d >= window/4 {
			t.Fatalf("passDelay(%q, %s) = %s, want in [0, %s)", name, window, d, window/4)
		}
		expect(t, fmt.Sprintf("passDelay(%q) again", name), passDelay(name, window), d)
		distinct[d] = true
	}
	if len(distinct) < 50 {
		t.Fatalf("100 names got %d distinct delays, want them spread (at least 50)", len(distinct))
	}
}
