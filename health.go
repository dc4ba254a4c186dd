package tokenbroker

import (
	"errors"
	"math/rand/v2"
	"time"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// Backoff of background refreshes after failures: doubling from backoffBase
// up to backoffMax, with jitter.
const (
	backoffBase = 30 * time.Second
	backoffMax  = 30 * time.Minute
)

// health is what the provider calls of one name taught us since the plugin
// started; it lives in memory only (status/<name> shows it).
type health struct {
	// failing counts consecutive failures; zero once a call succeeds.
	failing      int
	backoffUntil time.Time // our own backoff, for background refreshes
	notBefore    time.Time // the provider's Retry-After, honoured by every caller

	mints, refreshes, failures int
	lastSuccessAt              time.Time
	lastErr                    error
	lastErrAt                  time.Time
}

// failed records a failure and schedules the next background attempt.
func (h health) failed(err error, now time.Time) health {
	h.failing++
	h.failures++
	h.lastErr = err
	h.lastErrAt = now
	backoff := min(backoffBase<<min(h.failing-1, 16), backoffMax)
	backoff = backoff/2 + rand.N(backoff/2+1) // jitter spreads retries of many names
	h.backoffUntil = now.Add(backoff)
	var pe *provider.Error
	if errors.As(err, &pe) && pe.RetryAfter > 0 {
		h.notBefore = now.Add(pe.RetryAfter)
	}
	return h
}

// succeeded records a token obtained with grant and clears any backoff.
func (h health) succeeded(grant provider.Grant, now time.Time) health {
	h.failing = 0
	h.backoffUntil, h.notBefore = time.Time{}, time.Time{}
	if grant == provider.GrantRefreshToken {
		h.refreshes++
	} else {
		h.mints++
	}
	h.lastSuccessAt = now
	return h
}

// holdsBack reports why a call for this name must wait, if it must: the
// provider's Retry-After for every caller, our own backoff for the
// background only. The zero time means go ahead.
func (h health) holdsBack(now time.Time, background bool) time.Time {
	until := h.notBefore
	if background && h.backoffUntil.After(until) {
		until = h.backoffUntil
	}
	if now.Before(until) {
		return until
	}
	return time.Time{}
}

// cleared forgets failures and our own backoff (an operator reset the chain);
// the counters and the provider's Retry-After stay.
func (h health) cleared() health {
	h.failing, h.backoffUntil, h.lastErr, h.lastErrAt = 0, time.Time{}, nil, time.Time{}
	return h
}
