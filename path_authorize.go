package tokenbroker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathAuthorize(b *backend) []*framework.Path {
	return []*framework.Path{{
		// Before authorize/<name>: paths match in order, and a name never holds '/'.
		Pattern:      "authorize/(?P<name>[^/]+)/code$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "tokenbroker", OperationVerb: "complete", OperationSuffix: "authorization"},
		Fields: withFieldSchemas(map[string]*framework.FieldSchema{
			"name":  {Type: framework.TypeString, Description: "Name of the config being authorized."},
			"code":  {Type: framework.TypeString, Description: "The code the provider gave the user.", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
			"state": {Type: framework.TypeString, Description: "The state authorize/<name> returned.", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
		}, redirectParamFields()),
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				Callback:                    b.pathAuthorizeCode,
				Summary:                     "Complete a browser authorization with a code pasted from the provider's redirect.",
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
			},
		},
		HelpSynopsis:    "Complete a browser authorization by pasting its code.",
		HelpDescription: authorizeHelp,
	}, {
		Pattern:      "authorize/" + framework.MatchAllRegex("name"),
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "tokenbroker", OperationVerb: "start", OperationSuffix: "authorization"},
		Fields: map[string]*framework.FieldSchema{
			"name": {Type: framework.TypeString, Description: "Name of the config to connect to a user's account."},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				Callback:                    b.pathAuthorizeStart,
				Summary:                     "Start a browser authorization: returns the URL a user opens to connect the account.",
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
			},
		},
		HelpSynopsis:    "Connect a config to a user's account in a browser (authorization code with PKCE).",
		HelpDescription: authorizeHelp,
	}}
}

const authorizeHelp = `
A write to authorize/<name> returns url, state and expires_at. The user opens
url, signs in at the provider and approves; the provider sends the browser
back to redirect_uri. With redirect_uri set to https://<vault>/v1/<mount>/callback
Vault exchanges the code itself; otherwise paste the code (and the state) with
a write to authorize/<name>/code. An authorization works once, for 10 minutes;
a newer one for the same name replaces it. The chain is replaced only when the
provider answers the code with a token; until then the old chain keeps serving.
`

func (b *backend) pathAuthorizeStart(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := nameField(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	if !b.WriteSafeReplicationState() {
		return nil, logical.ErrReadOnly
	}
	authURL, state, expires, err := b.beginAuthorization(ctx, req.Storage, name, req.DisplayName, selfConnection{})
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{
		"url":        authURL,
		"state":      state,
		"expires_at": expires.UTC().Format(time.RFC3339),
	}}, nil
}

func (b *backend) pathAuthorizeCode(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := nameField(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	code, state, err := pastedCode(d, name)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	if err := b.finishAuthorization(ctx, req.Storage, name, state, codeAnswer{code: code, params: redirectParams(d)}); err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{"connected": true}}, nil
}

// pastedCode is a pasted code and its state, which must have been issued
// for name's authorization.
func pastedCode(d *framework.FieldData, name string) (code, state string, err error) {
	code, _, _ = field[string](d, "code")
	state, _, _ = field[string](d, "state")
	code, state = strings.TrimSpace(code), strings.TrimSpace(state)
	switch {
	case code == "" || state == "":
		return "", "", errors.New("code and state are required")
	case stateName(state) != name:
		return "", "", fmt.Errorf("this state was not issued for %q; nothing was changed", name)
	}
	return code, state, nil
}
