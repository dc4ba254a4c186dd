package tokenbroker

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

const (
	// backgroundWorkers bounds how many names the background pass refreshes at
	// once: enough to refresh 10 000 names with a 50 ms provider inside one
	// pass interval (a minute), few enough not to flood a provider.
	backgroundWorkers = 16
	// persistAttempts: a state write is retried this often before the newest
	// state is kept in memory only (marked dirty) and retried later.
	persistAttempts = 3
	backoffBase     = 30 * time.Second
	backoffMax      = 30 * time.Minute
)

// want says when an existing access token is good enough.
type want struct {
	minTTL time.Duration
	// beyondWindow: the token must also be outside its refresh window
	// (the background refresh's standard).
	beyondWindow bool
}

func (w want) satisfiedBy(nc *nameCache, now time.Time) bool {
	need := w.minTTL
	if w.beyondWindow && nc.state != nil {
		need = max(need, nc.state.refreshWindow(nc.cfg.RefreshAhead))
	}
	return nc.state.usableFor(now, need)
}

// mint waits until name holds a token that satisfies w, calling the provider
// if it must. Concurrent callers share one upstream call; the call itself runs
// on the backend's context, so a caller that gives up cannot cut it short.
func (b *backend) mint(ctx context.Context, name string, w want) (*nameCache, error) {
	for attempt := 1; ; attempt++ {
		ch := b.flight.DoChan(name, func() (any, error) { return b.mintLocked(name, w) })
		select {
		case r := <-ch:
			nc, _ := r.Val.(*nameCache)
			if r.Shared && attempt == 1 && (nc == nil || !w.satisfiedBy(nc, b.now())) {
				// We joined a call made for another need (a background
				// refresh, a smaller min_ttl) that did not meet ours: make our own.
				continue
			}
			return nc, r.Err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// refreshInBackground starts one refresh of name, if none is running, and
// does not wait for it.
func (b *backend) refreshInBackground(name string) {
	b.flight.DoChan(name, func() (any, error) { return b.mintLocked(name, want{beyondWindow: true}) })
}

// refreshAllowed reports whether a background refresh may call the provider now.
func (nc *nameCache) refreshAllowed(now time.Time) bool {
	return nc.state != nil && !nc.state.NeedsRefreshToken &&
		!now.Before(nc.backoffUntil) && !now.Before(nc.notBefore)
}

// mintLocked is the only place that calls the provider. Under the name's lock
// it re-reads the newest state, returns it if it already satisfies w, and
// otherwise obtains, persists and publishes a new token.
func (b *backend) mintLocked(name string, w want) (*nameCache, error) {
	lock := b.lockFor(name)
	lock.Lock()
	defer lock.Unlock()
	ctx := b.ctx

	nc, err := b.entry(ctx, b.storage, name)
	if err != nil {
		return nil, err
	}
	if nc == nil {
		return nil, errNoConfig(name)
	}
	if !b.WriteSafeReplicationState() {
		// Only a node that can write storage may rotate a chain.
		return nc, logical.ErrReadOnly
	}
	// A state not yet saved is saved first; if that still fails, minting
	// goes on from the newest (in-memory) refresh token and saves again.
	var flushErr error
	if nc.dirty {
		nc, flushErr = b.persist(ctx, name, nc)
	}
	now := b.now()
	if w.satisfiedBy(nc, now) {
		return nc, flushErr
	}
	if nc.state != nil && nc.state.NeedsRefreshToken {
		return nc, errNeedsRefreshToken(name, nil)
	}
	if now.Before(nc.notBefore) || (w.beyondWindow && now.Before(nc.backoffUntil)) {
		return nc, fmt.Errorf("provider for %q is backing off until %s after: %w",
			name, maxTime(nc.notBefore, nc.backoffUntil).UTC().Format(time.RFC3339), nc.lastErr)
	}

	nc, tok, grant, err := b.obtain(ctx, name, nc)
	if err != nil {
		nc = nc.with(func(n *nameCache) { n.health = n.health.failed(err, now) })
		b.put(name, nc)
		return nc, err
	}
	nc = nc.with(func(n *nameCache) {
		n.state = n.newState(tok, grant, b.now())
		n.health = n.health.succeeded(grant, b.now())
	})
	return b.persist(ctx, name, nc)
}

// obtain runs the refresh grant when a refresh token is held, else the base
// grant. A refresh token the provider refused, or may have spent without
// answering, is dropped and persisted at once so it is never sent again; the
// base grant then starts a new chain if the config can mint.
func (b *backend) obtain(ctx context.Context, name string, nc *nameCache) (*nameCache, *provider.Token, provider.Grant, error) {
	ep := nc.cfg.endpoint()
	if nc.state != nil && nc.state.RefreshToken != "" {
		tok, err := b.refresh(ctx, name, &nc, ep)
		if err == nil {
			return nc, tok, provider.GrantRefreshToken, nil
		}
		var pe *provider.Error
		if !errors.As(err, &pe) {
			return nc, nil, "", err
		}
		// With more client secrets to try, a refused client also ends the
		// chain: the refresh token was sent and must not be sent again.
		rotating := clientRefused(pe) && len(nc.cfg.secrets()) > 1
		if !pe.InvalidGrant && !pe.MaybeConsumed && !rotating {
			return nc, nil, "", err
		}
		nc = nc.with(func(n *nameCache) {
			dead := *n.state
			dead.RefreshToken, dead.RefreshPending = "", false
			dead.NeedsRefreshToken = !ep.CanMint()
			n.state = &dead
		})
		if nc, err = b.persist(ctx, name, nc); err != nil {
			return nc, nil, "", err
		}
		if !ep.CanMint() {
			b.refreshLog.Error("refresh chain lost; write a new refresh_token to the config", "name", name, "error", pe)
			return nc, nil, "", errNeedsRefreshToken(name, pe)
		}
		b.refreshLog.Warn("refresh token refused or possibly spent; starting a new chain with the base grant",
			"name", name, "grant", ep.BaseGrant(), "error", pe)
	}
	if !ep.CanMint() {
		return nc, nil, "", fmt.Errorf("config %q holds no refresh token and no credentials for the %s grant", name, ep.BaseGrant())
	}
	return b.baseGrant(ctx, name, nc, ep)
}

// refresh sends the held refresh token once. Before sending, it stores the
// state marked RefreshPending, so that if this process dies before the answer
// is saved, whoever loads the state next knows the token may be spent and
// never sends it again. A definite refusal that spends nothing (a 5xx, a 429)
// clears the mark. *ncp is updated to what was published.
func (b *backend) refresh(ctx context.Context, name string, ncp **nameCache, ep *provider.Endpoint) (*provider.Token, error) {
	nc := *ncp
	if nc.state.RefreshPending {
		return nil, &provider.Error{MaybeConsumed: true,
			Description: "an earlier refresh with this token has no recorded answer (a restart or failover mid-refresh); it may be spent"}
	}
	marked := nc.with(func(n *nameCache) {
		st := *n.state
		st.RefreshPending = true
		n.state = &st
	})
	if err := writeState(ctx, b.storage, name, marked.state); err != nil {
		// Not sent: the stored token stays good, but without the mark a
		// crash could not be told apart from "never sent".
		return nil, fmt.Errorf("refresh of %q not attempted, its state could not be saved first: %w", name, err)
	}
	nc = marked.with(func(n *nameCache) { n.dirty = false })
	b.put(name, nc)
	*ncp = nc

	tok, err := b.exchange(ctx, name, nc, ep, provider.GrantRefreshToken, nc.state.RefreshToken)
	var pe *provider.Error
	if err != nil && errors.As(err, &pe) && !pe.InvalidGrant && !pe.MaybeConsumed {
		// A definite answer that spent nothing: the token is still good.
		cleared := nc.with(func(n *nameCache) {
			st := *n.state
			st.RefreshPending = false
			n.state = &st
		})
		*ncp, _ = b.persist(ctx, name, cleared)
	}
	return tok, err
}

// baseGrant mints without a refresh token. It tries each client secret in
// turn while the provider refuses the client; one that works after another
// failed is promoted to the front of the config's list and saved, so a
// secret rotation at the provider causes no downtime.
func (b *backend) baseGrant(ctx context.Context, name string, nc *nameCache, ep *provider.Endpoint) (*nameCache, *provider.Token, provider.Grant, error) {
	grant := ep.BaseGrant()
	candidates := nc.cfg.secrets()
	if grant == provider.GrantAPIKey || len(candidates) == 0 {
		candidates = []string{ep.ClientSecret}
	}
	var err error
	for i, secret := range candidates {
		ep.ClientSecret = secret
		var tok *provider.Token
		tok, err = b.exchange(ctx, name, nc, ep, grant, "")
		if lostAnswer(err) {
			// The base grant spends nothing: one immediate retry rides out a
			// dropped connection instead of failing the read.
			tok, err = b.exchange(ctx, name, nc, ep, grant, "")
		}
		if err == nil {
			if i > 0 {
				nc = b.promoteSecret(ctx, name, nc, secret)
			}
			return nc, tok, grant, nil
		}
		var pe *provider.Error
		if !errors.As(err, &pe) || !clientRefused(pe) {
			break
		}
	}
	return nc, nil, grant, err
}

// lostAnswer reports whether a call failed in transit, with no HTTP answer.
func lostAnswer(err error) bool {
	var pe *provider.Error
	return errors.As(err, &pe) && pe.Status == 0 && pe.Temporary && !errors.Is(err, context.DeadlineExceeded)
}

// clientRefused reports whether the provider rejected the client's credentials.
func clientRefused(pe *provider.Error) bool {
	return pe != nil && (pe.Code == "invalid_client" || (pe.Status == 401 && !pe.InvalidGrant))
}

// promoteSecret saves the config with secret tried first. Failing to save is
// not fatal: the old order still works, one refused attempt later.
func (b *backend) promoteSecret(ctx context.Context, name string, nc *nameCache, secret string) *nameCache {
	cfg := nc.cfg.withSecretFirst(secret)
	entry, err := logical.StorageEntryJSON(configPrefix+name, cfg)
	if err == nil {
		err = b.storage.Put(ctx, entry)
	}
	if err != nil {
		b.refreshLog.Warn("a later client secret worked but the new order was not saved", "name", name, "error", err)
		return nc
	}
	b.refreshLog.Info("the provider refused the first client secret; a later one worked and is now tried first", "name", name)
	return nc.with(func(n *nameCache) { n.cfg = cfg })
}

// exchange makes one provider call within the config's timeout.
func (b *backend) exchange(ctx context.Context, name string, nc *nameCache, ep *provider.Endpoint, grant provider.Grant, refreshToken string) (*provider.Token, error) {
	ctx, cancel := context.WithTimeout(ctx, nc.cfg.Timeout)
	defer cancel()
	start := time.Now()
	tok, err := (&provider.Client{HTTP: nc.client}).Exchange(ctx, ep, grant, refreshToken)
	latency := time.Since(start)
	if err != nil {
		b.providerLog.Warn("provider call failed", "name", name, "grant", grant, "latency", latency, "error", err)
		return nil, fmt.Errorf("%s grant for %q: %w", grant, name, err)
	}
	b.providerLog.Info("token obtained", "name", name, "grant", grant, "expires_in", tok.ExpiresIn, "latency", latency)
	return tok, nil
}

// newState is the token state after tok was obtained with grant at now.
func (nc *nameCache) newState(tok *provider.Token, grant provider.Grant, now time.Time) *tokenState {
	lifetime := tok.ExpiresIn
	if lifetime <= 0 {
		lifetime = nc.cfg.DefaultTTL
	}
	refreshToken := tok.RefreshToken
	if refreshToken == "" && grant == provider.GrantRefreshToken && nc.cfg.endpoint().KeepsRefreshToken() {
		refreshToken = nc.state.RefreshToken // RFC 6749 §6: no new one issued, the old one stays
	}
	scopes := tok.Scopes
	if scopes == nil {
		scopes = nc.cfg.Scopes
	}
	return &tokenState{
		AccessToken:  tok.AccessToken,
		TokenType:    tok.TokenType,
		RefreshToken: refreshToken,
		IssuedAt:     now,
		ExpiresAt:    now.Add(lifetime),
		Scopes:       scopes,
		Grant:        grant,
	}
}

// persist writes nc's state (retrying briefly) and publishes nc. If storage
// keeps failing, nc is published dirty: the newest state, and the refresh
// token in it, stays in memory and wins over the stale stored one until a
// later write succeeds.
func (b *backend) persist(ctx context.Context, name string, nc *nameCache) (*nameCache, error) {
	var err error
	for attempt := 1; attempt <= persistAttempts; attempt++ {
		if err = writeState(ctx, b.storage, name, nc.state); err == nil {
			nc = nc.with(func(n *nameCache) { n.dirty = false })
			b.put(name, nc)
			return nc, nil
		}
		if attempt < persistAttempts {
			sleep(ctx, time.Duration(attempt)*b.persistRetryDelay)
		}
	}
	nc = nc.with(func(n *nameCache) { n.dirty = true })
	b.put(name, nc)
	b.refreshLog.Error("token state not saved; keeping it in memory and retrying later", "name", name, "error", err)
	return nc, fmt.Errorf("token state for %q not saved (kept in memory, will retry): %w", name, err)
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

// periodicRefresh is the background pass Vault runs about once a minute: it
// refreshes every token inside its refresh window (or expired) so reads are
// served from cache, with bounded concurrency and per-name backoff. No lock
// is held across another name's provider call.
func (b *backend) periodicRefresh(ctx context.Context, req *logical.Request) error {
	if !b.WriteSafeReplicationState() {
		return nil
	}
	names, err := req.Storage.List(ctx, configPrefix)
	if err != nil {
		return fmt.Errorf("list configs: %w", err)
	}
	var wg sync.WaitGroup
	for _, name := range names {
		nc, err := b.entry(ctx, req.Storage, name)
		if err != nil || nc == nil {
			continue
		}
		now := b.now()
		due := nc.dirty || (nc.state != nil && nc.state.AccessToken != "" &&
			nc.state.refreshDue(now.Add(passJitter(name, nc.state.refreshWindow(nc.cfg.RefreshAhead))), nc.cfg.RefreshAhead) &&
			nc.refreshAllowed(now))
		if !due {
			continue
		}
		select {
		case b.background <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer func() { <-b.background; wg.Done() }()
			if _, err := b.mint(b.ctx, name, want{beyondWindow: true}); err != nil {
				b.refreshLog.Warn("background refresh failed", "name", name, "error", err)
			}
		}()
	}
	wg.Wait()
	return nil
}

// passJitter delays a name's background refresh by up to a quarter of its
// refresh window, fixed per name, so names minted together (a bulk import, a
// restart) reach the provider spread over several passes, not in one burst.
// Reads still refresh at the window's start.
func passJitter(name string, window time.Duration) time.Duration {
	h := fnv.New32a()
	h.Write([]byte(name))
	return -time.Duration(uint64(window/4) * uint64(h.Sum32()%1024) / 1024)
}

func errNoConfig(name string) error {
	return logical.CodedError(http.StatusNotFound, fmt.Sprintf("no config named %q", name))
}

func errNeedsRefreshToken(name string, cause error) error {
	msg := fmt.Sprintf("the refresh chain of %q is lost and its config cannot mint without one: write a new refresh_token to config/%s", name, name)
	if cause != nil {
		msg += " (provider said: " + cause.Error() + ")"
	}
	return logical.CodedError(http.StatusBadGateway, msg)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
