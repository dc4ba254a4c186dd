package tokenbroker

// The provider gateway: every request to a provider, whoever makes it (a
// renewal, a code exchange, a device authorization or poll, a GitHub
// installation lookup, a revocation, the connected account's userinfo,
// issuer discovery), goes through send,
// and nothing else in this package calls provider.Client. So the rules hold
// for all of them alike: an orphaned plugin process sends nothing; only a
// node that may write storage sends; the mount's rate_limit paces each
// provider host and a Retry-After holds the host for every caller; the
// config's timeout bounds the call; every request is counted and logged,
// with the provider package's redaction and classification.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// providerRequest is one request to a provider.
type providerRequest struct {
	name    string         // the config it is for
	request provider.Grant // what it is: a grant, or a request* kind (metrics.go)
	url     string         // where it goes: its host's rate limit applies
	client  *http.Client
	timeout time.Duration
}

// send makes r with do, which gets a context bounded by r's timeout and the
// client to use. An error from a call that ran out of time wraps
// context.DeadlineExceeded; every error names the request and the config.
func (b *backend) send(ctx context.Context, r providerRequest, do func(context.Context, *provider.Client) error) error {
	if !VaultAlive() {
		return fmt.Errorf("%s for %q not sent: the Vault that started this plugin is gone", r.label(), r.name)
	}
	if !b.WriteSafeReplicationState() {
		return logical.ErrReadOnly // only the node that can write storage calls a provider
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if set, err := b.mountSettings(ctx, b.storage); err == nil {
		b.limits.configure(set.RateLimit, set.burst())
	}
	host := hostOf(r.url)
	if err := b.limits.wait(ctx, host, b.now()); err != nil {
		return fmt.Errorf("%s for %q: %w", r.label(), r.name, err)
	}
	start := time.Now()
	err := do(ctx, &provider.Client{HTTP: r.client})
	latency := time.Since(start)
	var pe *provider.Error
	if errors.As(err, &pe) && pe.RetryAfter > 0 {
		b.limits.pause(host, b.now().Add(pe.RetryAfter)) // the provider slows this host down for every name
	}
	b.metrics.providerCall(b.counters(r.name), r.request, latency, err, ctx.Err())
	switch {
	case err == nil:
		// Debug, not Info: at 100 000 chains a line per refresh is gigabytes a day.
		b.providerLog.Debug("provider request", "name", r.name, "request", r.request, "latency", latency)
		return nil
	case ctx.Err() != nil:
		err = fmt.Errorf("%s for %q: %w (%w)", r.label(), r.name, err, ctx.Err())
	default:
		err = fmt.Errorf("%s for %q: %w", r.label(), r.name, err)
	}
	b.providerLog.Warn("provider request failed", "name", r.name, "request", r.request, "latency", latency, "error", err)
	return err
}

// label names r in messages: "refresh_token grant", "device_authorization".
func (r providerRequest) label() string {
	switch r.request {
	case requestDeviceAuthorization, requestInstallationLookup, requestRevocation, requestDiscovery, requestUserinfo:
		return string(r.request)
	}
	return string(r.request) + " grant"
}

// exchange makes one token request for r through the gateway, narrowed as
// r's narrowing asks (nil: the config's token). An error from a call that
// ran out of time wraps context.DeadlineExceeded.
func (b *backend) exchange(ctx context.Context, r renewal, ep *provider.Endpoint, grant provider.Grant, refreshToken string) (*provider.Token, error) {
	return b.sendToken(ctx, r, ep, provider.TokenRequest{Grant: grant, RefreshToken: refreshToken, Narrowing: r.narrowing})
}

// sendToken makes the token request in for r through the gateway: any
// grant, an RFC 8693 token exchange included.
func (b *backend) sendToken(ctx context.Context, r renewal, ep *provider.Endpoint, in provider.TokenRequest) (*provider.Token, error) {
	url := ep.EffectiveTokenURL()
	if in.Grant == provider.GrantRefreshToken {
		url = ep.EffectiveRefreshURL()
	}
	var tok *provider.Token
	err := b.send(ctx, r.request(in.Grant, url), func(ctx context.Context, c *provider.Client) (err error) {
		tok, err = c.Send(ctx, ep, in)
		return err
	})
	if err != nil {
		return nil, err
	}
	return tok, nil
}
