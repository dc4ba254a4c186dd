package tokenbroker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// Variants: a name's narrowed tokens. Each distinct narrowing asked of a
// name (canonical: sorted scopes, normalised resources, so "b a" and "a,b"
// are one) is cached like the main token: served from memory while valid,
// renewed off the read path inside its refresh window, one upstream call
// for any number of concurrent readers. They live beside the snapshot, in
// the name's entry, never in storage: a variant holds no chain, only an
// access token the next read can obtain again. At most maxVariants per
// name, the least recently read dropped first; one not read for
// variantIdle is dropped; all of a name's go when its config changes, when
// it is forgotten or evicted (residency.go).

const (
	maxVariants = 16
	variantIdle = 24 * time.Hour
)

// variantRequest is what one variant is: its narrowing, and for a role
// with an exchange, the RFC 8693 exchange that obtains it (path_role.go).
type variantRequest struct {
	key       string // the cache key: the narrowing's Key, and the exchange's
	narrowing provider.Narrowing
	exchange  *roleExchange
}

// newVariantRequest is the variant of narrowing n (canonical), obtained by
// exchange when set.
func newVariantRequest(n provider.Narrowing, x *roleExchange) *variantRequest {
	key := n.Key()
	if x != nil {
		key += "|exchange:" + x.key()
	}
	return &variantRequest{key: key, narrowing: n, exchange: x}
}

// variant is one cached narrowed token: a snapshot whose state holds only
// the access token (no chain), and when it was last read.
type variant struct {
	snap     atomic.Pointer[snapshot]
	lastRead atomic.Int64 // unix nanoseconds, at a second's precision
}

// variantTable is a name's variants, copy on write: a read loads the map
// without a lock; changes take mu and publish a new map.
type variantTable struct {
	mu sync.Mutex
	m  atomic.Pointer[map[string]*variant]
}

// read returns key's cached snapshot (nil: none) and marks it read at now.
func (t *variantTable) read(key string, now time.Time) *snapshot {
	m := t.m.Load()
	if m == nil {
		return nil
	}
	v := (*m)[key]
	if v == nil {
		return nil
	}
	// A store a second at most: concurrent readers of one variant do not
	// all write the same cache line.
	if at := now.UnixNano(); at-v.lastRead.Load() > int64(time.Second) {
		v.lastRead.Store(at)
	}
	return v.snap.Load()
}

// put caches snap as key's variant, read at now. A new one drops the idle
// ones and, at maxVariants, the least recently read.
func (t *variantTable) put(key string, snap *snapshot, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.m.Load()
	if old != nil {
		if v := (*old)[key]; v != nil {
			v.snap.Store(snap)
			v.lastRead.Store(now.UnixNano())
			return
		}
	}
	next := t.without(old, now)
	if len(next) >= maxVariants {
		var lru string
		for k, v := range next {
			if lru == "" || v.lastRead.Load() < next[lru].lastRead.Load() {
				lru = k
			}
		}
		delete(next, lru)
	}
	v := &variant{}
	v.snap.Store(snap)
	v.lastRead.Store(now.UnixNano())
	next[key] = v
	t.m.Store(&next)
}

// without is a copy of m without the variants idle at now.
func (t *variantTable) without(m *map[string]*variant, now time.Time) map[string]*variant {
	next := map[string]*variant{}
	if m == nil {
		return next
	}
	for k, v := range *m {
		if now.UnixNano()-v.lastRead.Load() < int64(variantIdle) {
			next[k] = v
		}
	}
	return next
}

// dropIdle drops the variants not read for variantIdle.
func (t *variantTable) dropIdle(now time.Time) {
	if t.m.Load() == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if old := t.m.Load(); old != nil {
		if next := t.without(old, now); len(next) != len(*old) {
			t.m.Store(&next)
		}
	}
}

