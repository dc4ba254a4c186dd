package tokenbroker

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// self/<app>/...: a Vault user's own connections. The caller's entity
// (req.EntityID) picks the connection, <app>.<entity id>; nothing here
// reaches another entity's, so one policy serves every user:
//
//	path "tokenbroker/self/*" { capabilities = ["read", "update", "delete"] }

func pathSelf(b *backend) []*framework.Path {
	appField := map[string]*framework.FieldSchema{"app": {Type: framework.TypeString, Description: "Name of the app."}}
	return []*framework.Path{{
		// Before self/<app>: paths match in order, and an app's name never holds '/'.
		Pattern:      "self/(?P<app>[^/]+)/authorize$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "tokenbroker", OperationVerb: "start", OperationSuffix: "self-authorization"},
		Fields:       appField,
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{Callback: b.pathSelfAuthorize, ForwardPerformanceStandby: true, ForwardPerformanceSecondary: true,
				Summary: "Start connecting your own account to an app in a browser: returns the URL to open."},
		},
		HelpSynopsis:    "Connect your own account to an app in a browser.",
		HelpDescription: selfHelp,
	}, {
		Pattern:      "self/(?P<app>[^/]+)/device$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "tokenbroker", OperationVerb: "start", OperationSuffix: "self-device-authorization"},
		Fields:       appField,
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{Callback: b.pathSelfDevice, ForwardPerformanceStandby: true, ForwardPerformanceSecondary: true,
				Summary: "Start connecting your own account to an app with a device code."},
		},
		HelpSynopsis:    "Connect your own account to an app with a device code.",
		HelpDescription: selfHelp,
	}, {
		Pattern:      "self/(?P<app>[^/]+)/code$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "tokenbroker", OperationVerb: "complete", OperationSuffix: "self-authorization"},
		Fields: withFieldSchemas(map[string]*framework.FieldSchema{
			"app":   appField["app"],
			"code":  {Type: framework.TypeString, Description: "The code the provider gave you.", DisplayAttrs: sensitive},
			"state": {Type: framework.TypeString, Description: "The state self/<app>/authorize returned.", DisplayAttrs: sensitive},
		}, redirectParamFields()),
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{Callback: b.pathSelfCode, ForwardPerformanceStandby: true, ForwardPerformanceSecondary: true,
				Summary: "Complete your browser authorization with a code pasted from the provider's redirect."},
		},
		HelpSynopsis:    "Complete your own authorization by pasting its code.",
		HelpDescription: selfHelp,
	}, {
		Pattern:      "self/(?P<app>[^/]+)/status$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "tokenbroker", OperationSuffix: "self-status"},
		Fields:       appField,
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{Callback: b.pathSelfStatus, Summary: "Show your connection's health and the account it holds, without secrets."},
		},
		HelpSynopsis:    "Your connection of an app: its health and account.",
		HelpDescription: selfHelp,
	}, {
		Pattern:      "self/(?P<app>[^/]+)$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "tokenbroker", OperationSuffix: "self-creds"},
		Fields: withNarrowingFields(map[string]*framework.FieldSchema{
			"app":     appField["app"],
			"min_ttl": {Type: framework.TypeDurationSecond, Query: true, Description: "Renew the token if it has less than this left."},
		}),
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{Callback: b.pathSelfRead, Summary: "Return a valid access token of your own connection of an app."},
			logical.DeleteOperation: &framework.PathOperation{Callback: b.pathSelfDelete, ForwardPerformanceStandby: true, ForwardPerformanceSecondary: true,
				Summary: "Disconnect: revoke the refresh token at the provider (where it can), then delete the connection."},
		},
		HelpSynopsis:    "Your own token of an app; delete to disconnect.",
		HelpDescription: selfHelp,
	}}
}

const selfHelp = `
Each Vault user (a token with an entity) connects their own account to an app
and reads their own token: write self/<app>/authorize (or self/<app>/device),
open the URL, approve; then read self/<app>. The connection is bound to the
entity that started it, whoever approves at the provider; the account it
holds is shown in self/<app>/status, and an app with identity_match=email
refuses an account that is not the user's. Delete self/<app> to disconnect:
the refresh token is revoked at the provider where it has a revocation
endpoint, then the connection is deleted. Operators reach the same connection
as config/<app>.<entity id> (creds/, status/).
`

// selfTarget is the caller's connection of the path's app: its name and who owns it.
func selfTarget(req *logical.Request, d *framework.FieldData) (name string, self selfConnection, err error) {
	app, _, err := field[string](d, "app")
	if err != nil {
		return "", self, logical.CodedError(http.StatusBadRequest, err.Error())
	}
	if err := validAppName(app); err != nil {
		return "", self, logical.CodedError(http.StatusBadRequest, err.Error())
	}
	entity, err := callerEntity(req)
	if err != nil {
		return "", self, err
	}
	return selfName(app, entity), selfConnection{App: app, Owner: entity}, nil
}

