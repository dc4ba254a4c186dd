package tokenbroker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// Words used here and throughout: to *obtain* a token is to get one by any
// grant; to *refresh* is to use the refresh grant; to *mint* is to use the
// base grant (client credentials, api.video's API key), which needs no chain.

// obtained is a token and the grant that got it.
type obtained struct {
	*provider.Token
	grant provider.Grant
}

// renew obtains a new token for r's chain and returns the token state it
// makes (not yet saved): by the refresh grant when a refresh token is held
// (and refresh_grant allows it), else by the base grant. A refresh token the
// provider refused, or may have spent without answering, is dropped and
// persisted at once so it is never sent again; the base grant then starts a
// new chain if the config can mint. Callers hold the name's lock.
func (b *backend) renew(ctx context.Context, r renewal) (renewal, *tokenState, error) {
	if st := r.snap.state; st != nil && st.RefreshToken != "" && r.cfg.refreshes() {
		var tok *provider.Token
		var err error
		if r, tok, err = b.refresh(ctx, r); err == nil {
			return r, r.newState(obtained{tok, provider.GrantRefreshToken}, b.now()), nil
		}
		if !spent(err) {
			return r, nil, err
		}
		if r, err = b.dropSpentChain(ctx, r, err); err != nil {
			return r, nil, err
		}
	}
	if !r.snap.canMint() {
		return r, nil, errNotConnected(r.name, r.snap)
	}
	r, tok, err := b.mint(ctx, r) // mint.go
	var pe *provider.Error
	if err != nil && r.snap.settings.mintEnds && errors.As(err, &pe) && pe.Class == provider.Lost && r.snap.state != nil && r.snap.state.AccessToken != "" {
		// The provider may have issued a token we never saw, ending the one
		// served (one active token per client): it is not served again.
		snap, _ := b.persist(ctx, r.name, r.snap.withState(r.snap.state.withoutAccessToken()))
		r = r.at(snap)
	}
	if err != nil {
		return r, nil, err
	}
	return r, r.newState(tok, b.now()), nil
}

// dropSpentChain drops r's refresh token after the provider refused it or may
// have spent it (cause), and persists that before anything else. It returns
// an error unless the config can start a new chain by minting.
func (b *backend) dropSpentChain(ctx context.Context, r renewal, cause error) (renewal, error) {
	next := r.snap.state.withoutChain().edited(func(st *tokenState) { st.NeedsRefreshToken = !r.snap.canMint() })
	if next.NeedsRefreshToken {
		// The app must ask its user: the event is stored with the loss,
		// in the same write (webhook.go).
		if ev := b.lostChainEvent(r, r.snap.state, cause, b.now()); ev != nil {
			next = next.withEvent(ev).edited(func(st *tokenState) { st.NotifiedReauthorization = true })
		}
	}
	if r.snap.renewalEndsServed() {
		// The provider may have ended the served token with this refresh
		// (an answer lost after it rotated; fosite revokes the whole
		// family when a token comes twice): it is not served again.
		next = next.withoutAccessToken()
	}
	snap, err := b.persist(ctx, r.name, r.snap.withState(next))
	r = r.at(snap)
	if err != nil {
		return r, err
	}
	if !snap.canMint() {
		b.refreshLog.Error("refresh chain lost; write a new refresh_token to the config", "name", r.name, "error", cause)
		return r, errNeedsRefreshToken(r.name, cause)
	}
	b.refreshLog.Warn("refresh token refused or possibly spent; starting a new chain with the base grant",
		"name", r.name, "grant", snap.settings.baseGrant, "error", cause)
	return r, nil
}

// spent reports whether a failed refresh leaves its token unusable: the
// provider refused it, or may have consumed it without answering. A refused
// client (invalid_client) did not get as far as the token (client_rotation.go);
// nor did a refused narrowing (invalid_scope, invalid_target: variants.go).
func spent(err error) bool {
	var pe *provider.Error
	return errors.As(err, &pe) && (pe.Class == provider.Refused || pe.Class == provider.Lost) && !clientRefused(err) &&
		!pe.NarrowingRefused // the target asked was refused, not the token sent
}

// refresh sends the held refresh token, at most once (twice inside the
// config's refresh_reuse_grace when the first answer was lost; again with
// the config's next client credential when the provider refused the client,
// which spent nothing: client_rotation.go). A token the provider said has
// expired is not sent. Storage is read before sending and again when the
// provider refuses: a newer chain stored there (by another node) is used
// once instead of sending a stale token or declaring the chain dead.
func (b *backend) refresh(ctx context.Context, r renewal) (renewal, *provider.Token, error) {
	grace := r.cfg.RefreshReuseGrace
	ep := r.endpoint()
	adopt := func() bool {
		newer := b.newerStoredChain(ctx, r.name, r.snap.state.RefreshToken)
		if newer != nil {
			r = r.withState(newer)
			b.publish(r.name, r.snap)
		}
		return newer != nil
	}
	adopted := adopt()
	var alts []altClient // further client credentials, listed on the first invalid_client
	var promote func(context.Context, *backend, renewal) renewal
	for {
		st := r.snap.state
		now := b.now()
		if st.refreshExpired(now) {
			return r, nil, &provider.Error{Class: provider.Refused,
				Description: "the refresh token expired at " + st.RefreshExpiresAt.UTC().Format(time.RFC3339) + " (as the provider said); it was not sent"}
		}
		if st.RefreshPending && !st.mayResend(now, grace) {
			return r, nil, &provider.Error{Class: provider.Lost,
				Description: "an earlier refresh with this token has no recorded answer (a restart, failover or lost connection mid-refresh); it may be spent"}
		}
		var tok *provider.Token
		var err error
		r, tok, err = b.sendRefresh(ctx, r, ep)
		var pe *provider.Error
		switch {
		case err == nil && promote != nil:
			return promote(ctx, b, r), tok, nil
		case err == nil || !errors.As(err, &pe):
			return r, tok, err
		case clientRefused(err):
			if promote == nil {
				alts = r.altClients(ep)
			}
			if len(alts) == 0 {
				return r, tok, err
			}
			b.refreshLog.Warn("the provider refused the client; refreshing with the config's next client credential", "name", r.name, "error", err)
			ep, promote, alts = alts[0].ep, alts[0].promote, alts[1:]
			continue
		case pe.Class == provider.Lost && r.snap.state.mayResend(b.now(), grace):
			b.refreshLog.Warn("refresh answer lost; resending the same token once, within refresh_reuse_grace", "name", r.name, "error", err)
			continue
		case pe.Class == provider.Refused && !adopted && adopt():
			b.refreshLog.Warn("refresh token refused, but storage holds a newer chain; using it", "name", r.name, "error", err)
			adopted = true
			continue
		}
		return r, tok, err
	}
}

