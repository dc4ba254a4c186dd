package tokenbroker

// Webhooks: the app is told when a user must act on a connection (it was
// made, lost, is failing, recovered, or deleted), by signed events in the
// Standard Webhooks format, delivered at least once from an outbox in
// storage (webhook_delivery.go).
//
// Nothing lost, nothing invented. Vault storage has no transactions across
// keys, so an event and the state change it reports are written as ONE
// storage entry: the event rides in the token state (tokenState.Events)
// written by the change itself (connect, dropSpentChain, a failing or
// recovered renewal, reauthorize_by passing). A crash before that write
// loses both, which is right: the change did not happen. A failed write
// reaches the caller as an error; persist keeps the state, events included,
// in memory and writes it later, and only a stored state's events are moved
// on. Once the state is stored, the delivery worker moves its events to the
// outbox (webhook/outbox/<key>, under the event's own key, so doing it twice
// writes the same entry) and then stores the state without them; a crash
// between the two sends an event twice, under one webhook-id, which
// receivers dedupe. A delete removes the token state, so its event is first
// written as a tombstone (webhook/deleted/<name>) and becomes an outbox
// entry once the config is gone: a tombstone whose config still exists is a
// delete that failed (its caller got an error) and is dropped, and every
// path that creates a config moves a tombstone it finds to the outbox first,
// so a delete followed by a re-creation is never mistaken for a failed one.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// The event types.
const (
	eventCreated     = "connection.created"
	eventReconnected = "connection.reconnected"
	eventNeedsReauth = "connection.needs_reauthorization"
	eventFailing     = "connection.failing"
	eventRecovered   = "connection.recovered"
	eventDeleted     = "connection.deleted"
)

var webhookEventTypes = []string{eventCreated, eventReconnected, eventNeedsReauth, eventFailing, eventRecovered, eventDeleted}

// Reasons of connection.needs_reauthorization (and failing's).
const (
	reasonRefused = "refused" // the provider refused the refresh token (an error other than invalid_grant)
	reasonRevoked = "revoked" // invalid_grant: revoked, expired or ended at the provider
	reasonExpired = "expired" // the refresh token passed the expiry the provider gave (reauthorize_by)
	reasonLost    = "lost"    // a refresh went unanswered and may have spent the token
	reasonFailing = "failing"
)

// webhookEvent is one event, as the token state holds it until the outbox
// does. Its body is fixed when the change is recorded, so every delivery of
// it is the same bytes under the same webhook-id.
type webhookEvent struct {
	// Key orders the outbox: <20-digit sequence>-<8 hex>.<name>
	// (outboxKey); the name after the dot is the connection it is about.
	Key  string          `json:"key"`
	ID   string          `json:"id"` // webhook-id
	Type string          `json:"type"`
	At   time.Time       `json:"at"`
	Body json.RawMessage `json:"body"`
}

// eventData is the data of an event: who and what, never a secret, token or code.
type eventData struct {
	Config              string `json:"config"`
	App                 string `json:"app,omitempty"`
	Owner               string `json:"owner,omitempty"`
	AccountSubject      string `json:"account_subject,omitempty"`
	AccountEmail        string `json:"account_email,omitempty"`
	Reason              string `json:"reason,omitempty"`
	ProviderError       string `json:"provider_error,omitempty"`
	ConsecutiveFailures int    `json:"consecutive_failures,omitempty"`
}

type eventBody struct {
	Type      string    `json:"type"`
	Timestamp string    `json:"timestamp"`
	Data      eventData `json:"data"`
}

// seqWidth is the width of an outbox key's sequence; keyPrefixLen the
// length of the key before ".<name>".
const (
	seqWidth     = 20
	keyPrefixLen = seqWidth + 1 + 8
)

// nameOfKey is the connection an outbox key is about ("" when malformed).
func nameOfKey(key string) string {
	if len(key) <= keyPrefixLen+1 || key[keyPrefixLen] != '.' {
		return ""
	}
	return key[keyPrefixLen+1:]
}

// webhookWants reports whether events of type t are to be recorded: the
// mount has a webhook_url and t is among webhook_events. Settings that
// cannot be read (storage failing) count as wanting it: an event recorded
// needlessly is not sent to an unset URL, one not recorded is lost.
func (b *backend) webhookWants(t string) bool {
	set, err := b.mountSettings(b.ctx, b.storage)
	return err != nil || set.webhookWants(t)
}

