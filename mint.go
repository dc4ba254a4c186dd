package tokenbroker

import (
	"context"
	"errors"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// Minting: obtaining a token by the base grant (client credentials, an API
// key, a signed assertion, a GitHub App's installation token), which needs no
// chain. Around the request: each client secret tried in turn, a GitHub App's
// installation looked up once by its owner and kept, and the next signing key
// tried when the provider refuses the current one; a secret or key that works
// after another was refused is promoted (client_rotation.go), so a rotation
// at the provider needs no call here. Callers hold the name's lock.

// mint obtains a token by r's base grant.
func (b *backend) mint(ctx context.Context, r renewal) (renewal, obtained, error) {
	ep := r.endpoint()
	r, err := b.findInstallation(ctx, r, ep)
	if err != nil {
		return r, obtained{}, err
	}
	r, tok, err := b.mintWithSecrets(ctx, r, ep)
	var pe *provider.Error
	if err != nil && errors.As(err, &pe) && pe.Class == provider.Refused && r.cfg.keys.pending() != nil {
		return b.mintWithNextKey(ctx, r, err)
	}
	return r, tok, err
}

// mintWithSecrets obtains a token by the base grant with ep. It tries each
// client secret in turn while the provider refuses; one that works after
// another failed is promoted to the front of the config's list and saved, so
// a secret rotation at the provider causes no downtime.
func (b *backend) mintWithSecrets(ctx context.Context, r renewal, ep *provider.Endpoint) (renewal, obtained, error) {
	grant := ep.BaseGrant()
	candidates := r.cfg.secrets()
	if grant == provider.GrantAPIKey || len(candidates) == 0 {
		candidates = []string{ep.ClientSecret}
	}
	var err error
	for i, secret := range candidates {
		ep.ClientSecret = secret
		var tok *provider.Token
		tok, err = b.exchange(ctx, r, ep, grant, "")
		if lostQuickly(err) {
			// The base grant spends nothing: one immediate retry rides out a
			// dropped connection instead of failing the read.
			tok, err = b.exchange(ctx, r, ep, grant, "")
		}
		if err == nil {
			if i > 0 {
				r = b.promoteSecret(ctx, r, secret)
			}
			return r, obtained{tok, grant}, nil
		}
		var pe *provider.Error
		if !errors.As(err, &pe) || pe.Class != provider.Refused {
			break
		}
	}
	return r, obtained{}, err
}

// lostQuickly reports whether a call failed in transit, with no HTTP answer,
// before its time limit.
func lostQuickly(err error) bool {
	var pe *provider.Error
	return errors.As(err, &pe) && pe.Status == 0 && pe.Class != provider.Refused && !errors.Is(err, context.DeadlineExceeded)
}

// findInstallation looks a GitHub App's installation up by its owner, once:
// the id is saved in the config and ep, and kept.
func (b *backend) findInstallation(ctx context.Context, r renewal, ep *provider.Endpoint) (renewal, error) {
	if !ep.NeedsInstallationLookup() {
		return r, nil
	}
	var id string
	err := b.send(ctx, r.request(requestInstallationLookup, ep.EffectiveTokenURL()), func(ctx context.Context, c *provider.Client) (err error) {
		id, err = c.FindInstallation(ctx, ep)
		return err
	})
	if err != nil {
		return r, err
	}
	cfg := *r.cfg
	cfg.InstallationID = id
	ep.Installation.InstallationID = id
	err = b.saveClient(ctx, r, &cfg, func(app *providerConfig) bool {
		app.InstallationID = id
		return app.InstallationOwner == cfg.InstallationOwner && app.AppID == cfg.AppID
	})
	if err != nil {
		b.refreshLog.Warn("the GitHub App installation was found but not saved; it is looked up again next time", "name", r.name, "error", err)
		return r, nil
	}
	b.refreshLog.Info("GitHub App installation found and kept", "name", r.name, "owner", ep.Installation.Owner, "installation_id", id)
	return r.withConfig(&cfg), nil
}

// mintWithNextKey mints with the next key after the provider refused the
// current one (refused). If the provider takes it, it was registered there:
// it is promoted (client_rotation.go).
func (b *backend) mintWithNextKey(ctx context.Context, r renewal, refused error) (renewal, obtained, error) {
	ep := r.endpointWith(r.cfg.keys.pending())
	grant := ep.BaseGrant()
	tok, err := b.exchange(ctx, r, ep, grant, "")
	if err != nil {
		b.refreshLog.Warn("the provider refused the current signing key and the next one", "name", r.name, "error", err)
		return r, obtained{}, refused
	}
	return b.promoteKey(ctx, r, ep), obtained{tok, grant}, nil
}
