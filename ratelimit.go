package tokenbroker

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// hostLimits paces provider calls per token-URL host, for every caller (the
// background and waiting reads share it): at most the settings' rate_limit
// requests a second with its burst, and none while the host's Retry-After
// (from a 429 or 503) runs.
type hostLimits struct {
	mu    sync.Mutex
	limit rate.Limit // rate.Inf: no limit
	burst int
	hosts map[string]*hostLimit
}

type hostLimit struct {
	limiter     *rate.Limiter
	pausedUntil time.Time
}

func newHostLimits() *hostLimits {
	return &hostLimits{limit: rate.Inf, hosts: map[string]*hostLimit{}}
}

// configure sets the rate for every host; perSecond 0 means no limit.
func (h *hostLimits) configure(perSecond float64, burst int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	limit := rate.Limit(perSecond)
	if perSecond <= 0 {
		limit = rate.Inf
	}
	if limit == h.limit && burst == h.burst {
		return
	}
	h.limit, h.burst = limit, burst
	for _, hl := range h.hosts {
		hl.limiter.SetLimit(limit)
		hl.limiter.SetBurst(burst)
	}
}

func (h *hostLimits) host(host string) *hostLimit {
	h.mu.Lock()
	defer h.mu.Unlock()
	hl, ok := h.hosts[host]
	if !ok {
		hl = &hostLimit{limiter: rate.NewLimiter(h.limit, h.burst)}
		h.hosts[host] = hl
	}
	return hl
}

// maxPauseWait: a caller waits out a Retry-After pause this short (a
// provider's "Retry-After: 1"); a longer one refuses at once.
const maxPauseWait = time.Second

// wait blocks until a call to host may go out, within ctx. A host paused by
// its Retry-After for longer than maxPauseWait refuses at once, with a
// temporary error naming the time.
func (h *hostLimits) wait(ctx context.Context, host string, now time.Time) error {
	hl := h.host(host)
	h.mu.Lock()
	paused := hl.pausedUntil
	h.mu.Unlock()
	if left := paused.Sub(now); left > maxPauseWait {
		return &provider.Error{Class: provider.Temporary,
			Description: "the provider asked every client to wait (Retry-After) until " + paused.UTC().Format(time.RFC3339) + "; not sent"}
	} else if left > 0 {
		sleep(ctx, left)
	}
	if err := hl.limiter.Wait(ctx); err != nil {
		return &provider.Error{Class: provider.Temporary, Description: "rate_limit for " + host + ": " + err.Error()}
	}
	return nil
}

// pause holds every call to host back until until.
func (h *hostLimits) pause(host string, until time.Time) {
	hl := h.host(host)
	h.mu.Lock()
	defer h.mu.Unlock()
	if until.After(hl.pausedUntil) {
		hl.pausedUntil = until
	}
}

// hostOf is the host (and port) that a token URL names, lower-cased.
func hostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Host)
}
