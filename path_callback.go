package tokenbroker

import (
	"bytes"
	"context"
	"errors"
	"html/template"
	"net/http"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// callbackPath is where the provider sends the user's browser back, without
// a Vault token (PathsSpecial.Unauthenticated): redirect_uri is
// https://<vault>/v1/<mount>/callback. The answer comes as a GET with a query
// (RFC 6749 §4.1.2), or as a POST of an application/x-www-form-urlencoded
// form (OAuth 2.0 Form Post Response Mode), which Vault's HTTP layer decodes
// into the request's data like a JSON body, and records in its audit log
// HMAC'd, where a GET's query stays in clear text in request_uri. Both are
// taken whatever the config asked for: a provider may answer an error by
// redirect even to a form_post request.
const callbackPath = "callback"

func pathCallback(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern:      callbackPath + "$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "tokenbroker", OperationVerb: "receive", OperationSuffix: "callback"},
		Fields: withFieldSchemas(map[string]*framework.FieldSchema{
			"code": {Type: framework.TypeString, Query: true, Description: "Authorization code (RFC 6749 §4.1.2).",
				DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
			"state": {Type: framework.TypeString, Query: true, Description: "The state of the authorization.",
				DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
			"error":             {Type: framework.TypeString, Query: true, Description: "The provider's error code (RFC 6749 §4.1.2.1)."},
			"error_description": {Type: framework.TypeString, Query: true, Description: "The provider's description of the error."},
		}, redirectParamFields()),
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: b.pathCallback,
				Summary:  "Receive the provider's redirect after a user's approval; answers a small HTML page.",
			},
			logical.UpdateOperation: &framework.PathOperation{
				Callback: b.pathCallback,
				Summary:  "Receive the provider's form POST (response_mode=form_post) after a user's approval; answers a small HTML page.",
			},
		},
		HelpSynopsis:    "Where the provider sends the user back after authorize/<name> (no Vault token needed).",
		HelpDescription: "Exchanges the code of a pending authorization for the chain's first token and answers an HTML page. The state works once; an unknown, used or expired state changes nothing.",
	}}
}

// pathCallback finishes the authorization that state names and answers a
// page saying how it went, for a GET and a form POST alike. The page repeats
// no code, state or token, and links nowhere: there is no redirect to follow.
func (b *backend) pathCallback(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if !b.WriteSafeReplicationState() {
		return nil, logical.ErrReadOnly // Vault forwards it to the node that can write
	}
	get := func(key string) string { v, _, _ := field[string](d, key); return v }
	state := get("state")
	name := stateName(state)
	if name == "" {
		return callbackPage(http.StatusBadRequest, "Authorization not recognised",
			"This link carries no authorization of this Vault (unknown or malformed state); nothing was changed."), nil
	}
	err := b.finishAuthorization(ctx, req.Storage, name, state,
		codeAnswer{code: get("code"), errCode: get("error"), errDescription: get("error_description"), params: redirectParams(d)})
	var coded logical.HTTPCodedError
	switch {
	case err == nil:
		return callbackPage(http.StatusOK, name+" connected", name+" connected"+b.connectedAccountLabel(name)+"; you can close this window."), nil
	case errors.Is(err, logical.ErrReadOnly):
		return nil, err
	case errors.As(err, &coded):
		return callbackPage(coded.Code(), "Authorization of "+name+" failed", coded.Error()), nil
	default:
		b.refreshLog.Error("authorization callback failed", "name", name, "error", err)
		return callbackPage(http.StatusInternalServerError, "Authorization of "+name+" failed", err.Error()), nil
	}
}

var callbackTemplate = template.Must(template.New("callback").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{{.Title}}</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 4em auto;">
<h1 id="title">{{.Title}}</h1>
<p id="message">{{.Message}}</p>
</body></html>
`))

// callbackPage is a raw HTML response; html/template escapes every value.
func callbackPage(status int, title, message string) *logical.Response {
	var buf bytes.Buffer
	_ = callbackTemplate.Execute(&buf, struct{ Title, Message string }{title, message})
	return &logical.Response{Data: map[string]any{
		logical.HTTPStatusCode:         status,
		logical.HTTPContentType:        "text/html; charset=utf-8",
		logical.HTTPRawBody:            buf.Bytes(),
		logical.HTTPCacheControlHeader: "no-store",
		logical.HTTPPragmaHeader:       "no-cache",
	}}
}
