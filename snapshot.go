package tokenbroker

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// snapshot is one name's loaded view: what reads need of its config, its
// token state and health, fixed at one moment. Changes publish a new
// snapshot; one is never edited in place, so the read path reads it without a
// lock. A snapshot holds no secret of the config and no key: the full config
// is loaded from storage only to renew or connect a chain (renewal.go),
// which keeps 100 000 chains within a small memory budget.
type snapshot struct {
	settings chainSettings
	// owner is the Vault entity whose own connection this is (self/), or "".
	owner string
	state *tokenState // nil: no token state stored
	// dirty: state is newer than storage (a write failed); it must win over storage.
	dirty bool
	// view holds the creds response values fixed by state, boxed once per
	// snapshot so a cached read only assembles the map. Behind a pointer, so
	// an evicted snapshot (residency.go), which has none, is small.
	view *credsView
	health
	// counters are the name's metrics counters, shared by all its snapshots.
	counters *nameCounters
	// evicted, when set, marks a snapshot that holds no state: the name was
	// not read lately and gave its state up (residency.go). Only its health,
	// counters and evicted are set; b.loaded reports it as not loaded.
	evicted *evictedView
}

// reauthorizeNotice is how long before reauthorizeBy() reads warn and status
// turns unhealthy.
const reauthorizeNotice = 7 * 24 * time.Hour

// credsView is the part of a creds response that one token state fixes.
type credsView struct {
	accessToken, tokenType, expiresAt, expiresAtSeconds, rotationPeriod, scopes any
	extras                                                                      *credsExtras // nil for most tokens
}

// credsExtras is what only some chains' reads carry: what a GitHub
// installation token may do, and where; what the provider's redirect said
// when a user connected the chain (Intuit's realmId).
type credsExtras struct{ permissions, repositories, authorizationParams any }

// boxedTokenTypes are the usual token types, boxed once for every chain.
var boxedTokenTypes = map[string]any{"Bearer": "Bearer", "bearer": "bearer"}

// noCredsView is the view of a snapshot without a token state.
var noCredsView = &credsView{}

// newCredsView fixes the creds response values of st; until is when a reader
// must stop using its access token (servedUntil).
func newCredsView(st *tokenState, until time.Time) *credsView {
	if st == nil {
		return noCredsView
	}
	tokenType, ok := boxedTokenTypes[st.TokenType]
	if !ok {
		tokenType = st.TokenType
	}
	v := &credsView{
		accessToken:      st.AccessToken,
		tokenType:        tokenType,
		expiresAt:        until.UTC().Format(time.RFC3339),
		expiresAtSeconds: until.Unix(),
		rotationPeriod:   int64(st.lifetime().Seconds()),
	}
	if len(st.Scopes) > 0 {
		v.scopes = st.Scopes
	}
	if st.Permissions != nil {
		v.extras = &credsExtras{permissions: st.Permissions, repositories: nonNil(st.Repositories)}
	}
	if st.Connected != nil && len(st.Connected.Params) > 0 {
		if v.extras == nil {
			v.extras = &credsExtras{}
		}
		v.extras.authorizationParams = st.Connected.Params
	}
	return v
}

// chainSettings is what the read path, the scheduler, status and metrics
// need of a config: a few words, not the config.
type chainSettings struct {
	refreshAhead time.Duration
	provider     provider.Dialect
	baseGrant    provider.Grant
	canMint      bool // the config holds what its base grant needs
	authorizable bool // a user can connect the chain in a browser or by device code
	// refreshEnds, mintEnds: a renewal by the refresh grant, or by the base
	// grant, ends the token served before it (revokes_previous_token).
	refreshEnds, mintEnds bool
}

func settingsOf(cfg *providerConfig) chainSettings {
	ep := cfg.endpoint()
	previous := ep.EffectivePreviousToken()
	return chainSettings{refreshAhead: cfg.RefreshAhead, provider: cfg.Provider, baseGrant: ep.BaseGrant(),
		canMint: ep.CanMint(), authorizable: cfg.authorizable(),
		refreshEnds: previous.EndedBy(true), mintEnds: previous.EndedBy(false)}
}

// previousToken is the revokes_previous_token in force, from the settings.
func (c chainSettings) previousToken() provider.PreviousToken {
	switch {
	case c.mintEnds:
		return provider.PreviousTokenEndsOnNew
	case c.refreshEnds:
		return provider.PreviousTokenEndsOnRefresh
	}
	return provider.PreviousTokenKept
}

func newSnapshot(cfg *providerConfig, state *tokenState) *snapshot {
	s := &snapshot{settings: settingsOf(cfg), owner: cfg.Owner, state: state}
	s.derive()
	return s
}

// derive computes what follows from the settings, state and health, once per snapshot.
func (s *snapshot) derive() {
	s.view = newCredsView(s.state, s.servedUntil())
}

// renewalEndsServed reports whether the chain's next renewal ends the token
// it serves: the provider revokes the previous token on refresh (and the
// chain renews by refresh), or on any new token for the client.
func (s *snapshot) renewalEndsServed() bool {
	if s.state != nil && s.state.RefreshToken != "" {
		return s.settings.refreshEnds
	}
	return s.settings.mintEnds
}

