package tokenbroker

// Webhook delivery: one worker, on the node that can write storage and never
// from an orphaned plugin process, moves recorded events to the outbox
// (webhook.go) and POSTs them in order, signed as Standard Webhooks asks. It
// is started when the mount starts and by every periodic pass (so after a
// failover the new active node resumes), and stopped where storage cannot
// be written. It runs apart from reads and renewals: it takes a name's lock
// only with TryLock, and its HTTP client is its own.
//
// Retries: a failed attempt (not 2xx, a timeout, a connection error) is
// retried with exponential backoff from webhookRetryBase, capped at
// webhookRetryMax, with jitter; after webhookFailuresPerPass failures in a
// row the whole receiver is held back the same way. An event not delivered
// webhookGiveUp after its change (72 h: three days of retrying) is dropped,
// counted and logged. A connection's events go in order: none is sent
// before the ones before it are delivered or dropped.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

const (
	webhookTimeout         = 10 * time.Second
	webhookRetryBase       = 5 * time.Second
	webhookRetryMax        = time.Hour
	webhookGiveUp          = 72 * time.Hour
	webhookFailuresPerPass = 3
	// webhookMaxSleep: the worker looks again at least this often (a
	// clock change, a retry come due).
	webhookMaxSleep = time.Second
	// webhookPassBudget bounds one pass; the rest waits for the next.
	webhookPassBudget = 2 * time.Minute
	// webhookBodyRead: how much of a receiver's answer is read (and discarded).
	webhookBodyRead = 64 << 10
)

// webhookHooks is the backend's in-memory part of webhooks: the worker, the
// names whose stored state holds events to move, and what status shows.
type webhookHooks struct {
	worker worker // the delivery worker (background.go)
	wake   chan struct{}

	unflushed sync.Map // name -> struct{}
	lastSeq   atomic.Int64
	seqOnce   sync.Once

	// client sends the deliveries; wallNow dates them (webhook-timestamp:
	// the receiver checks it against its own clock). Tests replace both.
	client  *http.Client
	wallNow func() time.Time
	timeout time.Duration // of one attempt: webhookTimeout

	delivered, failedAttempts, dropped atomic.Uint64
	depth                              atomic.Int64
	oldest                             atomic.Int64 // unix nanoseconds of the oldest event's change; 0: none
	stat                               struct {
		sync.Mutex
		lastError                    string
		lastErrorAt, lastDeliveredAt time.Time
	}
	// Worker-only state: retries by outbox key, and the receiver's hold.
	retries   map[string]retryState
	holdUntil time.Time
	holdFails int
}

type retryState struct {
	attempts int
	next     time.Time
}

func newWebhookHooks() *webhookHooks {
	return &webhookHooks{wake: make(chan struct{}, 1), client: newWebhookClient(), wallNow: time.Now, timeout: webhookTimeout, retries: map[string]retryState{}}
}