// drop drops every variant.
func (t *variantTable) drop() {
	if t.m.Load() != nil {
		t.mu.Lock()
		t.m.Store(nil)
		t.mu.Unlock()
	}
}

// len is how many variants are cached.
func (t *variantTable) len() int {
	if m := t.m.Load(); m != nil {
		return len(*m)
	}
	return 0
}

// dropVariants drops name's variants: its config changed, or it was forgotten.
func (b *backend) dropVariants(name string) {
	if e, ok := b.entries.Load(name); ok {
		e.(*nameEntry).variants.drop()
	}
}

// dropIdleVariants drops, for every name, the variants idle for variantIdle.
func (b *backend) dropIdleVariants() {
	now := b.now()
	b.entries.Range(func(_, e any) bool {
		e.(*nameEntry).variants.dropIdle(now)
		return true
	})
}

// readVariant answers a read of name's variant vr; main is the name's
// snapshot the read found (its counters count the read as the name's, so
// the residency sweep sees it).
func (b *backend) readVariant(ctx context.Context, name string, main *snapshot, minTTL int, vr *variantRequest) (*logical.Response, error) {
	now := b.now()
	w := want{minTTL: time.Duration(minTTL) * time.Second}
	snap := b.entry(name).variants.read(vr.key, now)
	var warning string
	result := readCached
	if snap == nil || !w.satisfiedBy(snap, now) {
		fresh, err := b.shared(ctx, name, variantFlight(name, vr), w, func() (*snapshot, error) { return b.lockAndObtainVariant(name, vr, w) })
		if snap, warning, result, err = fallBack(main.counters, snap, fresh, err, now); err != nil {
			return nil, err
		}
		if result == readWaited {
			now = b.now()
		}
	} else if snap.refreshWanted(now, 0) && b.WriteSafeReplicationState() {
		b.flight.DoChan(variantFlight(name, vr), func() (any, error) { return b.lockAndObtainVariant(name, vr, background) })
	}
	main.counters.read(result)
	resp := credsResponse(snap, now)
	if warning != "" {
		resp.AddWarning(warning)
	}
	return resp, nil
}

// fallBack is what a read serves after it tried to obtain a token: fresh,
// or when that failed, stale while still valid (with a warning). err is
// the failure when neither can be served, counted on counters.
func fallBack(counters *nameCounters, stale, fresh *snapshot, err error, now time.Time) (*snapshot, string, readResult, error) {
	switch {
	case err == nil:
		return fresh, "", readWaited, nil
	case errors.Is(err, logical.ErrReadOnly):
		return nil, "", readFailed, err // Vault forwards the request to the active node
	case stale != nil && want.satisfiedBy(want{}, stale, now):
		// The provider failed but the cached token is still valid: serve it.
		return stale, "a new token could not be obtained; returning the cached one: " + err.Error(), readStaleServed, nil
	}
	counters.read(readFailed)
	return nil, "", readFailed, err
}

// variantFlight is the single-flight key of name's variant vr: names never
// hold a NUL, so it never meets a name's own.
func variantFlight(name string, vr *variantRequest) string {
	return name + "\x00" + vr.key
}

