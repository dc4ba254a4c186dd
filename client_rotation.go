package tokenbroker

import (
	"context"
	"errors"
	"slices"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// Client credential rotation: a config may hold more than the credential it
// uses first, further client secrets (client_secrets) and a signing key not
// yet current (key/<name>/rotate). When the provider refuses the client, the
// next is tried, and one that works is promoted and saved, so a rotation at
// the provider needs no call here. The base grant does this when minting
// (mint.go); the refresh grant on invalid_client (refresh, chain.go).
//
// A refresh refused with invalid_client spent nothing: client authentication
// fails before the grant is looked at (RFC 6749 §5.2,
// https://datatracker.ietf.org/doc/html/rfc6749#section-5.2), so the refresh
// token is still good and goes again with the next credential, and the chain
// is kept when none works. Other refusals (a bare 400 included) may be about
// the token, which is then dropped (renew).

// clientRefused reports whether the provider refused the client itself, not
// the grant: an explicit invalid_client.
func clientRefused(err error) bool {
	var pe *provider.Error
	return errors.As(err, &pe) && pe.Class == provider.Refused && pe.Code == "invalid_client"
}

// altClient is a credential of the config besides the one ep uses first:
// the endpoint with it, and how to promote it once it worked.
type altClient struct {
	ep      *provider.Endpoint
	promote func(ctx context.Context, b *backend, r renewal) renewal
}

// altClients lists r's further credentials for ep, in the order to try
// them: the later client secrets, then the next signing key.
func (r renewal) altClients(ep *provider.Endpoint) []altClient {
	var out []altClient
	if secrets := r.cfg.secrets(); len(secrets) > 1 && ep.ClientSecret == secrets[0] {
		for _, secret := range secrets[1:] {
			alt := *ep
			alt.ClientSecret = secret
			out = append(out, altClient{ep: &alt, promote: func(ctx context.Context, b *backend, r renewal) renewal {
				return b.promoteSecret(ctx, r, secret)
			}})
		}
	}
	if next := r.cfg.keys.pending(); next != nil {
		alt := r.endpointWith(next)
		out = append(out, altClient{ep: alt, promote: func(ctx context.Context, b *backend, r renewal) renewal {
			return b.promoteKey(ctx, r, alt)
		}})
	}
	return out
}

// promoteSecret saves the config with secret tried first. Failing to save is
// not fatal: the old order still works, one refused attempt later.
func (b *backend) promoteSecret(ctx context.Context, r renewal, secret string) renewal {
	cfg := r.cfg.withSecretFirst(secret)
	err := b.saveClient(ctx, r, cfg, func(app *providerConfig) bool {
		if !slices.Contains(app.secrets(), secret) {
			return false
		}
		*app = *app.withSecretFirst(secret)
		return true
	})
	if err != nil {
		b.refreshLog.Warn("a later client secret worked but the new order was not saved", "name", r.name, "error", err)
		return r
	}
	b.refreshLog.Info("the provider refused the first client secret; a later one worked and is now tried first", "name", r.name)
	return r.withConfig(cfg)
}

// promoteKey makes the next signing key, which ep signed with and the
// provider accepted, the current one; the previous key stays published a
// while. Failing to save is not fatal: the next key is tried again next time.
func (b *backend) promoteKey(ctx context.Context, r renewal, ep *provider.Endpoint) renewal {
	ring, err := r.cfg.keys.promoted(b.now(), ep.AssertionTTL())
	if err == nil {
		err = b.saveKeys(ctx, r, ring) // app.go: a connection's are its app's
	}
	if err != nil {
		b.refreshLog.Warn("the next signing key worked but its promotion was not saved; it is tried again next time", "name", r.name, "error", err)
		return r
	}
	cfg := r.cfg.withKeys(ring)
	if r.cfg.App == "" {
		b.keysChanged(r.name, cfg)
	}
	b.refreshLog.Info("the provider refused the current signing key and accepted the next: the next key is now current",
		"name", r.name, "key_id", ring.current.kid)
	return r.withConfig(cfg)
}
