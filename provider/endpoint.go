package provider

import (
	"net/url"
)

// Endpoint is one configured token endpoint and the credentials it takes.
type Endpoint struct {
	Dialect      Dialect
	TokenURL     string
	RefreshURL   string // "" means the dialect's default (token URL, or api.video's <origin>/auth/refresh)
	ClientID     string
	ClientSecret string
	APIKey       string
	Scopes       []string
	Audience     string
	ExtraParams  map[string]string
	AuthStyle    AuthStyle // "" means the dialect's default
	Encoding     Encoding  // "" means the dialect's default
}

func (e *Endpoint) row() row { return dialects[e.Dialect] }

// EffectiveAuthStyle is the base grant's client authentication once the
// dialect's default is applied.
func (e *Endpoint) EffectiveAuthStyle() AuthStyle {
	if e.AuthStyle != "" {
		return e.AuthStyle
	}
	return e.row().auth
}

// EffectiveEncoding is the encoding in force once the dialect's default is applied.
func (e *Endpoint) EffectiveEncoding() Encoding {
	if e.Encoding != "" {
		return e.Encoding
	}
	return e.row().encoding
}

// EffectiveRefreshURL is where refresh grants go.
func (e *Endpoint) EffectiveRefreshURL() string {
	if e.RefreshURL != "" {
		return e.RefreshURL
	}
	if p := e.row().refreshPath; p != "" {
		if u, err := url.Parse(e.TokenURL); err == nil {
			return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: p}).String()
		}
	}
	return e.TokenURL
}

// BaseGrant is the grant that mints without a refresh token.
func (e *Endpoint) BaseGrant() Grant { return e.row().mint.name }

// KeepsRefreshToken reports whether a refresh token stays usable when a refresh
// answer carries no new one (RFC 6749 §6); single-use dialects say no.
func (e *Endpoint) KeepsRefreshToken() bool { return !e.row().singleUseRefresh }

// RefreshesByDefault reports whether the dialect uses the refresh tokens its
// provider sends; one whose provider says "call the token endpoint again"
// does not.
func (e *Endpoint) RefreshesByDefault() bool { return e.row().refreshByDefault }

// CanMint reports whether the endpoint holds what its base grant needs, so a
// chain can always be started anew by the base grant.
func (e *Endpoint) CanMint() bool { return e.row().mint.ready(e) }

// MintNeeds names, for messages, what the base grant lacks ("" when CanMint).
func (e *Endpoint) MintNeeds() Credential {
	if e.CanMint() {
		return ""
	}
	return e.row().mint.missing(e)
}

// Credential names a credential a grant needs, in the wire's terms.
type Credential string

const (
	NeedsClientID     Credential = "client id"
	NeedsClientSecret Credential = "client secret"
	NeedsAPIKey       Credential = "API key"
)
