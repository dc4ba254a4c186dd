package tokenbroker

// The scrape-time side of the metrics: series families, and the collector
// that turns each name's counters and snapshot into series, per name or
// summed when the mount holds more names than metrics_max_names.

import (
	"context"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/prometheus/client_golang/prometheus"
)

// A family is one series name, with the name label (per-name mode) or
// without it (aggregate mode, when a mount holds more names than
// metrics_max_names).
type family struct {
	perName, aggregate *prometheus.Desc
	kind               prometheus.ValueType
}

func newFamily(fqName, help string, kind prometheus.ValueType, labels ...string) family {
	return family{
		perName:   prometheus.NewDesc(fqName, help, append([]string{"name"}, labels...), nil),
		aggregate: prometheus.NewDesc(fqName, help, labels, nil),
		kind:      kind,
	}
}

func (f family) metric(name string, v float64, labels ...string) prometheus.Metric {
	if name == "" {
		return prometheus.MustNewConstMetric(f.aggregate, f.kind, v, labels...)
	}
	return prometheus.MustNewConstMetric(f.perName, f.kind, v, append([]string{name}, labels...)...)
}

var (
	famProviderRequests = newFamily("tokenbroker_provider_requests_total",
		"Requests sent to the provider, by grant (or device_authorization, installation_lookup, revocation), outcome (success, temporary, lost, refused) and error (an OAuth error code, an HTTP status class, timeout, connection or request).",
		prometheus.CounterValue, "grant", "outcome", "error")
	famCredsReads = newFamily("tokenbroker_creds_reads_total",
		"Reads of creds/<name>, by result: cached, waited (for the provider), stale_served (the provider failed; the valid cached token was served) or failed.",
		prometheus.CounterValue, "result")
	famWaiters = newFamily("tokenbroker_singleflight_waiters_total",
		"Reads that waited on an upstream call another caller had started, instead of making their own.",
		prometheus.CounterValue)
	famAccessExpiry = newFamily("tokenbroker_access_token_expiry_timestamp_seconds",
		"When the cached access token expires (unix seconds); absent when none is cached. In aggregate mode, the earliest.",
		prometheus.GaugeValue)
	famRefreshExpiry = newFamily("tokenbroker_refresh_token_expiry_timestamp_seconds",
		"When the refresh token expires, as the provider said (unix seconds); absent when unknown. In aggregate mode, the earliest.",
		prometheus.GaugeValue)
	famReauthorizeBy = newFamily("tokenbroker_chain_reauthorize_by_timestamp_seconds",
		"For a chain whose config cannot mint, when its refresh token expires and an operator must write a new one (unix seconds); absent otherwise. In aggregate mode, the earliest.",
		prometheus.GaugeValue)
	famNeedsReauth = newFamily("tokenbroker_chain_needs_reauthorization",
		"1 when the chain is lost and its config cannot mint: an operator must write a new refresh_token (a config waiting for its first user authorization is not counted). In aggregate mode, the number of such names.",
		prometheus.GaugeValue)
	famFailing = newFamily("tokenbroker_chain_refresh_failing",
		"1 while the last attempt to obtain a token for the name failed. In aggregate mode, the number of such names.",
		prometheus.GaugeValue)
)

// nameView is what one name's series show at scrape time; summed over names
// (add), it is the aggregate view.
type nameView struct {
	reads    [readResults]uint64
	waiters  uint64
	provider map[providerCallKey]uint64
	// loaded: the name's snapshot is known, so the gauges below are emitted.
	loaded                                   bool
	needsReauth, failing                     int
	accessExpiry, refreshExpiry, reauthorize time.Time // zero: absent
}

