package tokenbroker

// What the plugin counts, and how counts and snapshots become Prometheus
// series at scrape time (path_metrics.go serves them). Counting a creds read
// is one atomic add on the name's counters, which its snapshot points to: no
// lock, no allocation, no label hashing on the read path. Gauges that describe
// state (expiry, a chain needing an operator) are computed from the snapshots
// when Prometheus scrapes, so nothing is written to keep them current.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// readResult is what a creds read did.
type readResult uint8

const (
	readCached      readResult = iota // served from cache
	readWaited                        // waited for the provider and got a new token
	readStaleServed                   // the provider failed; the still-valid cached token was served
	readFailed                        // no token served
	readResults
)

var readResultNames = [readResults]string{"cached", "waited", "stale_served", "failed"}

// nameCounters are one name's counters. They live as long as the backend
// (a few hundred bytes per name ever configured, like its lock) and the
// scrape lists only configured names.
type nameCounters struct {
	reads [readResults]atomic.Uint64
	// waiters counts reads that joined another caller's upstream call.
	waiters atomic.Uint64

	mu sync.Mutex // guards provider; taken once per provider call
	// provider counts requests by label set: a short list (a name sees a
	// few label sets), lighter than a map at 100 000 names.
	provider []providerCount
}

type providerCount struct {
	key providerCallKey
	n   uint64
}

// providerCallKey is the label set of one provider request series.
type providerCallKey struct {
	grant          provider.Grant
	outcome, error string
}

// read counts one creds read; safe on a nil receiver (a snapshot built
// without counters).
func (c *nameCounters) read(r readResult) {
	if c != nil {
		c.reads[r].Add(1)
	}
}

// readsTotal is how many creds reads the name served, whatever their result.
func (c *nameCounters) readsTotal() uint64 {
	var n uint64
	for r := range c.reads {
		n += c.reads[r].Load()
	}
	return n
}

// metrics holds the plugin's counters and its own Prometheus registry (never
// the global one: several mounts may share one plugin process).
type metrics struct {
	registry            *prometheus.Registry
	providerSeconds     *prometheus.HistogramVec
	passSeconds         prometheus.Histogram
	backgroundRefreshes *prometheus.CounterVec
	persistFailures     prometheus.Counter
	webhookDeliveries   *prometheus.CounterVec
}

// Outcomes of provider requests and background refreshes: success or the
// failure's class (provider.Class); a background refresh that failed without
// a provider answer (storage, a chain needing an operator) is "other".
const (
	outcomeSuccess = "success"
	outcomeOther   = "other"
)

