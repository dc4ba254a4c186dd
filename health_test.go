package tokenbroker

import (
	"errors"
	"testing"
	"time"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// TestHealthRecords: what failures, successes and an operator's reset leave
// in a name's health: the last error stays for status, the waits end with a
// success, and a reset keeps only the provider's Retry-After.
func TestHealthRecords(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	busy := &provider.Error{Status: 429, RetryAfter: time.Minute}
	var h health
	if err, at := h.lastError(); err != nil || !at.IsZero() || h.last != nil {
		t.Fatalf("a new health has a last failure: %v at %v", err, at)
	}

	h = h.failed(busy, t0)
	backoff, notBefore := h.waits()
	if !notBefore.Equal(t0.Add(time.Minute)) || backoff.Before(t0.Add(backoffBase/2)) {
		t.Fatalf("after a 429 with Retry-After 1m: backoff until %v, not before %v; want ≥ t0+15s and t0+1m", backoff, notBefore)
	}
	expect(t, "a read held back by the Retry-After until", h.holdsBack(t0, false), t0.Add(time.Minute))

	h = h.failed(errors.New("connection refused"), t0.Add(time.Second))
	if _, nb := h.waits(); !nb.Equal(t0.Add(time.Minute)) {
		t.Errorf("a second failure without Retry-After dropped the first one's: not before %v", nb)
	}
	expect(t, "consecutive failures", h.failing, 2)

	reset := h.cleared()
	if b, nb := reset.waits(); !b.IsZero() || !nb.Equal(t0.Add(time.Minute)) {
		t.Errorf("after a reset: backoff until %v, not before %v; want none and t0+1m", b, nb)
	}
	if err, _ := reset.lastError(); err != nil || reset.failing != 0 {
		t.Errorf("after a reset: last error %v, %d failing; want none", err, reset.failing)
	}

	ok := h.succeeded(provider.GrantRefreshToken, t0.Add(2*time.Second))
	if b, nb := ok.waits(); !b.IsZero() || !nb.IsZero() || !ok.holdsBack(t0, true).IsZero() {
		t.Errorf("after a success: backoff until %v, not before %v; want none", b, nb)
	}
	if err, at := ok.lastError(); err == nil || !at.Equal(t0.Add(time.Second)) {
		t.Errorf("after a success: last error %v at %v, want the connection refused at t0+1s (status keeps it)", err, at)
	}
	expect(t, "refreshes", ok.refreshes, 1)
	expect(t, "failures", ok.failures, 2)
	expect(t, "consecutive failures after a success", ok.failing, 0)
}
