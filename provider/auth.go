package provider

import (
	"net/http"
)

// AuthStyle says how the client authenticates to the token endpoint.
type AuthStyle string

const (
	AuthBasic AuthStyle = "basic" // HTTP Basic, id and secret form-urlencoded first (RFC 6749 §2.3.1)
	AuthBody  AuthStyle = "body"  // client_id and client_secret as request parameters (RFC 6749 §2.3.1)
	AuthNone  AuthStyle = "none"  // a public client: client_id only (RFC 6749 §2.1, §3.2.1)
	// AuthPrivateKeyJWT: a JWT signed by the client's key (RFC 7523 §2.2).
	AuthPrivateKeyJWT AuthStyle = "private_key_jwt"
)

// AuthStyles lists the styles a config may choose.
var AuthStyles = []AuthStyle{AuthBasic, AuthBody, AuthNone, AuthPrivateKeyJWT}

// Valid reports whether a is a known auth style.
func (a AuthStyle) Valid() bool { return clientAuths[a] != nil }

// clientAuth adds one client authentication method to a token request. Each
// lives in an auth_*.go file.
type clientAuth func(e *Endpoint, params []param, header http.Header) []param

var clientAuths = map[AuthStyle]clientAuth{
	AuthBasic: authBasic,
	AuthBody:  authBody,
	AuthNone:  authNone,

	AuthPrivateKeyJWT: authPrivateKeyJWT,
}

// authFor picks the client authentication of a request for g: none for a
// grant whose client authentication is optional and not asked for, the
// refresh grant's own where the dialect has one, else the endpoint's style.
// A client without a secret (and no key) authenticates as a public client.
func (e *Endpoint) authFor(g grant) clientAuth {
	if g.authOptional && e.AuthStyle == "" {
		return authOmitted
	}
	style := e.EffectiveAuthStyle()
	if g.refresh && e.row().refreshAuth != "" {
		style = e.row().refreshAuth
	}
	if e.ClientSecret == "" && style != AuthPrivateKeyJWT {
		style = AuthNone
	}
	if a := clientAuths[style]; a != nil {
		return a
	}
	return authNone
}

// authNeeds names what the base grant's client authentication lacks: a
// signing key (and for Microsoft its certificate) for private_key_jwt, else
// a client secret.
func (e *Endpoint) authNeeds() Credential {
	if e.EffectiveAuthStyle() != AuthPrivateKeyJWT {
		if e.ClientSecret == "" {
			return NeedsClientSecret
		}
		return ""
	}
	switch {
	case e.Key == nil:
		return NeedsSigningKey
	case e.row().assertion.x5tS256 && len(e.Key.Certificate) == 0:
		return NeedsCertificate
	}
	return ""
}
