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

// renew obtains a new token for snap's chain: the refresh grant when a
// refresh token is held (and refresh_grant allows it), else the base grant.
// A refresh token the provider refused, or may have spent without answering,
// is dropped and persisted at once so it is never sent again; the base grant
// then starts a new chain if the config can mint. Callers hold the name's lock.
func (b *backend) renew(ctx context.Context, name string, snap *snapshot) (*snapshot, obtained, error) {
	ep := snap.cfg.endpoint()
	ep.Now = b.now // assertions' iat and exp
	if snap.state != nil && snap.state.RefreshToken != "" && snap.cfg.refreshes() {
		tok, err := b.refresh(ctx, name, &snap, ep)
		if err == nil {
			return snap, obtained{tok, provider.GrantRefreshToken}, nil
		}
		if !spent(err) {
			return snap, obtained{}, err
		}
		next := snap.state.withoutChain().edited(func(st *tokenState) { st.NeedsRefreshToken = !snap.canMint() })
		if snap.renewalEndsServed() {
			// The provider may have ended the served token with this refresh
			// (an answer lost after it rotated; fosite revokes the whole
			// family when a token comes twice): it is not served again.
			next = next.withoutAccessToken()
		}
		snap = snap.withState(next)
		var persistErr error
		if snap, persistErr = b.persist(ctx, name, snap); persistErr != nil {
			return snap, obtained{}, persistErr
		}
		if !snap.canMint() {
			b.refreshLog.Error("refresh chain lost; write a new refresh_token to the config", "name", name, "error", err)
			return snap, obtained{}, errNeedsRefreshToken(name, err)
		}
		b.refreshLog.Warn("refresh token refused or possibly spent; starting a new chain with the base grant",
			"name", name, "grant", ep.BaseGrant(), "error", err)
	}
	if !snap.canMint() {
		return snap, obtained{}, errNotConnected(name, snap)
	}
	snap, tok, err := b.mintSigned(ctx, name, snap, ep) // mint_signed.go
	var pe *provider.Error
	if err != nil && snap.settings.mintEnds && errors.As(err, &pe) && pe.Class == provider.Lost && snap.state != nil && snap.state.AccessToken != "" {
		// The provider may have issued a token we never saw, ending the one
		// served (one active token per client): it is not served again.
		snap, _ = b.persist(ctx, name, snap.withState(snap.state.withoutAccessToken()))
	}
	return snap, tok, err
}

// spent reports whether a failed refresh leaves its token unusable: the
// provider refused it, or may have consumed it without answering. A refused
// client (invalid_client) did not get as far as the token (client_rotation.go).
func spent(err error) bool {
	var pe *provider.Error
	return errors.As(err, &pe) && (pe.Class == provider.Refused || pe.Class == provider.Lost) && !clientRefused(err)
}

// refresh sends the held refresh token, at most once (twice inside the
// config's refresh_reuse_grace when the first answer was lost; again with
// the config's next client credential when the provider refused the client,
// which spent nothing: client_rotation.go). A token the provider said has
// expired is not sent. Storage is read before sending and again when the
// provider refuses: a newer chain stored there (by another node) is used
// once instead of sending a stale token or declaring the chain dead. *snapp
// is updated to what was published.
func (b *backend) refresh(ctx context.Context, name string, snapp **snapshot, ep *provider.Endpoint) (*provider.Token, error) {
	grace := (*snapp).cfg.RefreshReuseGrace
	adopt := func() bool {
		newer := b.newerStoredChain(ctx, name, (*snapp).state.RefreshToken)
		if newer != nil {
			*snapp = (*snapp).withState(newer)
			b.publish(name, *snapp)
		}
		return newer != nil
	}
	adopted := adopt()
	var alts []altClient // further client credentials, listed on the first invalid_client
	var promote func(context.Context, *backend, string, *snapshot) *snapshot
	for {
		st := (*snapp).state
		now := b.now()
		if st.refreshExpired(now) {
			return nil, &provider.Error{Class: provider.Refused,
				Description: "the refresh token expired at " + st.RefreshExpiresAt.UTC().Format(time.RFC3339) + " (as the provider said); it was not sent"}
		}
		if st.RefreshPending && !st.mayResend(now, grace) {
			return nil, &provider.Error{Class: provider.Lost,
				Description: "an earlier refresh with this token has no recorded answer (a restart, failover or lost connection mid-refresh); it may be spent"}
		}
		tok, err := b.sendRefresh(ctx, name, snapp, ep)
		var pe *provider.Error
		switch {
		case err == nil && promote != nil:
			*snapp = promote(ctx, b, name, *snapp)
			return tok, nil
		case err == nil || !errors.As(err, &pe):
			return tok, err
		case clientRefused(err):
			if promote == nil {
				alts = b.altClients(*snapp, ep)
			}
			if len(alts) == 0 {
				return tok, err
			}
			b.refreshLog.Warn("the provider refused the client; refreshing with the config's next client credential", "name", name, "error", err)
			ep, promote, alts = alts[0].ep, alts[0].promote, alts[1:]
			continue
		case pe.Class == provider.Lost && (*snapp).state.mayResend(b.now(), grace):
			b.refreshLog.Warn("refresh answer lost; resending the same token once, within refresh_reuse_grace", "name", name, "error", err)
			continue
		case pe.Class == provider.Refused && !adopted && adopt():
			b.refreshLog.Warn("refresh token refused, but storage holds a newer chain; using it", "name", name, "error", err)
			adopted = true
			continue
		}
		return tok, err
	}
}

