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
	failing                    int
	mints, refreshes, failures int
	lastSuccessAt              time.Time
	// last is the last failure (nil: none yet), kept apart so a chain that
	// never failed costs less memory; its waits end at the next success.
	last *failure
}

// failure is a name's last failure and the waits it imposed.
type failure struct {
	err          error
	at           time.Time
	backoffUntil time.Time // our own backoff, for background refreshes
	notBefore    time.Time // the provider's Retry-After, honoured by every caller
}

// lastError is the last failure, if any, and when it happened.
func (h health) lastError() (error, time.Time) {
	if h.last == nil {
		return nil, time.Time{}
	}
	return h.last.err, h.last.at
}

// waits are when our own backoff and the provider's Retry-After end.
func (h health) waits() (backoffUntil, notBefore time.Time) {
	if h.last == nil {
		return time.Time{}, time.Time{}
	}
	return h.last.backoffUntil, h.last.notBefore
}

// failed records a failure and schedules the next background attempt.
func (h health) failed(err error, now time.Time) health {
	h.failing++
	h.failures++
	backoff := min(backoffBase<<min(h.failing-1, 16), backoffMax)
	backoff = backoff/2 + rand.N(backoff/2+1) // jitter spreads retries of many names
	f := &failure{err: err, at: now, backoffUntil: now.Add(backoff)}
	if h.last != nil {
		f.notBefore = h.last.notBefore
	}
	var pe *provider.Error
	if errors.As(err, &pe) && pe.RetryAfter > 0 {
		f.notBefore = now.Add(pe.RetryAfter)
	}
	h.last = f
	return h
}

// succeeded records a token obtained with grant and clears any backoff.
func (h health) succeeded(grant provider.Grant, now time.Time) health {
	h.failing = 0
	if h.last != nil {
		h.last = &failure{err: h.last.err, at: h.last.at}
	}
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
	backoffUntil, until := h.waits()
	if background && backoffUntil.After(until) {
		until = backoffUntil
	}
	if now.Before(until) {
		return until
	}
	return time.Time{}
}

// cleared forgets failures and our own backoff (an operator reset the chain);
// the counters and the provider's Retry-After stay.
func (h health) cleared() health {
	_, notBefore := h.waits()
	h.failing, h.last = 0, nil
	if !notBefore.IsZero() {
		h.last = &failure{notBefore: notBefore}
	}
	return h
}
