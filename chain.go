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
// refresh token is held, else the base grant. A refresh token the provider
// refused, or may have spent without answering, is dropped and persisted at
// once so it is never sent again; the base grant then starts a new chain if
// the config can mint. Callers hold the name's lock.
func (b *backend) renew(ctx context.Context, name string, snap *snapshot) (*snapshot, obtained, error) {
	ep := snap.cfg.endpoint()
	if snap.state != nil && snap.state.RefreshToken != "" {
		tok, err := b.refresh(ctx, name, &snap, ep)
		if err == nil {
			return snap, obtained{tok, provider.GrantRefreshToken}, nil
		}
		if !spent(err) {
			return snap, obtained{}, err
		}
		snap = snap.withState(snap.state.edited(func(st *tokenState) {
			st.RefreshToken, st.RefreshPending = "", false
			st.NeedsRefreshToken = !ep.CanMint()
		}))
		if snap, err = b.persist(ctx, name, snap); err != nil {
			return snap, obtained{}, err
		}
		if !ep.CanMint() {
			b.refreshLog.Error("refresh chain lost; write a new refresh_token to the config", "name", name, "error", err)
			return snap, obtained{}, errNeedsRefreshToken(name, err)
		}
		b.refreshLog.Warn("refresh token refused or possibly spent; starting a new chain with the base grant",
			"name", name, "grant", ep.BaseGrant(), "error", err)
	}
	if !ep.CanMint() {
		return snap, obtained{}, fmt.Errorf("config %q holds no refresh token and no credentials for the %s grant", name, ep.BaseGrant())
	}
	return b.mint(ctx, name, snap, ep)
}

// spent reports whether a failed refresh leaves its token unusable: the
// provider refused it, or may have consumed it without answering.
func spent(err error) bool {
	var pe *provider.Error
	return errors.As(err, &pe) && (pe.Class == provider.Refused || pe.Class == provider.Lost)
}

// refresh sends the held refresh token once. Before sending, it stores the
// state marked RefreshPending, so that if this process dies before the answer
// is saved, whoever loads the state next knows the token may be spent and
// never sends it again. A temporary failure (nothing spent) clears the mark.
// *snapp is updated to what was published.
func (b *backend) refresh(ctx context.Context, name string, snapp **snapshot, ep *provider.Endpoint) (*provider.Token, error) {
	snap := *snapp
	if snap.state.RefreshPending {
		return nil, &provider.Error{Class: provider.Lost,
			Description: "an earlier refresh with this token has no recorded answer (a restart or failover mid-refresh); it may be spent"}
	}
	marked := snap.withState(snap.state.edited(func(st *tokenState) { st.RefreshPending = true }))
	if err := writeState(ctx, b.storage, name, marked.state); err != nil {
		// Not sent: the stored token stays good, but without the mark a
		// crash could not be told apart from "never sent".
		return nil, fmt.Errorf("refresh of %q not attempted, its state could not be saved first: %w", name, err)
	}
	snap = marked.with(func(n *snapshot) { n.dirty = false })
	b.publish(name, snap)
	*snapp = snap

	tok, err := b.exchange(ctx, name, snap, ep, provider.GrantRefreshToken, snap.state.RefreshToken)
	if err != nil && !spent(err) {
		// A definite answer that spent nothing: the token is still good.
		cleared := snap.withState(snap.state.edited(func(st *tokenState) { st.RefreshPending = false }))
		*snapp, _ = b.persist(ctx, name, cleared)
	}
	return tok, err
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

// promoteSecret saves the config with secret tried first. Failing to save is
// not fatal: the old order still works, one refused attempt later.
func (b *backend) promoteSecret(ctx context.Context, name string, snap *snapshot, secret string) *snapshot {
	cfg := snap.cfg.withSecretFirst(secret)
	if err := writeConfig(ctx, b.storage, name, cfg); err != nil {
		b.refreshLog.Warn("a later client secret worked but the new order was not saved", "name", name, "error", err)
		return snap
	}
	b.refreshLog.Info("the provider refused the first client secret; a later one worked and is now tried first", "name", name)
	return snap.with(func(n *snapshot) { n.cfg = cfg })
}

// exchange makes one provider call within the config's timeout. An error
// from a call that ran out of time wraps context.DeadlineExceeded.
func (b *backend) exchange(ctx context.Context, name string, snap *snapshot, ep *provider.Endpoint, grant provider.Grant, refreshToken string) (*provider.Token, error) {
	ctx, cancel := context.WithTimeout(ctx, snap.cfg.Timeout)
	defer cancel()
	start := time.Now()
	tok, err := (&provider.Client{HTTP: snap.client}).Exchange(ctx, ep, grant, refreshToken)
	latency := time.Since(start)
	if err != nil {
		b.providerLog.Warn("provider call failed", "name", name, "grant", grant, "latency", latency, "error", err)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s grant for %q: %w (%w)", grant, name, err, ctx.Err())
		}
		return nil, fmt.Errorf("%s grant for %q: %w", grant, name, err)
	}
	b.providerLog.Info("token obtained", "name", name, "grant", grant, "expires_in", tok.ExpiresIn, "latency", latency)
	return tok, nil
}

// newState is the token state after tok was obtained at now.
func (s *snapshot) newState(tok obtained, now time.Time) *tokenState {
	lifetime := tok.ExpiresIn
	if lifetime <= 0 {
		lifetime = s.cfg.DefaultTTL
	}
	refreshToken := tok.RefreshToken
	if refreshToken == "" && tok.grant == provider.GrantRefreshToken && s.cfg.endpoint().KeepsRefreshToken() {
		refreshToken = s.state.RefreshToken // RFC 6749 §6: no new one issued, the old one stays
	}
	scopes := tok.Scopes
	if scopes == nil {
		scopes = s.cfg.Scopes
	}
	return &tokenState{
		AccessToken:  tok.AccessToken,
		TokenType:    tok.TokenType,
		RefreshToken: refreshToken,
		IssuedAt:     now,
		ExpiresAt:    now.Add(lifetime),
		Scopes:       scopes,
		Grant:        tok.grant,
	}
}

func errNeedsRefreshToken(name string, cause error) error {
	msg := fmt.Sprintf("the refresh chain of %q is lost and its config cannot mint without one: write a new refresh_token to config/%s", name, name)
	if cause != nil {
		msg += " (provider said: " + cause.Error() + ")"
	}
	return logical.CodedError(http.StatusBadGateway, msg)
}