// viewOf reads name's counters and snapshot.
func viewOf(c *nameCounters, snap *snapshot) nameView {
	var v nameView
	if c != nil {
		for r := range v.reads {
			v.reads[r] = c.reads[r].Load()
		}
		v.waiters = c.waiters.Load()
		c.mu.Lock()
		if len(c.provider) > 0 {
			v.provider = make(map[providerCallKey]uint64, len(c.provider))
			for _, pc := range c.provider {
				v.provider[pc.key] = pc.n
			}
		}
		c.mu.Unlock()
	}
	if snap == nil {
		return v
	}
	v.loaded = true
	if ev := snap.evicted; ev != nil {
		// Only a chain in good health is evicted (residency.go): it needs
		// no operator, is not failing and has no reauthorize_by.
		v.accessExpiry, v.refreshExpiry = ev.accessExpiry(), ev.refreshExpiry()
		return v
	}
	st := snap.state
	if st == nil {
		// No chain yet: nothing is lost. A config that can only be
		// connected by a user waits for its first authorization; that is
		// no alert.
		st = &tokenState{}
	} else if st.NeedsRefreshToken || (st.RefreshToken == "" && !snap.canMint()) {
		v.needsReauth = 1
	}
	if snap.failing > 0 {
		v.failing = 1
	}
	if st.AccessToken != "" {
		v.accessExpiry = st.ExpiresAt
	}
	if st.RefreshToken != "" {
		v.refreshExpiry = st.RefreshExpiresAt
	}
	v.reauthorize = snap.reauthorizeBy()
	return v
}

// add sums o into v: counters and 0/1 gauges add up, timestamps keep the earliest.
func (v *nameView) add(o nameView) {
	for r := range v.reads {
		v.reads[r] += o.reads[r]
	}
	v.waiters += o.waiters
	for k, n := range o.provider {
		if v.provider == nil {
			v.provider = map[providerCallKey]uint64{}
		}
		v.provider[k] += n
	}
	v.loaded = v.loaded || o.loaded
	v.needsReauth += o.needsReauth
	v.failing += o.failing
	v.accessExpiry = earliest(v.accessExpiry, o.accessExpiry)
	v.refreshExpiry = earliest(v.refreshExpiry, o.refreshExpiry)
	v.reauthorize = earliest(v.reauthorize, o.reauthorize)
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// emit sends v's series, labelled with name ("" for the aggregate view).
func (v *nameView) emit(ch chan<- prometheus.Metric, name string) {
	for r, n := range v.reads {
		ch <- famCredsReads.metric(name, float64(n), readResultNames[r])
	}
	ch <- famWaiters.metric(name, float64(v.waiters))
	for k, n := range v.provider {
		ch <- famProviderRequests.metric(name, float64(n), string(k.grant), k.outcome, k.error)
	}
	if !v.loaded {
		return
	}
	ch <- famNeedsReauth.metric(name, float64(v.needsReauth))
	ch <- famFailing.metric(name, float64(v.failing))
	for _, g := range []struct {
		f family
		t time.Time
	}{{famAccessExpiry, v.accessExpiry}, {famRefreshExpiry, v.refreshExpiry}, {famReauthorizeBy, v.reauthorize}} {
		if !g.t.IsZero() {
			ch <- g.f.metric(name, float64(g.t.Unix())) // whole seconds, as creds shows expires_at_seconds
		}
	}
}

// nameCollector is one scrape's view of the configured names. It is
// unchecked (Describe sends nothing): a family carries the name label or
// not, depending on how many names the mount holds at scrape time.
type nameCollector struct {
	b       *backend
	ctx     context.Context
	storage logical.Storage
	names   []string
	perName bool
	// loadedOnly: the refresh loop is loading every name (after a start or
	// reload), so a name not loaded yet is left out of this scrape's gauges
	// rather than loaded by it; a scrape never waits for 100 000 storage reads.
	loadedOnly bool
}

func (c *nameCollector) Describe(chan<- *prometheus.Desc) {}

func (c *nameCollector) Collect(ch chan<- prometheus.Metric) {
	var all nameView
	unloaded, notYet, lastErr := 0, 0, error(nil)
	for _, name := range c.names {
		snap := c.b.inMemory(name) // an evicted name's gauges come from what it kept
		var err error
		if snap == nil && c.loadedOnly {
			notYet++
			continue
		} else if snap == nil {
			if snap, err = c.b.snapshot(c.ctx, c.storage, name); err != nil {
				unloaded, lastErr = unloaded+1, err
			}
		}
		var counters *nameCounters
		if snap != nil {
			counters = snap.counters
		}
		v := viewOf(counters, snap)
		if c.perName {
			v.emit(ch, name)
		} else {
			all.add(v)
		}
	}
	if !c.perName {
		all.emit(ch, "")
	}
	if unloaded > 0 {
		c.b.logger.Warn("metrics: names whose state could not be loaded are left out of the gauges", "names", unloaded, "last_error", lastErr)
	}
	if notYet > 0 {
		c.b.logger.Debug("metrics: names the refresh loop has not loaded yet are left out of this scrape", "names", notYet)
	}
}
