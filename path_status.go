package tokenbroker

import (
	"context"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathStatus(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern:      "status/?$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "tokenbroker", OperationSuffix: "statuses"},
			Fields:       listFields,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: b.pathNamesList,
					Summary:  "List the names whose status can be read, a page at a time with after and limit.",
				},
			},
			HelpSynopsis:    "List names with a status.",
			HelpDescription: "Lists every configured name; read status/<name> for its health.",
		},
		{
			Pattern:      "status/" + framework.MatchAllRegex("name"),
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "tokenbroker", OperationSuffix: "status"},
			Fields: map[string]*framework.FieldSchema{
				"name": {Type: framework.TypeString, Description: "Name of the config."},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.pathStatusRead,
					Summary:  "Show a name's token and refresh health, without secrets.",
				},
			},
			HelpSynopsis:    "Token and refresh health of one name, without secrets.",
			HelpDescription: statusHelp,
		},
	}
}

const statusHelp = `
Shows, for one name and without any secret: whether a token is cached and when
it expires, when and how the last token was obtained, counts of mints (base
grant), refreshes and failures since the plugin started on this node, the last
error and when, any backoff, whether the refresh chain needs a new seed
(needs_refresh_token), when the refresh token expires (refresh_token_expires_at,
when the provider says) and, for a chain whose config cannot mint, by when an
operator must write a new refresh_token (reauthorize_by), when the background
renews it next (next_renewal_at), what the provider does to the token served
when it issues the next (revokes_previous_token) and so until when reads are
served the cached token (served_until: its expiry, or where the renewal ends
it, that renewal). healthy is false when
the name cannot serve a token without operator action, its last provider call
failed, or reauthorize_by is less than 7 days away.
`

func (b *backend) pathStatusRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := nameField(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	return b.readStatus(ctx, req.Storage, name, anyConfig)
}

// readStatus answers a read of name's status, if reach lets the caller see it.
func (b *backend) readStatus(ctx context.Context, s logical.Storage, name string, reach reachable) (*logical.Response, error) {
	snap, err := b.snapshot(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if err := reach(name, snap); err != nil {
		return nil, err
	}
	now := b.now()
	st := snap.state
	if st == nil {
		st = &tokenState{}
	}
	lastErr, lastErrAt := snap.lastError()
	data := map[string]any{
		"provider":                 string(snap.settings.provider),
		"token_cached":             st.usableFor(now, 0),
		"refresh_token_held":       st.RefreshToken != "",
		"needs_refresh_token":      st.NeedsRefreshToken,
		"state_saved":              !snap.dirty,
		"last_grant":               string(st.Grant),
		"mints":                    snap.mints,
		"refreshes":                snap.refreshes,
		"failures":                 snap.failures,
		"consecutive_failures":     snap.failing,
		"last_success_at":          timeOrEmpty(snap.lastSuccessAt),
		"last_error_at":            timeOrEmpty(lastErrAt),
		"last_error":               "",
		"backoff_until":            timeOrEmpty(snap.holdsBack(now, true)),
		"expires_at":               timeOrEmpty(st.ExpiresAt),
		"issued_at":                timeOrEmpty(st.IssuedAt),
		"refresh_token_expires_at": timeOrEmpty(st.RefreshExpiresAt),
		"reauthorize_by":           timeOrEmpty(snap.reauthorizeBy()),
		"revokes_previous_token":   string(snap.settings.previousToken()),
		"served_until":             timeOrEmpty(snap.servedUntil()),
		"next_renewal_at":          timeOrEmpty(snap.refreshDueAt(snap.passDelay(name))),
		"narrowed_tokens":          b.entry(name).variants.len(), // on this node (variants.go)
		"healthy":                  !st.NeedsRefreshToken && snap.failing == 0 && !snap.dirty && !snap.reauthorizeDue(now),
	}
	if lastErr != nil {
		data["last_error"] = lastErr.Error()
	}
	if !st.ExpiresAt.IsZero() {
		data["expires_in_seconds"] = int64(st.ExpiresAt.Sub(now).Seconds())
	}
	if err := b.pendingStatus(ctx, s, name, snap, data); err != nil {
		return nil, err
	}
	return &logical.Response{Data: data}, nil
}