// ownedBy lets a self/ read reach only self's own connection: any other
// name, or none, is not found.
func ownedBy(self selfConnection) reachable {
	return func(_ string, snap *snapshot) error {
		if snap == nil || snap.owner != self.Owner {
			return logical.CodedError(http.StatusNotFound, fmt.Sprintf(
				"you have no connection of app %q: connect one with vault write -f tokenbroker/self/%s/authorize (or self/%s/device)", self.App, self.App, self.App))
		}
		return nil
	}
}

func (b *backend) pathSelfAuthorize(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, self, err := selfTarget(req, d)
	if err != nil {
		return nil, err
	}
	if !b.WriteSafeReplicationState() {
		return nil, logical.ErrReadOnly
	}
	authURL, state, expires, err := b.beginAuthorization(ctx, req.Storage, name, req.DisplayName, self)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{
		"url": authURL, "state": state, "expires_at": expires.UTC().Format(time.RFC3339), "connection": name,
	}}, nil
}

func (b *backend) pathSelfDevice(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, self, err := selfTarget(req, d)
	if err != nil {
		return nil, err
	}
	if !b.WriteSafeReplicationState() {
		return nil, logical.ErrReadOnly
	}
	p, err := b.beginDevice(ctx, req.Storage, name, req.DisplayName, self)
	if err != nil {
		return nil, err
	}
	resp := deviceResponse(p)
	resp.Data["connection"] = name
	return resp, nil
}

func (b *backend) pathSelfCode(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, _, err := selfTarget(req, d)
	if err != nil {
		return nil, err
	}
	code, state, err := pastedCode(d, name)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	if err := b.finishAuthorization(ctx, req.Storage, name, state, codeAnswer{code: code, params: redirectParams(d)}); err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{"connected": true, "connection": name}}, nil
}

func (b *backend) pathSelfRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, self, err := selfTarget(req, d)
	if err != nil {
		return nil, err
	}
	minTTL, vr, err := b.readFields(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	return b.readCreds(ctx, req.Storage, name, minTTL, ownedBy(self), vr)
}

func (b *backend) pathSelfStatus(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, self, err := selfTarget(req, d)
	if err != nil {
		return nil, err
	}
	resp, err := b.readStatus(ctx, req.Storage, name, ownedBy(self))
	if resp != nil {
		resp.Data["connection"] = name
	}
	return resp, err
}

func (b *backend) pathSelfDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, self, err := selfTarget(req, d)
	if err != nil {
		return nil, err
	}
	if !b.WriteSafeReplicationState() {
		return nil, logical.ErrReadOnly
	}
	return b.disconnect(ctx, req.Storage, name, self)
}

// disconnect ends self's connection name: its refresh token is revoked at
// the provider (RFC 7009) where the app has a revocation endpoint, then the
// connection is deleted. A revocation that fails keeps the connection, so
// no live refresh token is forgotten; disconnecting again retries it.
func (b *backend) disconnect(ctx context.Context, s logical.Storage, name string, self selfConnection) (*logical.Response, error) {
	lock := b.lockFor(name)
	lock.Lock()
	defer lock.Unlock()
	snap, err := b.snapshot(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if err := ownedBy(self)(name, snap); err != nil {
		return nil, err
	}
	r, err := b.beginRenewal(ctx, s, name, snap, nil)
	if err != nil {
		return nil, err
	}
	resp := &logical.Response{Data: map[string]any{"revoked": false, "connection": name}}
	ep := r.endpoint()
	switch st := snap.state; {
	case st == nil || st.RefreshToken == "":
	case ep.EffectiveRevocationURL() == "":
		resp.AddWarning("the app has no revocation endpoint (revocation_url): the refresh token was forgotten here, not revoked; end the app's access in your account's settings at the provider")
	default:
		err := b.send(ctx, r.request(requestRevocation, ep.EffectiveRevocationURL()), func(ctx context.Context, c *provider.Client) error {
			return c.RevokeToken(ctx, ep, st.RefreshToken, provider.HintRefreshToken)
		})
		if err != nil {
			return nil, logical.CodedError(http.StatusBadGateway, fmt.Sprintf(
				"the refresh token could not be revoked at the provider, so the connection is kept (disconnect again later): %v", err))
		}
		resp.Data["revoked"] = true
	}
	if err := b.deleteConfigLocked(ctx, s, name); err != nil {
		return nil, err
	}
	b.refreshLog.Info("connection disconnected by its owner", "name", name, "revoked", resp.Data["revoked"])
	return resp, nil
}