// servedUntil is when a reader must stop using the cached access token: its
// expiry, or, where the next renewal ends it, that renewal. The renewal is
// planned at the refresh window's start (later while backing off or held by
// the provider's Retry-After), never past the token's own last usable moment;
// it is made no sooner, so every reader keeps a token for as long as its
// response said. Zero without a token.
func (s *snapshot) servedUntil() time.Time {
	if s.state == nil || s.state.AccessToken == "" {
		return time.Time{}
	}
	if !s.renewalEndsServed() {
		return s.state.ExpiresAt
	}
	last := s.state.ExpiresAt.Add(-s.state.leeway())
	if due := s.refreshDueAt(0); !due.IsZero() && due.Before(last) {
		return due
	}
	return last
}

// handoverWait is how long a read at now waits before it takes the renewed
// token instead of the cached one: a chain whose renewal ends the token it
// serves, within handover of that renewal. Vault Agent, which re-reads at
// ttl+1 whole seconds, comes back in that last second; taking the renewed
// token then keeps the file it renders from holding an ended one. Zero: serve
// the cached token (or it is no longer usable at all).
func (s *snapshot) handoverWait(now time.Time) time.Duration {
	if !s.renewalEndsServed() {
		return 0
	}
	left := s.servedUntil().Sub(now)
	if left <= 0 || left > handover {
		return 0
	}
	return left
}

// handover: see handoverWait.
const handover = time.Second

// reauthorizeBy is when an operator must write a new refresh token, for a
// chain that cannot mint and whose refresh token's expiry is known (the zero
// time: not known, or no need).
func (s *snapshot) reauthorizeBy() time.Time {
	if s.state != nil && s.state.RefreshToken != "" && !s.canMint() {
		return s.state.RefreshExpiresAt
	}
	return time.Time{}
}

// with returns a copy of s changed by change.
func (s *snapshot) with(change func(*snapshot)) *snapshot {
	next := *s
	change(&next)
	if next.state != s.state || next.settings != s.settings || next.last != s.last {
		next.derive() // a failure's backoff moves the renewal that servedUntil may count to
	}
	return &next
}

// reauthorizeDue reports whether an operator must soon write a new refresh
// token: the chain cannot mint and its refresh token expires within the notice.
func (s *snapshot) reauthorizeDue(now time.Time) bool {
	by := s.reauthorizeBy()
	return !by.IsZero() && now.After(by.Add(-reauthorizeNotice))
}

// withState returns a copy of s holding st.
func (s *snapshot) withState(st *tokenState) *snapshot {
	return s.with(func(n *snapshot) { n.state = st })
}

// refreshDueAt is when the chain should be renewed with nobody waiting: the
// start of its refresh window pushed back by delay, or later while backing
// off. The zero time means never: no token to keep fresh, or a chain that
// needs an operator.
func (s *snapshot) refreshDueAt(delay time.Duration) time.Time {
	if s.state == nil || s.state.NeedsRefreshToken || s.state.AccessToken == "" {
		return time.Time{}
	}
	due := s.state.refreshAt(s.settings.refreshAhead).Add(delay)
	backoffUntil, notBefore := s.waits()
	for _, until := range []time.Time{backoffUntil, notBefore} {
		if until.After(due) {
			due = until
		}
	}
	return due
}

// refreshWanted reports whether the chain should be renewed now: its state
// awaits saving, or refreshDueAt (with delay) has passed.
func (s *snapshot) refreshWanted(now time.Time, delay time.Duration) bool {
	if s.dirty {
		return true
	}
	due := s.refreshDueAt(delay)
	return !due.IsZero() && !now.Before(due)
}

// backgroundDue is when the background refresh loop should visit name: at
// once when its state awaits saving, else at refreshDueAt pushed back by the
// name's passDelay. The zero time means never.
func (s *snapshot) backgroundDue(name string) time.Time {
	if s.dirty {
		return time.Unix(1, 0) // already due
	}
	if s.state == nil {
		return time.Time{}
	}
	return s.refreshDueAt(s.passDelay(name))
}

// passDelay is name's background delay past its window's start (passDelay
// in background.go), and none for a chain whose renewal ends the token it
// serves: readers wait from the window's start, so it is renewed then.
func (s *snapshot) passDelay(name string) time.Duration {
	if s.state == nil || s.renewalEndsServed() {
		return 0
	}
	return passDelay(name, s.state.refreshWindow(s.settings.refreshAhead))
}

// urgentAt is when the chain's background refresh must go, paced or not:
// three quarters into its refresh window, which leaves the last quarter for
// the provider's answer and retries. The zero time means at once: a state
// awaiting saving, no token, or a chain whose renewal ends the token it
// serves (its readers wait from the window's start).
func (s *snapshot) urgentAt() time.Time {
	if s.dirty || s.state == nil || s.renewalEndsServed() {
		return time.Time{}
	}
	window := s.state.refreshWindow(s.settings.refreshAhead)
	return s.state.refreshAt(s.settings.refreshAhead).Add(window * 3 / 4)
}

