package tokenbroker

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// minAgentTTL: the ttl handed to Vault Agent never drops below this while the
// token is valid, so Agent does not spin on a token in its refresh window.
const minAgentTTL = 5

func pathCreds(b *backend) []*framework.Path {
	return []*framework.Path{{
		// Before creds/<name>: paths match in order, and a name never holds '/'.
		Pattern: "creds/(?P<name>[^/]+)/reset$",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "tokenbroker",
			OperationVerb:   "reset",
			OperationSuffix: "creds",
		},
		Fields: map[string]*framework.FieldSchema{
			"name": {Type: framework.TypeString, Description: "Name of the config whose chain to reset."},
			"refresh_token": {Type: framework.TypeString, Description: "A new seed refresh token to start the chain from (write-only). Without it, the next read mints by the base grant.",
				DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				Callback:                    b.pathCredsReset,
				Summary:                     "Drop the token and refresh chain (refused, lost or needing a new seed) and any backoff, keeping the config.",
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
			},
		},
		HelpSynopsis:    "Start a name's chain anew without deleting its config.",
		HelpDescription: resetHelp,
	}, {
		Pattern: "creds/" + framework.MatchAllRegex("name"),
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "tokenbroker",
			OperationSuffix: "creds",
		},
		Fields: withNarrowingFields(map[string]*framework.FieldSchema{
			"name": {Type: framework.TypeString, Description: "Name of the config whose token to return."},
			"min_ttl": {Type: framework.TypeDurationSecond, Query: true,
				Description: "Mint a new token if the cached one has less than this left."},
		}),
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: b.pathCredsRead,
				Summary:  "Return a valid access token: cached, refreshed or minted as needed.",
			},
			logical.DeleteOperation: &framework.PathOperation{
				Callback:                    b.pathCredsDelete,
				Summary:                     "Evict the cached access token (the refresh token is kept); the next read mints.",
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
			},
		},
		HelpSynopsis:    "Read a short-lived access token for a provider config.",
		HelpDescription: credsHelp,
	}}
}

const resetHelp = `
Clears what stops a name from serving: the cached access token, the refresh
token and its marks (needs_refresh_token, a refresh with no recorded answer),
and the backoff after failures. With refresh_token, the chain starts from that
seed; without, the next read mints by the base grant (client credentials or an
API key), which a seed-only config cannot do: give it a refresh_token.
`

const credsHelp = `
A read returns the cached access token while it is valid. Inside its refresh
window (refresh_ahead, at most half its lifetime) the read still returns at
once and one refresh runs in the background. Only a read with no valid token,
or one whose min_ttl asks for more than is left, waits for the provider.
The response has no Vault lease; rotation_period and ttl tell Vault Agent when
to read again. A delete evicts the cached access token (and the narrowed ones).

A narrowed read asks for less: scope (space- or comma-separated), audience,
resource (RFC 8707, repeatable), and for github_app repositories,
repository_ids and permissions (contents=read,issues=write), within the
config's allowed_scopes, allowed_audiences, allowed_resources (GitHub: its
repositories and permissions). Each distinct narrowing is cached like the
main token.
`

func (b *backend) pathCredsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	// The name comes straight from the path and min_ttl is decoded only when
	// sent: the field decoder is most of a cached read's allocations.
	name, _ := d.Raw["name"].(string)
	if err := validName(name); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	minTTL, vr, err := b.readFields(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	return b.readCreds(ctx, req.Storage, name, minTTL, anyConfig, vr)
}

// readFields are a creds read's min_ttl and narrowing (nil: none), each
// decoded only when sent.
func (b *backend) readFields(d *framework.FieldData) (minTTL int, vr *variantRequest, err error) {
	if len(d.Raw) <= 1 { // the name alone: the usual cached read looks up nothing more
		return 0, nil, nil
	}
	if minTTL, err = minTTLField(d); err != nil {
		return 0, nil, err
	}
	vr, err = b.variantOf(d)
	return minTTL, vr, err
}

// minTTLField is a read's min_ttl, decoded only when sent.
func minTTLField(d *framework.FieldData) (int, error) {
	if _, sent := d.Raw["min_ttl"]; !sent {
		return 0, nil
	}
	minTTL, _, err := field[int](d, "min_ttl")
	if err != nil {
		return 0, fmt.Errorf("min_ttl: %w", err)
	}
	return minTTL, nil
}