// newEvent is an event of type t about name at the time at, or nil when
// the mount does not want it. st, where given, names the connected account.
func (b *backend) newEvent(t, name string, cfg eventSource, st *tokenState, at time.Time, edit func(*eventData)) *webhookEvent {
	if !b.webhookWants(t) {
		return nil
	}
	data := eventData{Config: name, App: cfg.app, Owner: cfg.owner}
	if st != nil && st.Connected != nil {
		data.AccountSubject, data.AccountEmail = st.Connected.Subject, st.Connected.Email
	}
	if edit != nil {
		edit(&data)
	}
	body, err := json.Marshal(eventBody{Type: t, Timestamp: at.UTC().Format(time.RFC3339), Data: data})
	if err != nil { // plain strings and ints: cannot happen
		b.refreshLog.Error("encode webhook event", "name", name, "type", t, "error", err)
		return nil
	}
	seq := b.hooks.nextSeq(at)
	var r [4]byte
	_, _ = rand.Read(r[:])
	id := fmt.Sprintf("%0*d-%s", seqWidth, seq, hex.EncodeToString(r[:]))
	return &webhookEvent{Key: id + "." + name, ID: "msg_" + id, Type: t, At: at, Body: body}
}

// eventSource is what an event says of the config: its app and owner.
type eventSource struct{ app, owner string }

func sourceOf(cfg *providerConfig) eventSource {
	if cfg == nil {
		return eventSource{}
	}
	return eventSource{app: cfg.App, owner: cfg.Owner}
}

// withEvent is st with ev recorded (st itself when ev is nil).
func (st *tokenState) withEvent(ev *webhookEvent) *tokenState {
	if ev == nil {
		return st
	}
	return st.edited(func(n *tokenState) { n.Events = append(append([]*webhookEvent(nil), n.Events...), ev) })
}

// carryEvents is next holding also the events prev recorded that are not
// yet in the outbox: a state that replaces another (a new chain, an
// operator's write) does not drop them. next may be nil (no state): one
// holding only the events is made.
func carryEvents(prev, next *tokenState) *tokenState {
	if prev == nil || len(prev.Events) == 0 || prev == next {
		return next
	}
	if next == nil {
		return &tokenState{Events: prev.Events}
	}
	return next.edited(func(n *tokenState) {
		n.Events = append(append([]*webhookEvent(nil), prev.Events...), n.Events...)
	})
}

// connectEvent is the event of a new chain st replacing prev: created when
// the name had no connected chain, reconnected when a connected chain (lost
// or alive) is replaced.
func (b *backend) connectEvent(r renewal, prev, st *tokenState, at time.Time) *webhookEvent {
	t := eventCreated
	if prev != nil && prev.Connected != nil {
		t = eventReconnected
	}
	return b.newEvent(t, r.name, sourceOf(r.cfg), st, at, nil)
}

// lostChainEvent is the connection.needs_reauthorization of a chain that
// cannot mint and lost its refresh token for cause.
func (b *backend) lostChainEvent(r renewal, st *tokenState, cause error, at time.Time) *webhookEvent {
	if st.NotifiedReauthorization {
		return nil
	}
	return b.newEvent(eventNeedsReauth, r.name, sourceOf(r.cfg), st, at, func(d *eventData) {
		d.Reason, d.ProviderError = lossReason(st, cause, at)
	})
}

// lossReason classes why a chain was lost, with the provider's OAuth error code.
func lossReason(st *tokenState, cause error, at time.Time) (reason, code string) {
	var pe *provider.Error
	if errors.As(cause, &pe) {
		code = provider.CleanText(pe.Code)
	}
	switch {
	case st.refreshExpired(at) && code == "":
		return reasonExpired, ""
	case pe != nil && pe.Class == provider.Lost:
		return reasonLost, code
	case code == "invalid_grant":
		return reasonRevoked, code
	}
	return reasonRefused, code
}

