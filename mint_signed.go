package tokenbroker

import (
	"context"
	"errors"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// What minting with a signing key adds around the base grant (chain.go's
// mint): a GitHub App's installation looked up once by its owner and kept,
// and the next key tried when the provider refuses the current one (promoted
// when it works, so a key rotation at the provider needs no call here).
// Callers hold the name's lock.

// mintSigned mints by the base grant, with what signing keys add.
func (b *backend) mintSigned(ctx context.Context, name string, snap *snapshot, ep *provider.Endpoint) (*snapshot, obtained, error) {
	snap, err := b.findInstallation(ctx, name, snap, ep)
	if err != nil {
		return snap, obtained{}, err
	}
	snap, tok, err := b.mint(ctx, name, snap, ep)
	var pe *provider.Error
	if err != nil && errors.As(err, &pe) && pe.Class == provider.Refused && snap.cfg.keys.pending() != nil {
		return b.mintWithNextKey(ctx, name, snap, err)
	}
	return snap, tok, err
}

// findInstallation looks a GitHub App's installation up by its owner, once:
// the id is saved in the config and ep, and kept.
func (b *backend) findInstallation(ctx context.Context, name string, snap *snapshot, ep *provider.Endpoint) (*snapshot, error) {
	if !ep.NeedsInstallationLookup() {
		return snap, nil
	}
	var id string
	err := b.send(ctx, snap.request(name, requestInstallationLookup, ep.EffectiveTokenURL()), func(ctx context.Context, c *provider.Client) (err error) {
		id, err = c.FindInstallation(ctx, ep)
		return err
	})
	if err != nil {
		return snap, err
	}
	cfg := *snap.cfg
	cfg.InstallationID = id
	ep.Installation.InstallationID = id
	if err := configEntries.save(ctx, b.storage, name, &cfg); err != nil {
		b.refreshLog.Warn("the GitHub App installation was found but not saved; it is looked up again next time", "name", name, "error", err)
		return snap, nil
	}
	b.refreshLog.Info("GitHub App installation found and kept", "name", name, "owner", ep.Installation.Owner, "installation_id", id)
	return snap.with(func(n *snapshot) { n.cfg = &cfg }), nil
}

// mintWithNextKey mints with the next key after the provider refused the
// current one (refused). If the provider takes it, it was registered there:
// it is promoted (client_rotation.go).
func (b *backend) mintWithNextKey(ctx context.Context, name string, snap *snapshot, refused error) (*snapshot, obtained, error) {
	ep := snap.cfg.endpointWith(snap.cfg.keys.pending())
	ep.Now = b.now
	grant := ep.BaseGrant()
	tok, err := b.exchange(ctx, name, snap, ep, grant, "")
	if err != nil {
		b.refreshLog.Warn("the provider refused the current signing key and the next one", "name", name, "error", err)
		return snap, obtained{}, refused
	}
	return b.promoteKey(ctx, name, snap, ep), obtained{tok, grant}, nil
}