// reachable says whether a read may see name's snapshot (nil: no config):
// an error (a 404) when it may not.
type reachable func(name string, snap *snapshot) error

// anyConfig lets the ordinary paths (creds/, status/) reach any config.
func anyConfig(name string, snap *snapshot) error {
	if snap == nil {
		return errNoConfig(name)
	}
	return nil
}

// readCreds answers a read of name's token, if reach lets the caller see it.
// A narrowed read (vr) is served from name's variants (variants.go).
func (b *backend) readCreds(ctx context.Context, s logical.Storage, name string, minTTL int, reach reachable, vr *variantRequest) (*logical.Response, error) {
	snap, cold, err := b.snapshotAndConfig(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if err := reach(name, snap); err != nil {
		return nil, err
	}
	if vr != nil {
		return b.readVariant(ctx, name, snap, minTTL, vr)
	}

	now := b.now()
	w := want{minTTL: time.Duration(minTTL) * time.Second}
	if wait := snap.handoverWait(now); wait > 0 {
		// The renewal that ends this token is due within the handover:
		// wait for it and take the renewed token.
		w.renewedAfter = snap.servedUntil()
		if sleep(ctx, wait); ctx.Err() != nil {
			return nil, ctx.Err()
		}
		now = b.now()
	}
	var warning string
	result := readCached
	if !w.satisfiedBy(snap, now) {
		if b.cacheLog.IsDebug() {
			b.cacheLog.Debug("no usable cached token; waiting for the provider", "name", name, "min_ttl", w.minTTL)
		}
		fresh, err := b.obtain(ctx, name, w, cold)
		if snap, warning, result, err = fallBack(snap.counters, staleView(snap, fresh), fresh, err, now); err != nil {
			return nil, err
		}
		if result == readWaited {
			now = b.now()
		}
	} else if snap.refreshWanted(now, 0) && b.WriteSafeReplicationState() {
		if b.cacheLog.IsDebug() {
			b.cacheLog.Debug("serving the cached token and refreshing in the background", "name", name, "expires_at", snap.state.ExpiresAt)
		}
		b.refreshInBackground(name)
	}
	snap.counters.read(result)

	resp := credsResponse(snap, now)
	if warning != "" {
		resp.AddWarning(warning)
	} else if snap.failing > 0 {
		lastErr, at := snap.lastError()
		resp.AddWarning(fmt.Sprintf("the last refresh failed at %s: %v", at.UTC().Format(time.RFC3339), lastErr))
	}
	if left := snap.servedUntil().Sub(now); w.minTTL > left {
		if snap.renewalEndsServed() {
			resp.AddWarning(fmt.Sprintf("min_ttl %s is more than this token serves: the renewal planned in %s ends it (revokes_previous_token), and renewing sooner would end it for every other reader too",
				w.minTTL, left.Truncate(time.Second)))
		} else {
			resp.AddWarning(fmt.Sprintf("min_ttl %s is more than the provider's tokens live; this token has %s left", w.minTTL, left.Truncate(time.Second)))
		}
	}
	if snap.reauthorizeDue(now) {
		resp.AddWarning(fmt.Sprintf("the refresh token of %q expires at %s and its config cannot mint without one: write a new refresh_token to config/%s before then",
			name, snap.reauthorizeBy().UTC().Format(time.RFC3339), name))
	}
	return resp, nil
}

// credsResponse is the creds read's answer. It carries no lease: these tokens
// cannot be revoked, and a lease per read would flood Vault's expiration
// manager. rotation_period and ttl make Vault Agent re-read when the next
// token is due instead of on its default schedule.
func credsResponse(snap *snapshot, now time.Time) *logical.Response {
	v := snap.view
	data := map[string]any{
		"access_token":       v.accessToken,
		"token_type":         v.tokenType,
		"expires_at":         v.expiresAt,
		"expires_at_seconds": v.expiresAtSeconds,
		"rotation_period":    v.rotationPeriod,
		"ttl":                agentTTL(snap, now),
	}
	if v.scopes != nil {
		data["scopes"] = v.scopes
	}
	if x := v.extras; x != nil {
		if x.permissions != nil {
			data["permissions"], data["repositories"] = x.permissions, x.repositories
		}
		if x.authorizationParams != nil {
			data["authorization_params"] = x.authorizationParams
		}
	}
	return &logical.Response{Data: data}
}

// agentTTL is the response's ttl: the whole seconds until the token's
// refresh window, so Vault Agent (which re-reads at ttl+1 s) re-renders when
// the next token is served; at least minAgentTTL, so it does not spin on a
// token in its window, but never so much that Agent comes back after the
// token has ended: a token the next renewal ends (servedUntil) or, for a
// short-lived one, expiry. Down to 0 there: Agent then comes back in the
// handover before the renewal and takes the renewed token.
func agentTTL(snap *snapshot, now time.Time) int64 {
	left := int64(snap.servedUntil().Sub(now) / time.Second)
	if snap.renewalEndsServed() {
		return max(left-1, 0) // back by the renewal, in its handover
	}
	untilWindow := int64(snap.state.refreshAt(snap.settings.refreshAhead).Sub(now) / time.Second)
	return max(min(max(untilWindow, minAgentTTL), left-2), 0) // back a second before expiry
}

// staleView is what a read that found snap may still serve after a failed
// renewal left latest: the same token under latest's terms (a failure's
// backoff moves the renewal a served token counts to), else the token found,
// unless the chain's renewal ends it (a renewal may have happened, or the
// token was dropped as possibly ended). A token obtained but not yet saved is
// never served.
func staleView(found, latest *snapshot) *snapshot {
	if latest != nil && latest.state != nil && found.state != nil && latest.state.AccessToken == found.state.AccessToken {
		return latest
	}
	if found.renewalEndsServed() {
		return nil
	}
	return found
}

func (b *backend) pathCredsDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := nameField(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	if !b.WriteSafeReplicationState() {
		return nil, logical.ErrReadOnly
	}
	lock := b.lockFor(name)
	lock.Lock()
	defer lock.Unlock()
	b.dropVariants(name) // narrowed tokens go with the main one
	snap, err := b.snapshot(ctx, req.Storage, name)
	if err != nil || snap == nil || snap.state == nil {
		return nil, err
	}
	r, err := b.beginRenewal(ctx, req.Storage, name, snap, nil)
	if err != nil {
		return nil, err
	}
	evicted := snap.state
	if _, err = b.save(ctx, req.Storage, name, snap.withState(snap.state.withoutAccessToken())); err != nil {
		return nil, err
	}
	return b.revokeEvicted(ctx, r, evicted), nil // GitHub: best effort (below)
}

func (b *backend) pathCredsReset(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := nameField(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	seed, _, err := field[string](d, "refresh_token")
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	if !b.WriteSafeReplicationState() {
		return nil, logical.ErrReadOnly
	}
	lock := b.lockFor(name)
	lock.Lock()
	defer lock.Unlock()
	r, err := b.configured(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	var state *tokenState
	if seed = strings.TrimSpace(seed); seed != "" {
		state = &tokenState{RefreshToken: seed}
	}
	if err := r.cfg.validate(state != nil); err != nil {
		return logical.ErrorResponse("reset of %q: %s", name, err), nil
	}
	if _, err := b.save(ctx, req.Storage, name, r.snap.with(func(n *snapshot) {
		n.state = state
		n.health = n.health.cleared()
	})); err != nil {
		return nil, err
	}
	b.refreshLog.Info("chain reset by an operator", "name", name, "seeded", state != nil)
	return nil, nil
}

// revokeTimeout bounds the best-effort revocation of an evicted token.
const revokeTimeout = 10 * time.Second

// revokeEvicted revokes an evicted access token where the provider allows
// it (GitHub), best effort: a failure is a warning, the eviction stands.
func (b *backend) revokeEvicted(ctx context.Context, r renewal, evicted *tokenState) *logical.Response {
	ep := r.endpoint()
	if evicted == nil || evicted.AccessToken == "" || !ep.Revocable() {
		return nil
	}
	req := r.request(requestRevocation, ep.EffectiveTokenURL())
	req.timeout = min(req.timeout, revokeTimeout)
	err := b.send(ctx, req, func(ctx context.Context, c *provider.Client) error { return c.Revoke(ctx, ep, evicted.AccessToken) })
	if err != nil {
		resp := &logical.Response{}
		resp.AddWarning("the evicted token could not be revoked at the provider (it expires on its own): " + err.Error())
		return resp
	}
	b.providerLog.Info("evicted token revoked at the provider", "name", r.name)
	return nil
}
