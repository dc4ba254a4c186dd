package provider

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/url"
	"slices"
	"sort"
)

// The authorization code grant (RFC 6749 §4.1) with PKCE (RFC 7636): a user
// approves the client at the authorization endpoint, the provider sends the
// browser back to the redirect URI with a code, and the code, with the PKCE
// verifier only the client knows, buys the first token of a chain.

// GrantAuthorizationCode names the grant (RFC 6749 §4.1.3).
const GrantAuthorizationCode Grant = "authorization_code"

// PKCE is a config's proof-key mode (RFC 7636).
type PKCE string

const (
	PKCES256 PKCE = "S256" // code_challenge = BASE64URL(SHA256(verifier)) (§4.2)
	PKCEOff  PKCE = "off"  // no code_challenge: for providers that refuse one
)

// Valid reports whether p is a known mode.
func (p PKCE) Valid() bool { return p == PKCES256 || p == PKCEOff }

// NeedsAuthorization: the base grant of a user-only preset; only a user's
// authorization starts its chain.
const NeedsAuthorization Credential = "a user's authorization"

// userAuthorization is the base grant of a dialect whose tokens only a user
// can authorize: it never mints (CanMint is false), so a lost chain waits
// for the user to connect again.
var userAuthorization = grant{
	name:  GrantAuthorizationCode,
	oauth: true,
	needs: func(*Endpoint) Credential { return NeedsAuthorization },
}

// codeGrant redeems an authorization code: it names the client like the
// refresh grant does.
var codeGrant = grant{name: GrantAuthorizationCode, oauth: true}

// authReserved are the authorization parameters this file sets; a config's
// auth_params may not override them.
var authReserved = map[string]bool{
	"response_type": true, "client_id": true, "redirect_uri": true, "scope": true,
	"state": true, "code_challenge": true, "code_challenge_method": true, "response_mode": true,
}

// ResponseMode is how the provider returns the authorization response (code
// and state, or error) to the redirect URI (OAuth 2.0 Multiple Response Type
// Encoding Practices §2.1).
type ResponseMode string

const (
	// ResponseModeQuery: a redirect whose query carries the response, the
	// default for response_type=code (RFC 6749 §4.1.2). The code and state
	// then sit in a URL: browser history, proxies' and servers' logs (Vault's
	// audit log records a request's URI in clear text).
	ResponseModeQuery ResponseMode = "query"
	// ResponseModeFormPost: the provider answers a page that POSTs the
	// response as an application/x-www-form-urlencoded form to the redirect
	// URI (OAuth 2.0 Form Post Response Mode,
	// https://openid.net/specs/oauth-v2-form-post-response-mode-1_0.html):
	// no URL carries the code.
	ResponseModeFormPost ResponseMode = "form_post"
)

// Valid reports whether m is a known mode.
func (m ResponseMode) Valid() bool { return m == ResponseModeQuery || m == ResponseModeFormPost }

// DocumentsFormPost reports whether the provider documents
// response_mode=form_post for the authorization code flow (dialect.go).
func (e *Endpoint) DocumentsFormPost() bool { return e.row().formPost }

// AuthReserved reports whether an authorization parameter named key would
// override one the authorization request sets.
func AuthReserved(key string) bool { return key == "" || authReserved[key] }

// NewSecret returns 32 random bytes (256 bits), base64url: a state (RFC 6749
// §10.12) or a code verifier (RFC 7636 §4.1: 43 characters).
func NewSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go >= 1.24)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Challenge is verifier's S256 code challenge (RFC 7636 §4.2).
func Challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// EffectivePKCE is the PKCE mode in force once the dialect's default is applied.
func (e *Endpoint) EffectivePKCE() PKCE {
	switch {
	case e.PKCE != "":
		return e.PKCE
	case e.row().pkce != "":
		return e.row().pkce
	}
	return PKCES256
}

// PKCERequired reports whether the provider refuses authorizations without PKCE.
func (e *Endpoint) PKCERequired() bool { return e.row().pkceRequired }

// AuthorizationScopes are the scopes a user is asked for: the configured
// ones, then those the dialect always adds (offline_access).
func (e *Endpoint) AuthorizationScopes() []string {
	out := slices.Clone(e.Scopes)
	for _, s := range e.row().authScopes {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// AuthorizationURL is the URL a user opens to approve the client (RFC 6749
// §4.1.1): response_type=code, client_id, redirect_uri, scope, state, the S256
// code challenge of verifier (unless PKCE is off), and the extra parameters
// (the dialect's, then the endpoint's). A query in AuthURL is kept. The
// response comes back in the query (RFC 6749 §4.1.2).
func (e *Endpoint) AuthorizationURL(state, verifier string) (string, error) {
	return e.AuthorizationURLIn(ResponseModeQuery, state, verifier)
}

// AuthorizationURLIn is AuthorizationURL with the response coming back in
// mode: with form_post it carries response_mode=form_post; with query it
// carries no response_mode, query being the default for response_type=code
// (OAuth 2.0 Multiple Response Type Encoding Practices §2.1 advises against
// naming the default).
func (e *Endpoint) AuthorizationURLIn(mode ResponseMode, state, verifier string) (string, error) {
	if !mode.Valid() {
		return "", fmt.Errorf("unknown response mode %q (want query or form_post)", mode)
	}
	if e.AuthURL == "" {
		return "", fmt.Errorf("no authorization endpoint")
	}
	u, err := url.Parse(e.AuthURL)
	if err != nil {
		return "", fmt.Errorf("authorization endpoint: %w", err)
	}
	q := u.Query()
	for _, extra := range []map[string]string{e.row().authParams, e.AuthParams} {
		keys := make([]string, 0, len(extra))
		for k := range extra {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if !AuthReserved(k) {
				q.Set(k, extra[k])
			}
		}
	}
	q.Set("response_type", "code")
	q.Set("client_id", e.ClientID)
	if e.RedirectURI != "" {
		q.Set("redirect_uri", e.RedirectURI)
	}
	if scopes := e.AuthorizationScopes(); len(scopes) > 0 {
		q.Set("scope", param{"scope", scopes}.text())
	}
	q.Set("state", state)
	if e.EffectivePKCE() == PKCES256 {
		q.Set("code_challenge", Challenge(verifier))
		q.Set("code_challenge_method", string(PKCES256))
	}
	if mode == ResponseModeFormPost {
		q.Set("response_mode", string(ResponseModeFormPost))
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// ExchangeCode redeems code at the token endpoint (RFC 6749 §4.1.3): with the
// redirect URI the authorization named and, unless PKCE is off, the verifier
// (RFC 7636 §4.5). Errors are *Error and never carry the code or verifier.
func (c *Client) ExchangeCode(ctx context.Context, e *Endpoint, code, verifier string) (*Token, error) {
	r := e.Redactor(code, verifier)
	params := []param{{"grant_type", string(GrantAuthorizationCode)}, {"code", code}}
	if e.RedirectURI != "" {
		params = append(params, param{"redirect_uri", e.RedirectURI})
	}
	if e.EffectivePKCE() == PKCES256 {
		params = append(params, param{"code_verifier", verifier})
	}
	req, err := e.assemble(ctx, codeGrant, e.TokenURL, params)
	if err != nil {
		return nil, r.refusal(err)
	}
	return c.token(e, req, r)
}