// lockAndObtainVariant takes name's lock and returns vr's cached variant if
// it satisfies w, else obtains a new one, caches and returns it: by the
// config's grants narrowed (renewNarrowed), or by an RFC 8693 exchange of
// the main token (exchangeVariant).
func (b *backend) lockAndObtainVariant(name string, vr *variantRequest, w want) (*snapshot, error) {
	ctx := b.ctx
	var subject *snapshot
	if vr.exchange != nil {
		// The subject token first, outside the lock its renewal takes.
		var err error
		if subject, err = b.obtain(ctx, name, want{minTTL: exchangeSubjectTTL * time.Second}, nil); err != nil {
			return nil, err
		}
	}
	e := b.entry(name)
	e.lock.Lock()
	defer e.lock.Unlock()
	now := b.now()
	if snap := e.variants.read(vr.key, now); snap != nil && w.satisfiedBy(snap, now) {
		return snap, nil
	}
	main, _, err := b.freshView(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := main.mayRenew(name, now, w.beyondWindow); err != nil {
		return nil, err
	}
	r, err := b.beginRenewal(ctx, b.storage, name, main, nil)
	if err != nil {
		return nil, err
	}
	if err := r.cfg.checkNarrowing(name, vr.narrowing); err != nil {
		return nil, err
	}
	var st *tokenState
	if vr.exchange != nil {
		st, err = b.exchangeVariant(ctx, r, vr, subject)
	} else {
		st, err = b.renewNarrowed(ctx, r, vr.narrowing)
	}
	if err != nil {
		return nil, narrowingRefused(err)
	}
	if beyond := vr.narrowing.ScopesBeyond(st.Scopes); len(beyond) > 0 {
		// The provider ignored the narrowing (a refresh's rotated refresh
		// token is already the chain's): the token is not handed out.
		return nil, logical.CodedError(http.StatusBadGateway, fmt.Sprintf(
			"narrowed token of %q not served: the provider issued it with scopes beyond those asked (%s), so it ignores the narrowing; do not allow narrowed reads of this config",
			name, strings.Join(beyond, " ")))
	}
	if current := b.loaded(name); current != nil {
		main = current
	}
	snap := variantSnapshot(main, st)
	e.variants.put(vr.key, snap, b.now())
	return snap, nil
}

// renewNarrowed obtains r's chain's token narrowed to n, as the chain
// renews (chain.go's renew, its discipline whole): the base grant mints
// with the narrower request; a refresh chain sends its refresh token with
// the narrowing (RFC 6749 §6, RFC 8707 §2.2), stored marked pending before
// it is sent, and the rotated refresh token (which keeps the original
// scope) is stored as the chain's before the narrowed token is returned.
// The main access token stays cached: a provider whose renewal ends the
// token it serves is refused narrowed tokens, which would end it. Callers
// hold the name's lock.
func (b *backend) renewNarrowed(ctx context.Context, r renewal, n provider.Narrowing) (*tokenState, error) {
	if r.snap.renewalEndsServed() {
		return nil, logical.CodedError(http.StatusBadRequest, fmt.Sprintf(
			"narrowed token of %q refused: its provider ends the token served when it issues another (revokes_previous_token), so a narrowed token would end the main one", r.name))
	}
	r.narrowing = &n
	r, st, err := b.renew(ctx, r)
	if err != nil {
		return nil, err
	}
	if st.Grant == provider.GrantRefreshToken {
		chain := r.snap.state.edited(func(main *tokenState) {
			main.RefreshToken, main.RefreshExpiresAt, main.IDToken = st.RefreshToken, st.RefreshExpiresAt, st.IDToken
			main.RefreshPending, main.RefreshSentAt, main.RefreshSends = false, time.Time{}, 0
		})
		if _, err := b.persist(ctx, r.name, r.snap.withState(chain)); err != nil {
			return nil, err
		}
	}
	return st.accessOnly(), nil
}

// accessOnly is s without its chain: a variant's state.
func (s *tokenState) accessOnly() *tokenState {
	return &tokenState{AccessToken: s.AccessToken, TokenType: s.TokenType, IssuedAt: s.IssuedAt, ExpiresAt: s.ExpiresAt,
		Scopes: s.Scopes, Grant: s.Grant, Permissions: s.Permissions, Repositories: s.Repositories}
}

// variantSnapshot is the snapshot of a variant holding st: main's timing
// settings and counters. Its renewal ends nothing (renewNarrowed refuses
// providers whose renewal would).
func variantSnapshot(main *snapshot, st *tokenState) *snapshot {
	s := &snapshot{settings: main.settings, state: st, counters: main.counters}
	s.settings.refreshEnds, s.settings.mintEnds = false, false
	s.derive()
	return s
}