// sendRefresh sends the refresh token once. Before sending, it stores the
// state marked RefreshPending (and counts the sending), so that if this
// process dies before the answer is saved, whoever loads the state next knows
// the token may be spent. A temporary failure (nothing spent) clears the mark.
func (b *backend) sendRefresh(ctx context.Context, name string, snapp **snapshot, ep *provider.Endpoint) (*provider.Token, error) {
	snap := *snapp
	now := b.now()
	marked := snap.withState(snap.state.edited(func(st *tokenState) {
		st.RefreshPending = true
		if st.RefreshSends == 0 {
			st.RefreshSentAt = now
		}
		st.RefreshSends++
	}))
	snap, err := b.save(ctx, b.storage, name, marked)
	if err != nil {
		b.metrics.persistFailures.Inc()
		// Not sent: the stored token stays good, but without the mark a
		// crash could not be told apart from "never sent".
		return nil, fmt.Errorf("refresh of %q not attempted, its state could not be saved first: %w", name, err)
	}
	*snapp = snap

	tok, err := b.exchange(ctx, name, snap, ep, provider.GrantRefreshToken, snap.state.RefreshToken)
	if err != nil && !spent(err) {
		// A definite answer that spent nothing: the token is still good.
		cleared := snap.withState(snap.state.edited(func(st *tokenState) {
			st.RefreshPending, st.RefreshSentAt, st.RefreshSends = false, time.Time{}, 0
		}))
		*snapp, _ = b.persist(ctx, name, cleared)
	}
	return tok, err
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

// mint obtains a token by the base grant. It tries each client secret in turn
// while the provider refuses; one that works after another failed is
// promoted to the front of the config's list and saved, so a secret rotation
// at the provider causes no downtime.
func (b *backend) mint(ctx context.Context, name string, snap *snapshot, ep *provider.Endpoint) (*snapshot, obtained, error) {
	grant := ep.BaseGrant()
	candidates := snap.cfg.secrets()
	if grant == provider.GrantAPIKey || len(candidates) == 0 {
		candidates = []string{ep.ClientSecret}
	}
	var err error
	for i, secret := range candidates {
		ep.ClientSecret = secret
		var tok *provider.Token
		tok, err = b.exchange(ctx, name, snap, ep, grant, "")
		if lostQuickly(err) {
			// The base grant spends nothing: one immediate retry rides out a
			// dropped connection instead of failing the read.
			tok, err = b.exchange(ctx, name, snap, ep, grant, "")
		}
		if err == nil {
			if i > 0 {
				snap = b.promoteSecret(ctx, name, snap, secret)
			}
			return snap, obtained{tok, grant}, nil
		}
		var pe *provider.Error
		if !errors.As(err, &pe) || pe.Class != provider.Refused {
			break
		}
	}
	return snap, obtained{}, err
}

// lostQuickly reports whether a call failed in transit, with no HTTP answer,
// before its time limit.
func lostQuickly(err error) bool {
	var pe *provider.Error
	return errors.As(err, &pe) && pe.Status == 0 && pe.Class != provider.Refused && !errors.Is(err, context.DeadlineExceeded)
}

// exchange makes one token request through the gateway. An error from a
// call that ran out of time wraps context.DeadlineExceeded.
func (b *backend) exchange(ctx context.Context, name string, snap *snapshot, ep *provider.Endpoint, grant provider.Grant, refreshToken string) (*provider.Token, error) {
	url := ep.EffectiveTokenURL()
	if grant == provider.GrantRefreshToken {
		url = ep.EffectiveRefreshURL()
	}
	var tok *provider.Token
	err := b.send(ctx, snap.request(name, grant, url), func(ctx context.Context, c *provider.Client) (err error) {
		tok, err = c.Exchange(ctx, ep, grant, refreshToken)
		return err
	})
	if err != nil {
		return nil, err
	}
	return tok, nil
}

// newState is the token state after tok was obtained at now.
func (s *snapshot) newState(tok obtained, now time.Time) *tokenState {
	lifetime := tok.ExpiresIn
	if lifetime <= 0 {
		lifetime = s.cfg.DefaultTTL
	}
	scopes := tok.Scopes
	if scopes == nil {
		scopes = s.cfg.Scopes
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
	switch {
	case !s.cfg.refreshes():
		// refresh_grant=never: a refresh token is neither used nor kept.
	case tok.RefreshToken != "":
		st.RefreshToken = tok.RefreshToken
		if tok.RefreshExpiresIn > 0 {
			st.RefreshExpiresAt = now.Add(tok.RefreshExpiresIn)
		}
	case tok.grant == provider.GrantRefreshToken && s.cfg.endpoint().KeepsRefreshToken():
		// RFC 6749 §6: no new one issued, the old one stays.
		st.RefreshToken, st.RefreshExpiresAt = s.state.RefreshToken, s.state.RefreshExpiresAt
	}
	if tok.grant == provider.GrantRefreshToken && s.state != nil {
		st.Connected = s.state.Connected // a user's chain stays theirs
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
