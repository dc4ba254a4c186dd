package tokenbroker

import (
	"context"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathDevice(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern:      "device/" + framework.MatchAllRegex("name"),
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "tokenbroker", OperationVerb: "start", OperationSuffix: "device-authorization"},
		Fields: map[string]*framework.FieldSchema{
			"name": {Type: framework.TypeString, Description: "Name of the config to connect to a user's account."},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				Callback:                    b.pathDeviceStart,
				Summary:                     "Start a device authorization (RFC 8628): returns the user code and where to enter it.",
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
			},
		},
		HelpSynopsis:    "Connect a config to a user's account with a user code entered on any device (RFC 8628).",
		HelpDescription: deviceHelp,
	}}
}

const deviceHelp = `
A write to device/<name> asks the provider's device authorization endpoint for
a user code and returns user_code, verification_uri, verification_uri_complete,
expires_at and interval. The user opens verification_uri on any device, enters
the code and approves. Vault polls the token endpoint in the background every
interval (slower when the provider says slow_down) until the user approves,
denies or the code expires; status/<name> shows the pending authorization. A
newer device/<name> replaces a pending one. The chain is replaced only when the
provider answers with a token.
`

func (b *backend) pathDeviceStart(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := nameField(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	if !b.WriteSafeReplicationState() {
		return nil, logical.ErrReadOnly
	}
	p, err := b.beginDevice(ctx, req.Storage, name, req.DisplayName, selfConnection{})
	if err != nil {
		return nil, err
	}
	return deviceResponse(p), nil
}

// deviceResponse is what starting a device authorization answers: what the
// user enters where, until when; never the device code.
func deviceResponse(p *pendingDevice) *logical.Response {
	return &logical.Response{Data: map[string]any{
		"user_code":                 p.UserCode,
		"verification_uri":          p.VerificationURI,
		"verification_uri_complete": p.VerificationURIComplete,
		"expires_at":                p.ExpiresAt.UTC().Format(time.RFC3339),
		"interval":                  int64(p.Interval.Seconds()),
	}}
}
