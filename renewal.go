package tokenbroker

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// renewal is one piece of work on a name's chain under the name's lock:
// renewing it, connecting a user's account, resetting it. It holds the view
// published last and what only such work needs, loaded once: the full config
// with its secrets and keys, and the HTTP client for its provider. Each step
// takes a renewal and returns the one it leaves (a new state saved, a client
// secret or key promoted), so what a step changed is in what it returns.
type renewal struct {
	name   string
	cfg    *providerConfig
	client *http.Client
	now    func() time.Time // dates assertions (iat, exp)
	snap   *snapshot        // the view published last
	// narrowing, when set, asks every token request of the renewal for
	// less than the config's token: a narrowed token (variants.go).
	narrowing *provider.Narrowing
}

// beginRenewal is the renewal of name starting from snap, with the config
// the read that found snap loaded (cold), or the config from storage. It
// fails with a 404 when the config is gone.
func (b *backend) beginRenewal(ctx context.Context, s logical.Storage, name string, snap *snapshot, cold *coldConfig) (renewal, error) {
	cfg := cold.configOf(snap)
	if cfg == nil {
		var err error
		if cfg, err = loadConfig(ctx, s, name); err != nil {
			return renewal{}, err
		}
		if cfg == nil {
			return renewal{}, errNoConfig(name)
		}
	}
	client, err := b.httpClient(cfg.CAPEM)
	if err != nil {
		return renewal{}, fmt.Errorf("config %q: %w", name, err)
	}
	return renewal{name: name, cfg: cfg, client: client, now: b.now, snap: snap}, nil
}

// configured is the renewal of name from its current view: for work that
// renews or connects a chain. It fails with a 404 when the name has no config.
func (b *backend) configured(ctx context.Context, s logical.Storage, name string) (renewal, error) {
	snap, err := b.snapshot(ctx, s, name)
	if err != nil {
		return renewal{}, err
	}
	if snap == nil {
		return renewal{}, errNoConfig(name)
	}
	return b.beginRenewal(ctx, s, name, snap, nil)
}

// at is r after its view became snap (saved, published or failed).
func (r renewal) at(snap *snapshot) renewal {
	r.snap = snap
	return r
}

// withState is r with its view holding st (not yet saved).
func (r renewal) withState(st *tokenState) renewal {
	return r.at(r.snap.withState(st))
}

// withConfig is r working with cfg (a secret or key promoted, an installation
// found); its view's settings follow.
func (r renewal) withConfig(cfg *providerConfig) renewal {
	r.cfg = cfg
	r.snap = r.snap.with(func(n *snapshot) { n.settings = settingsOf(cfg) })
	return r
}

// request is the providerRequest of a call for r's config to url.
func (r renewal) request(kind provider.Grant, url string) providerRequest {
	return providerRequest{name: r.name, request: kind, url: url, client: r.client, timeout: r.cfg.Timeout}
}

// endpoint is the wire view of r's config, signing with its current key.
func (r renewal) endpoint() *provider.Endpoint {
	ep := r.cfg.endpoint()
	ep.Now = r.now
	return ep
}

// endpointWith is the wire view of r's config signing with k.
func (r renewal) endpointWith(k *signingKey) *provider.Endpoint {
	ep := r.cfg.endpointWith(k)
	ep.Now = r.now
	return ep
}