// newWebhookClient is the receiver's client: system roots, its own
// timeout, no redirects followed (a 3xx is a failed attempt).
func newWebhookClient() *http.Client {
	return &http.Client{
		Timeout:       webhookTimeout,
		Transport:     http.DefaultTransport.(*http.Transport).Clone(),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (h *webhookHooks) wakeUp() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// markUnflushed notes that name's stored state holds events to move.
func (h *webhookHooks) markUnflushed(name string) {
	h.unflushed.Store(name, struct{}{})
	h.wakeUp()
}

// nextSeq is the next outbox sequence: the time of the change in
// nanoseconds, kept increasing. The first use learns the highest one
// stored (an earlier process, another node before a failover), so a
// connection's events stay in order across restarts and clocks a little apart.
func (h *webhookHooks) nextSeq(at time.Time) int64 {
	for {
		last := h.lastSeq.Load()
		next := max(at.UnixNano(), last+1)
		if h.lastSeq.CompareAndSwap(last, next) {
			return next
		}
	}
}

// learnSeq raises the sequence past key's.
func (h *webhookHooks) learnSeq(key string) {
	if len(key) < seqWidth {
		return
	}
	seq, err := strconv.ParseInt(key[:seqWidth], 10, 64)
	if err != nil {
		return
	}
	for {
		last := h.lastSeq.Load()
		if seq <= last || h.lastSeq.CompareAndSwap(last, seq) {
			return
		}
	}
}

func (h *webhookHooks) noteError(at time.Time, msg string) {
	h.stat.Lock()
	defer h.stat.Unlock()
	h.stat.lastError, h.stat.lastErrorAt = msg, at
}

// start runs the delivery worker unless it runs.
func (h *webhookHooks) start(b *backend) { h.worker.start(b.ctx, nil, b.runWebhooks) }

// stop ends the delivery worker and waits for it.
func (h *webhookHooks) stop() { h.worker.stop() }

// maySend reports whether this process may deliver: the node writes
// storage, and the Vault that started it runs (gateway.go's rules).
func (b *backend) maySend() bool { return VaultAlive() && b.WriteSafeReplicationState() }

// runWebhooks is the worker: settle what a failure left, then move and
// deliver events until stopped.
func (b *backend) runWebhooks(ctx context.Context) {
	h := b.hooks
	b.learnStoredSeq(ctx)
	b.reconcileTombstones(ctx)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for ctx.Err() == nil {
		if !b.maySend() {
			return
		}
		b.flushUnflushed(ctx)
		b.deliverPass(ctx)
		timer.Reset(webhookMaxSleep)
		select {
		case <-ctx.Done():
		case <-h.wake:
		case <-timer.C:
		}
	}
}

// learnStoredSeq raises the sequence past every stored key.
func (b *backend) learnStoredSeq(ctx context.Context) {
	keys, err := outboxKeys(ctx, b.storage)
	if err == nil && len(keys) > 0 {
		b.hooks.learnSeq(keys[len(keys)-1])
	}
}

// flushUnflushed moves the events of every name marked to the outbox.
func (b *backend) flushUnflushed(ctx context.Context) {
	b.hooks.unflushed.Range(func(key, _ any) bool {
		name := key.(string)
		b.hooks.unflushed.Delete(name)
		if !b.flushEvents(ctx, name) {
			b.hooks.unflushed.Store(name, struct{}{}) // busy or failing: again next time
		}
		return ctx.Err() == nil
	})
}

// deliverPass sends what is due, in order, within webhookPassBudget.
func (b *backend) deliverPass(ctx context.Context) {
	h := b.hooks
	keys, err := outboxKeys(ctx, b.storage)
	if err != nil {
		h.noteError(b.now(), err.Error())
		return
	}
	set, err := loadSettings(ctx, b.storage) // with the secret, which memory does not keep
	if err != nil {
		h.noteError(b.now(), err.Error())
		return
	}
	keys = b.boundOutbox(ctx, keys, set.outboxMax())
	b.noteDepth(ctx, keys)
	if len(keys) == 0 || !set.webhooksOn() {
		return // off: events wait (and age out) until a URL is set again
	}
	now := b.now()
	if now.Before(h.holdUntil) {
		return
	}
	key, err := webhookKey(set.WebhookSecret)
	if err != nil {
		h.noteError(now, err.Error())
		return
	}
	deadline := time.Now().Add(webhookPassBudget)
	blocked := map[string]bool{}
	failures := 0
	for _, k := range keys {
		if ctx.Err() != nil || time.Now().After(deadline) || !b.maySend() {
			return
		}
		name := nameOfKey(k)
		if blocked[name] {
			continue
		}
		now = b.now()
		if r, ok := h.retries[k]; ok && now.Before(r.next) {
			blocked[name] = true
			continue
		}
		ev, err := outboxEntries.load(ctx, b.storage, k)
		if err != nil {
			h.noteError(now, err.Error())
			blocked[name] = true
			continue
		}
		if ev == nil {
			delete(h.retries, k)
			continue
		}
		if now.Sub(ev.At) > webhookGiveUp {
			b.dropEvent(ctx, k, ev, "not delivered within "+webhookGiveUp.String())
			continue
		}
		if err := b.deliver(ctx, set.WebhookURL, key, ev); err != nil {
			r := h.retries[k]
			r.attempts++
			r.next = now.Add(retryDelay(r.attempts))
			h.retries[k] = r
			h.failedAttempts.Add(1)
			b.metrics.webhookDeliveries.WithLabelValues("failed").Inc()
			h.noteError(now, err.Error())
			b.refreshLog.Warn("webhook delivery failed; retrying later", "type", ev.Type, "webhook_id", ev.ID,
				"attempt", r.attempts, "retry_at", r.next, "error", err)
			blocked[name] = true
			if failures++; failures >= webhookFailuresPerPass {
				h.holdFails++
				h.holdUntil = now.Add(retryDelay(h.holdFails))
				return
			}
			continue
		}
		failures, h.holdFails = 0, 0
		delete(h.retries, k)
		h.delivered.Add(1)
		b.metrics.webhookDeliveries.WithLabelValues("delivered").Inc()
		h.stat.Lock()
		h.stat.lastDeliveredAt = now
		h.stat.Unlock()
		if err := outboxEntries.delete(ctx, b.storage, k); err != nil {
			// Delivered and still queued: it goes again, same webhook-id.
			b.refreshLog.Warn("delivered webhook event not removed from the outbox; it may be sent again", "webhook_id", ev.ID, "error", err)
			blocked[name] = true
		}
	}
	if keys, err := outboxKeys(ctx, b.storage); err == nil {
		b.noteDepth(ctx, keys)
	}
}

// retryDelay is the wait after attempt failures: doubling from
// webhookRetryBase to webhookRetryMax, between half and all of it.
func retryDelay(attempts int) time.Duration {
	d := min(webhookRetryBase<<min(attempts-1, 20), webhookRetryMax)
	return d/2 + rand.N(d/2+1)
}

// boundOutbox drops the oldest events past max, and returns the rest.
func (b *backend) boundOutbox(ctx context.Context, keys []string, limit int) []string {
	if len(keys) <= limit {
		return keys
	}
	over := keys[:len(keys)-limit]
	dropped := 0
	for _, k := range over {
		if err := outboxEntries.delete(ctx, b.storage, k); err != nil {
			b.hooks.noteError(b.now(), err.Error())
			continue
		}
		delete(b.hooks.retries, k)
		dropped++
	}
	b.hooks.dropped.Add(uint64(dropped))
	b.metrics.webhookDeliveries.WithLabelValues("dropped").Add(float64(dropped))
	b.refreshLog.Warn("webhook outbox full: oldest events dropped (raise webhook_outbox_max, or fix the receiver)",
		"dropped", dropped, "webhook_outbox_max", limit)
	return keys[len(keys)-limit:]
}

// dropEvent drops one event that could not be delivered.
func (b *backend) dropEvent(ctx context.Context, k string, ev *webhookEvent, why string) {
	if err := outboxEntries.delete(ctx, b.storage, k); err != nil {
		b.hooks.noteError(b.now(), err.Error())
		return
	}
	delete(b.hooks.retries, k)
	b.hooks.dropped.Add(1)
	b.metrics.webhookDeliveries.WithLabelValues("dropped").Inc()
	b.refreshLog.Warn("webhook event dropped: "+why, "type", ev.Type, "webhook_id", ev.ID, "name", nameOfKey(k), "at", ev.At)
}

// noteDepth records the outbox's depth and its oldest event's time.
func (b *backend) noteDepth(ctx context.Context, keys []string) {
	h := b.hooks
	h.depth.Store(int64(len(keys)))
	if len(keys) == 0 {
		h.oldest.Store(0)
		return
	}
	if ev, err := outboxEntries.load(ctx, b.storage, keys[0]); err == nil && ev != nil {
		h.oldest.Store(ev.At.UnixNano())
	}
}

// deliver POSTs ev to url once, signed with key.
func (b *backend) deliver(ctx context.Context, target string, key []byte, ev *webhookEvent) error {
	ctx, cancel := context.WithTimeout(ctx, b.hooks.timeout)
	defer cancel()
	ts := b.hooks.wallNow().Unix()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(ev.Body))
	if err != nil {
		return fmt.Errorf("build the request: %w", errWithoutURL(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tokenbroker/"+Version)
	req.Header.Set("webhook-id", ev.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", signWebhook(key, ev.ID, ts, ev.Body))
	resp, err := b.hooks.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("POST to %s: no answer within %s", redactedURL(target), b.hooks.timeout)
		}
		return fmt.Errorf("POST to %s: %w", redactedURL(target), errWithoutURL(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, webhookBodyRead))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("POST to %s: the receiver answered %s", redactedURL(target), resp.Status)
	}
	return nil
}

// signWebhook is the webhook-signature of a delivery: v1, then the base64
// HMAC-SHA256 of "<id>.<timestamp>.<body>" (Standard Webhooks).
func signWebhook(key []byte, id string, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.", id, ts)
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// errWithoutURL is err without the *url.Error's URL (its query may carry
// what the receiver treats as a credential).
func errWithoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// redactedURL is u as logs and status show it: scheme, host and path.
func redactedURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "the webhook URL"
	}
	return p.Scheme + "://" + p.Host + p.Path
}