// noteFailure records connection.failing for name once its renewals failed
// webhook_failing_after times in a row while its cached token still serves,
// once an episode, and stores it with the state. Callers hold name's lock.
func (b *backend) noteFailure(ctx context.Context, r renewal, snap *snapshot, now time.Time) *snapshot {
	st := snap.state
	if st == nil || st.NotifiedFailing || st.NeedsRefreshToken || !st.usableFor(now, 0) || !b.webhookWants(eventFailing) {
		return snap
	}
	set, err := b.mountSettings(ctx, b.storage)
	if err != nil || snap.failing < set.failingAfter() {
		return snap
	}
	failures := snap.failing
	ev := b.newEvent(eventFailing, r.name, sourceOf(r.cfg), st, now, func(d *eventData) {
		d.Reason, d.ConsecutiveFailures = reasonFailing, failures
		if lastErr, _ := snap.lastError(); lastErr != nil {
			var pe *provider.Error
			if errors.As(lastErr, &pe) {
				d.ProviderError = provider.CleanText(pe.Code)
			}
		}
	})
	next := snap.withState(st.edited(func(n *tokenState) { n.NotifiedFailing = true }).withEvent(ev))
	saved, err := b.persist(ctx, r.name, next) // a failure keeps it in memory, written later with the state
	if err != nil {
		b.refreshLog.Warn("connection.failing recorded in memory only; written with the next state write", "name", r.name, "error", err)
	}
	return saved
}

// recoveredEvent is connection.recovered when a renewal succeeds after
// connection.failing was recorded for prev's chain.
func (b *backend) recoveredEvent(r renewal, prev, st *tokenState, at time.Time) *webhookEvent {
	if prev == nil || !prev.NotifiedFailing {
		return nil
	}
	return b.newEvent(eventRecovered, r.name, sourceOf(r.cfg), st, at, nil)
}

// noteReauthorizeBy, from the periodic pass, records
// connection.needs_reauthorization (reason expired) for every loaded chain
// that cannot mint and passed its reauthorize_by, once a chain. A name busy
// renewing is left for the next pass.
func (b *backend) noteReauthorizeBy(ctx context.Context) {
	if !b.webhookWants(eventNeedsReauth) {
		return
	}
	now := b.now()
	b.entries.Range(func(key, e any) bool {
		name, entry := key.(string), e.(*nameEntry)
		snap := entry.snap.Load()
		if snap == nil || snap.state == nil || snap.state.NotifiedReauthorization {
			return true
		}
		if by := snap.reauthorizeBy(); by.IsZero() || now.Before(by) {
			return true
		}
		if !entry.lock.TryLock() {
			return true
		}
		defer entry.lock.Unlock()
		snap = b.loaded(name)
		if snap == nil || snap.state == nil || snap.state.NotifiedReauthorization || snap.reauthorizeBy().IsZero() {
			return true
		}
		cfg, err := loadConfig(ctx, b.storage, name)
		if err != nil || cfg == nil {
			return true
		}
		st := snap.state
		ev := b.newEvent(eventNeedsReauth, name, sourceOf(cfg), st, now, func(d *eventData) { d.Reason = reasonExpired })
		next := snap.withState(st.edited(func(n *tokenState) { n.NotifiedReauthorization = true }).withEvent(ev))
		if _, err := b.persist(ctx, name, next); err != nil {
			b.refreshLog.Warn("connection.needs_reauthorization recorded in memory only; written with the next state write", "name", name, "error", err)
		}
		return ctx.Err() == nil
	})
}

// Outbox storage (seal-wrapped, like everything under webhook/).
const (
	webhookPrefix   = "webhook/"
	outboxPrefix    = webhookPrefix + "outbox/"
	tombstonePrefix = webhookPrefix + "deleted/"
)

var (
	outboxEntries    = entryKind[webhookEvent]{outboxPrefix, "webhook event"}
	tombstoneEntries = entryKind[webhookEvent]{tombstonePrefix, "webhook event of a delete"}
)