var backgroundOutcomes = []string{outcomeSuccess, provider.Temporary.String(), provider.Lost.String(), provider.Refused.String(), outcomeOther}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		providerSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tokenbroker_provider_request_duration_seconds",
			Help:    "Time of one token request to a provider, by grant.",
			Buckets: []float64{0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"grant"}),
		passSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tokenbroker_background_pass_duration_seconds",
			Help:    "Time of one background refresh round (the refreshes due at one moment), its refreshes included.",
			Buckets: []float64{0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300},
		}),
		backgroundRefreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenbroker_background_refreshes_total",
			Help: "Refreshes started by the background pass, by outcome (success, temporary, lost, refused, other).",
		}, []string{"outcome"}),
		persistFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tokenbroker_state_persist_failures_total",
			Help: "Token state writes that failed after retries (the state is kept in memory and written later), or a refresh not attempted because its pending mark could not be written.",
		}),
	}
	m.webhookDeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenbroker_webhook_deliveries_total",
		Help: "Webhook delivery attempts on this node, by outcome: delivered (a 2xx), failed (retried later), dropped (given up after 72 h, or the outbox was full).",
	}, []string{"outcome"})
	for _, o := range []string{"delivered", "failed", "dropped"} {
		m.webhookDeliveries.WithLabelValues(o)
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "tokenbroker_build_info",
		Help:        "The plugin's version; always 1.",
		ConstLabels: prometheus.Labels{"version": Version},
	})
	buildInfo.Set(1)
	for _, o := range backgroundOutcomes {
		m.backgroundRefreshes.WithLabelValues(o) // present at 0 from the start, so rate() sees the first one
	}
	m.registry.MustRegister(m.providerSeconds, m.passSeconds, m.backgroundRefreshes, m.persistFailures, m.webhookDeliveries, buildInfo,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Provider requests that are not token grants, as the grant label of
// provider_requests_total and provider_request_duration_seconds names them.
const (
	requestDeviceAuthorization provider.Grant = "device_authorization"
	requestInstallationLookup  provider.Grant = "installation_lookup"
	requestRevocation          provider.Grant = "revocation"
	requestDiscovery           provider.Grant = "discovery"
	requestUserinfo            provider.Grant = "userinfo"
)

// providerCall counts one provider request of a name (on its counters c)
// and its duration. ctxErr is the call's context error, telling a timeout
// from another failure.
func (m *metrics) providerCall(c *nameCounters, grant provider.Grant, latency time.Duration, err, ctxErr error) {
	m.providerSeconds.WithLabelValues(string(grant)).Observe(latency.Seconds())
	key := providerCallKey{grant: grant, outcome: outcomeOf(err), error: errorLabel(err, errors.Is(ctxErr, context.DeadlineExceeded))}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.provider {
		if c.provider[i].key == key {
			c.provider[i].n++
			return
		}
	}
	c.provider = append(c.provider, providerCount{key, 1})
}

// backgroundRefresh counts one refresh started by the background pass.
func (m *metrics) backgroundRefresh(err error) {
	m.backgroundRefreshes.WithLabelValues(outcomeOf(err)).Inc()
}

// timePass records the duration of a background pass that started at start.
func (m *metrics) timePass(start time.Time) { m.passSeconds.Observe(time.Since(start).Seconds()) }

// outcomeOf is success, or the class of the provider error in err.
func outcomeOf(err error) string {
	if err == nil {
		return outcomeSuccess
	}
	var pe *provider.Error
	if errors.As(err, &pe) {
		return pe.Class.String()
	}
	return outcomeOther
}

// oauthErrorCodes are the error codes the error label carries as they are
// (RFC 6749 §5.2, RFC 6750 §3.1, the two server-side ones, and a device
// poll's answers, RFC 8628 §3.5). Any other code becomes its HTTP status
// class, so the label has a few values only.
var oauthErrorCodes = map[string]bool{
	"invalid_request": true, "invalid_client": true, "invalid_grant": true, "unauthorized_client": true,
	"unsupported_grant_type": true, "invalid_scope": true, "invalid_token": true,
	"server_error": true, "temporarily_unavailable": true,
	provider.DevicePending: true, provider.DeviceSlowDown: true, provider.DeviceDenied: true, provider.DeviceExpired: true,
}

// errorLabel is the error label of a provider request: none, a standard
// OAuth error code, http_2xx..http_5xx, timeout, connection (no answer), or
// request (the request could not be built).
func errorLabel(err error, timedOut bool) string {
	var pe *provider.Error
	switch {
	case err == nil:
		return "none"
	case !errors.As(err, &pe):
		return "request"
	case oauthErrorCodes[pe.Code]:
		return pe.Code
	case pe.Status >= 200 && pe.Status < 600:
		return fmt.Sprintf("http_%dxx", pe.Status/100)
	case timedOut:
		return "timeout"
	case pe.Class == provider.Refused:
		return "request"
	}
	return "connection"
}

// watchWebhooks registers the outbox gauges: what the delivery worker saw
// last (it runs on the active node; elsewhere they stay 0).
func (m *metrics) watchWebhooks(h *webhookHooks, now func() time.Time) {
	m.registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tokenbroker_webhook_outbox_depth",
			Help: "Webhook events waiting in the outbox, as the delivery worker (on the active node) saw last.",
		}, func() float64 { return float64(h.depth.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tokenbroker_webhook_oldest_event_age_seconds",
			Help: "Age of the oldest undelivered webhook event (0: none), as the delivery worker saw last.",
		}, func() float64 {
			at := h.oldest.Load()
			if at == 0 || h.depth.Load() == 0 {
				return 0
			}
			return max(0, now().Sub(time.Unix(0, at)).Seconds())
		}),
	)
}
