package provider

import (
	"context"
	"errors"
)

// Token revocation (RFC 7009, https://datatracker.ietf.org/doc/html/rfc7009):
// when a user disconnects, the refresh token of the connection is revoked at
// the provider, so a copy of it left anywhere stops working.

// TokenTypeHint tells the revocation endpoint what kind of token is sent
// (RFC 7009 §2.1); a server may ignore it.
type TokenTypeHint string

const (
	HintRefreshToken TokenTypeHint = "refresh_token"
	HintAccessToken  TokenTypeHint = "access_token"
)

// ErrNoRevocationEndpoint: the endpoint has no revocation URL, configured
// or documented by its dialect.
var ErrNoRevocationEndpoint = errors.New("the provider has no token revocation endpoint")

// EffectiveRevocationURL is where RevokeToken goes: the configured URL, else
// the dialect's documented one ("" when there is none, or when it needs a
// tenant: Dialect.Preset fills that in).
func (e *Endpoint) EffectiveRevocationURL() string {
	if e.RevocationURL != "" {
		return e.RevocationURL
	}
	return presetURL(e.row().revocationURL)
}

// revocation authenticates the client as a user's authorization code and
// refresh grants do (RFC 7009 §2.1: "the client also includes its
// authentication credentials as described in Section 2.3 of [RFC6749]"),
// without the token request's extra parameters.
var revocation = codeGrant

// RevokeToken revokes token at the endpoint's revocation URL (RFC 7009 §2.1):
// a form-encoded POST of token and, when set, token_type_hint, with the
// client authentication of the token endpoint. Any 2xx means revoked, as
// does an unknown or already invalid token (§2.2: the server answers 200).
// A private_key_jwt assertion names the token endpoint as its audience,
// which RFC 7523 §3 lets an authorization server accept as its identity.
//
// Errors are ErrNoRevocationEndpoint, or *Error classified like a token
// request's (a 503 with Retry-After is Temporary with RetryAfter, §2.2.1)
// and never carrying the token or the client's secret.
func (c *Client) RevokeToken(ctx context.Context, e *Endpoint, token string, hint TokenTypeHint) error {
	target := e.EffectiveRevocationURL()
	if target == "" {
		return ErrNoRevocationEndpoint
	}
	if token == "" {
		return &Error{Class: Refused, Description: "no token to revoke"}
	}
	r := e.Redactor(token)
	params := []param{{"token", token}}
	if hint != "" {
		params = append(params, param{"token_type_hint", string(hint)})
	}
	// RFC 7009 §2.1 defines the form encoding only, whatever the token
	// endpoint's encoding.
	req, err := e.authenticated(ctx, EncodeForm, target, params, e.authFor(revocation))
	if err != nil {
		return r.refusal(err)
	}
	_, err = answer(c, req, r, parseRevocation)
	return err
}

// parseRevocation reads a revocation answer: a 2xx is success whatever its
// body (RFC 7009 §2.2), but a gateway's HTML page is not the provider's; any
// other status is an RFC 6749 §5.2 error (§2.2.1), read like a token
// endpoint's.
func parseRevocation(status int, contentType string, body []byte) (struct{}, error) {
	ok := status >= 200 && status <= 299
	if ok && !htmlPage(contentType, body) {
		return struct{}{}, nil
	}
	if _, err := parseResponse(status, contentType, body); err != nil {
		return struct{}{}, err
	}
	return struct{}{}, &Error{Class: classOf(status), Status: status, Description: "the provider refused the revocation"}
}