// recordDelete writes the tombstone of name's connection.deleted, before
// its delete begins; nil when the mount does not want the event. The
// events its state holds still go first: they are moved to the outbox now,
// as the state is about to go. An error means nothing was deleted.
func (b *backend) recordDelete(ctx context.Context, s logical.Storage, name string, cfg *providerConfig) (*webhookEvent, error) {
	st, err := b.currentState(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if snap := b.loaded(name); st != nil && len(st.Events) > 0 && (snap == nil || !snap.dirty) {
		for _, ev := range st.Events {
			if err := outboxEntries.save(ctx, s, ev.Key, ev); err != nil {
				return nil, fmt.Errorf("%q not deleted: its pending webhook events could not be queued: %w", name, err)
			}
		}
		b.hooks.wakeUp()
	}
	if cfg == nil {
		return nil, nil
	}
	ev := b.newEvent(eventDeleted, name, sourceOf(cfg), st, b.now(), nil)
	if ev == nil {
		return nil, nil
	}
	if err := tombstoneEntries.save(ctx, s, name, ev); err != nil {
		return nil, fmt.Errorf("%q not deleted: its webhook event could not be recorded: %w", name, err)
	}
	return ev, nil
}

// commitDelete moves name's tombstone to the outbox once its config is
// gone. A failure is logged: the tombstone is kept and the periodic pass
// (or the next creation of name) moves it.
func (b *backend) commitDelete(ctx context.Context, s logical.Storage, name string, ev *webhookEvent) {
	if err := b.moveTombstone(ctx, s, name, ev); err != nil {
		b.refreshLog.Warn("connection.deleted kept as a tombstone; it is queued later", "name", name, "error", err)
	}
}

func (b *backend) moveTombstone(ctx context.Context, s logical.Storage, name string, ev *webhookEvent) error {
	if err := outboxEntries.save(ctx, s, ev.Key, ev); err != nil {
		return err
	}
	b.hooks.wakeUp()
	return tombstoneEntries.delete(ctx, s, name)
}

// commitTombstoneBeforeCreate, on every path that creates a config named
// name (its lock held, no config stored), queues a tombstone of an earlier
// delete of name: the delete happened, and the new config must not make it
// look like one that failed. An error refuses the creation.
func (b *backend) commitTombstoneBeforeCreate(ctx context.Context, s logical.Storage, name string) error {
	ev, err := tombstoneEntries.load(ctx, s, name)
	if err != nil || ev == nil {
		return err
	}
	if err := b.moveTombstone(ctx, s, name, ev); err != nil {
		return fmt.Errorf("the webhook event of an earlier delete of %q could not be queued, so it is not created again yet: %w", name, err)
	}
	return nil
}

// reconcileTombstones, on the worker's start and each periodic pass,
// settles tombstones left by failures: a config still stored means its
// delete failed (the event is dropped, never sent); none means it
// happened (the event is queued).
func (b *backend) reconcileTombstones(ctx context.Context) {
	names, err := tombstoneEntries.list(ctx, b.storage)
	if err != nil {
		b.refreshLog.Warn("list webhook tombstones", "error", err)
		return
	}
	for _, name := range names {
		lock := b.lockFor(name)
		if !lock.TryLock() {
			continue // busy: the next pass
		}
		func() {
			defer lock.Unlock()
			ev, err := tombstoneEntries.load(ctx, b.storage, name)
			if err != nil || ev == nil {
				return
			}
			cfg, err := configEntries.load(ctx, b.storage, name)
			switch {
			case err != nil:
				return
			case cfg != nil:
				b.refreshLog.Info("dropping the connection.deleted of a delete that did not complete", "name", name)
				err = tombstoneEntries.delete(ctx, b.storage, name)
			default:
				err = b.moveTombstone(ctx, b.storage, name, ev)
			}
			if err != nil {
				b.refreshLog.Warn("settle a webhook tombstone", "name", name, "error", err)
			}
		}()
	}
}

// flushEvents moves the events of name's stored state to the outbox, then
// stores the state without them. A name busy renewing, or whose state is
// not stored yet (dirty), is left: done reports whether nothing is left.
func (b *backend) flushEvents(ctx context.Context, name string) (done bool) {
	lock := b.lockFor(name)
	if !lock.TryLock() {
		return false
	}
	defer lock.Unlock()
	snap, err := b.snapshot(ctx, b.storage, name)
	if err != nil {
		return false
	}
	if snap == nil || snap.state == nil || len(snap.state.Events) == 0 {
		return true
	}
	if snap.dirty {
		return false // written with the state, later
	}
	for _, ev := range snap.state.Events {
		if err := outboxEntries.save(ctx, b.storage, ev.Key, ev); err != nil {
			b.hooks.noteError(b.now(), "queue events of "+name+": "+err.Error())
			return false
		}
	}
	if _, err := b.save(ctx, b.storage, name, snap.withState(snap.state.edited(func(n *tokenState) { n.Events = nil }))); err != nil {
		// Queued; the stored state still holds them, so they may be queued
		// again (same keys and ids: at least once).
		b.refreshLog.Warn("webhook events queued, but the state still holds them", "name", name, "error", err)
	}
	return true
}

// outboxKeys is the outbox's keys in order.
func outboxKeys(ctx context.Context, s logical.Storage) ([]string, error) {
	keys, err := outboxEntries.list(ctx, s)
	if err != nil {
		return nil, err
	}
	out := keys[:0]
	for _, k := range keys {
		if !strings.HasSuffix(k, "/") {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out, nil
}

// eventsHeld is the events st holds for the outbox (none for a nil st).
func (st *tokenState) eventsHeld() []*webhookEvent {
	if st == nil {
		return nil
	}
	return st.Events
}