// backgroundInterval is how long the background takes, in the long run,
// between two refreshes of the chain: its tokens' lifetime less the refresh
// window, plus the name's passDelay (0: no token). The schedule's need rate,
// which paces the loop, is the sum of 1/backgroundInterval over the names.
func (s *snapshot) backgroundInterval(name string) time.Duration {
	if s.state == nil || s.state.AccessToken == "" {
		return 0
	}
	return s.state.lifetime() - s.state.refreshWindow(s.settings.refreshAhead) + s.passDelay(name)
}

// snapshot returns name's snapshot, loading it from storage on first use.
// It returns nil when the name has no config.
func (b *backend) snapshot(ctx context.Context, s logical.Storage, name string) (*snapshot, error) {
	snap, _, err := b.snapshotAndConfig(ctx, s, name)
	return snap, err
}

// coldConfig is the full config a read loaded from storage along with name's
// snapshot: a read that goes on to renew the chain hands it to the renewal
// (obtain), so a cold read loads and parses the config and its keys once.
// It is current while that snapshot is the one published.
type coldConfig struct {
	snap *snapshot
	cfg  *providerConfig
}

// configOf is c's config when c was loaded with snap, else nil.
func (c *coldConfig) configOf(snap *snapshot) *providerConfig {
	if c == nil || c.snap != snap {
		return nil
	}
	return c.cfg
}

// snapshotAndConfig is snapshot, with the config when this call loaded it
// from storage (nil when name was already loaded).
func (b *backend) snapshotAndConfig(ctx context.Context, s logical.Storage, name string) (*snapshot, *coldConfig, error) {
	if snap := b.loaded(name); snap != nil {
		return snap, nil, nil
	}
	e := b.entry(name)
	evicted := e.snap.Load() // nil, or evicted: loaded() said it is not full
	if evicted.isFull() {
		return evicted, nil, nil // loaded meanwhile
	}
	epoch := b.invalidations.Load()
	cfg, err := loadConfig(ctx, s, name)
	if err != nil || cfg == nil {
		return nil, nil, err
	}
	state, err := loadState(ctx, s, name)
	if err != nil {
		return nil, nil, err
	}
	loaded := newSnapshot(cfg, state)
	loaded.counters = &e.counters
	if evicted != nil {
		loaded.health = evicted.health // what status shows survives an eviction
	}
	if !e.snap.CompareAndSwap(evicted, loaded) {
		if current := e.snap.Load(); current.isFull() {
			return current, nil, nil // another caller loaded it first
		}
		return loaded, nil, nil // evicted or forgotten meanwhile: serve what storage held
	}
	b.counted(evicted, loaded)
	if b.invalidations.Load() != epoch {
		// Storage changed while we read it; do not keep what may be stale.
		if e.snap.CompareAndSwap(loaded, nil) {
			b.counted(loaded, nil)
		}
		return loaded, nil, nil
	}
	b.sched.set(name, loaded.backgroundDue(name), loaded.backgroundInterval(name))
	if len(state.eventsHeld()) > 0 {
		b.hooks.markUnflushed(name) // an earlier process stored them and stopped (webhook.go)
	}
	return loaded, &coldConfig{snap: loaded, cfg: cfg}, nil
}

// loaded returns name's snapshot if one is in memory, else nil (evicted
// snapshots included: residency.go).
func (b *backend) loaded(name string) *snapshot {
	if e, ok := b.entries.Load(name); ok {
		if snap := e.(*nameEntry).snap.Load(); snap.isFull() {
			return snap
		}
	}
	return nil
}

// publish makes snap what readers of name see, and schedules its next
// background refresh.
func (b *backend) publish(name string, snap *snapshot) {
	b.counted(b.entry(name).snap.Swap(snap), snap)
	b.sched.set(name, snap.backgroundDue(name), snap.backgroundInterval(name))
}

// forget drops name's snapshot, so the next read loads it from storage,
// and its variants, which its config may no longer allow.
func (b *backend) forget(name string) {
	if e, ok := b.entries.Load(name); ok {
		b.counted(e.(*nameEntry).snap.Swap(nil), nil)
		e.(*nameEntry).variants.drop()
	}
}

// currentState is the newest token state for name: the loaded one (it may be
// newer than storage after a failed write), else storage. Callers hold the
// name's lock.
func (b *backend) currentState(ctx context.Context, s logical.Storage, name string) (*tokenState, error) {
	if snap := b.loaded(name); snap != nil {
		return snap.state, nil
	}
	return loadState(ctx, s, name)
}

func errNoConfig(name string) error {
	return logical.CodedError(http.StatusNotFound, fmt.Sprintf("no config named %q", name))
}

// canMint reports whether a lost chain may be started anew by the base
// grant: the config holds its credentials and no user connected the chain
// (a user's chain is never silently replaced by the client's own token).
func (s *snapshot) canMint() bool {
	return s.settings.canMint && (s.state == nil || s.state.Connected == nil)
}