// sendRefresh sends the refresh token once. Before sending, it stores the
// state marked RefreshPending (and counts the sending), so that if this
// process dies before the answer is saved, whoever loads the state next knows
// the token may be spent. A temporary failure (nothing spent) clears the mark.
func (b *backend) sendRefresh(ctx context.Context, r renewal, ep *provider.Endpoint) (renewal, *provider.Token, error) {
	now := b.now()
	marked := r.snap.withState(r.snap.state.edited(func(st *tokenState) {
		st.RefreshPending = true
		if st.RefreshSends == 0 {
			st.RefreshSentAt = now
		}
		st.RefreshSends++
	}))
	snap, err := b.save(ctx, b.storage, r.name, marked)
	if err != nil {
		b.metrics.persistFailures.Inc()
		// Not sent: the stored token stays good, but without the mark a
		// crash could not be told apart from "never sent".
		return r, nil, fmt.Errorf("refresh of %q not attempted, its state could not be saved first: %w", r.name, err)
	}
	r = r.at(snap)

	tok, err := b.exchange(ctx, r, ep, provider.GrantRefreshToken, snap.state.RefreshToken)
	if err != nil && !spent(err) {
		// A definite answer that spent nothing: the token is still good.
		cleared := snap.withState(snap.state.edited(func(st *tokenState) {
			st.RefreshPending, st.RefreshSentAt, st.RefreshSends = false, time.Time{}, 0
		}))
		snap, _ = b.persist(ctx, r.name, cleared)
		r = r.at(snap)
	}
	return r, tok, err
}

// newerStoredChain returns the stored token state when it holds a refresh
// token other than refused that is fit to send, else nil.
func (b *backend) newerStoredChain(ctx context.Context, name, refused string) *tokenState {
	stored, err := loadState(ctx, b.storage, name)
	if err != nil || stored == nil || stored.RefreshToken == "" || stored.RefreshToken == refused ||
		stored.RefreshPending || stored.NeedsRefreshToken {
		return nil
	}
	return stored
}

// newState is the token state after tok was obtained at now.
func (r renewal) newState(tok obtained, now time.Time) *tokenState {
	lifetime := tok.ExpiresIn
	if lifetime <= 0 {
		lifetime = r.cfg.DefaultTTL
	}
	scopes := tok.Scopes
	switch {
	case scopes != nil:
	case r.narrowing != nil && len(r.narrowing.Scopes) > 0:
		scopes = r.narrowing.Scopes // RFC 6749 §5.1: the scope asked, when none is returned
	default:
		scopes = r.cfg.Scopes
	}
	st := &tokenState{
		AccessToken: tok.AccessToken,
		TokenType:   tok.TokenType,
		IssuedAt:    now,
		ExpiresAt:   now.Add(lifetime),
		Scopes:      scopes,
		Grant:       tok.grant,

		Permissions: tok.Permissions, Repositories: tok.Repositories,
	}
	st.internStrings()
	previous := r.snap.state
	switch {
	case !r.cfg.refreshes():
		// refresh_grant=never: a refresh token is neither used nor kept.
	case tok.RefreshToken != "":
		st.RefreshToken = tok.RefreshToken
		if tok.RefreshExpiresIn > 0 {
			st.RefreshExpiresAt = now.Add(tok.RefreshExpiresIn)
		}
	case tok.grant == provider.GrantRefreshToken && r.cfg.endpoint().KeepsRefreshToken():
		// RFC 6749 §6: no new one issued, the old one stays.
		st.RefreshToken, st.RefreshExpiresAt = previous.RefreshToken, previous.RefreshExpiresAt
	}
	st.IDToken = tok.IDToken
	if tok.grant == provider.GrantRefreshToken && previous != nil {
		st.Connected = previous.Connected // a user's chain stays theirs
		if st.IDToken == "" {
			st.IDToken = previous.IDToken // OpenID Connect Core §12.2: a refresh may bring none
		}
	}
	if previous != nil {
		st.Events = previous.Events // recorded, not yet in the outbox (webhook.go)
	}
	return st
}

func errNeedsRefreshToken(name string, cause error) error {
	msg := fmt.Sprintf("the refresh chain of %q is lost and its config cannot mint without one: write a new refresh_token to config/%s, or connect the account again (authorize/%s or device/%s)", name, name, name, name)
	if cause != nil {
		msg += " (provider said: " + cause.Error() + ")"
	}
	return logical.CodedError(http.StatusBadGateway, msg)
}
