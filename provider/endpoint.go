package provider

import (
	"net/url"
	"strings"
	"time"
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
	// PreviousToken: what a new token does to the one before; "" means the
	// dialect's default (previous_token.go).
	PreviousToken PreviousToken

	// A user's authorization (grant_authorization_code.go, grant_device_code.go).
	AuthURL     string            // authorization endpoint
	DeviceURL   string            // device authorization endpoint
	RedirectURI string            // where the provider sends the user back with a code
	PKCE        PKCE              // "" means the dialect's default
	AuthParams  map[string]string // extra authorization request parameters, over the dialect's

	// A user's connection (revoke.go, account.go); "" means the dialect's
	// documented endpoint, when it has one.
	RevocationURL string // RFC 7009 token revocation endpoint
	UserinfoURL   string // where the connected account is read (OpenID Connect Core §5.3, or GitHub's /user)

	// Signed assertions (assertion.go) and the base grant they allow.
	Grant     Grant       // "" means the dialect's default base grant
	Key       *SigningKey // nil: no signing key held
	Assertion Assertion
	// Installation is the GitHub App installation of a github_app endpoint.
	Installation *Installation
	// Now is the clock of assertion timestamps and of expiries sent as a
	// time (GitHub's expires_at); nil means time.Now.
	Now func() time.Time
}

func (e *Endpoint) row() row { return rowOf(e.Dialect) }

// rowOf looks a dialect's row up. It is a variable set by init because the
// rows hold grants whose functions look at rows: a direct reference would be
// an initialization cycle.
var rowOf func(Dialect) row

func init() { rowOf = func(d Dialect) row { return dialects[d] } }

// EffectiveAuthStyle is the base grant's client authentication once the
// dialect's default is applied.
// A client with a signing key and no secret uses private_key_jwt; a base
// grant whose client authentication is optional uses none.
func (e *Endpoint) EffectiveAuthStyle() AuthStyle {
	switch {
	case e.AuthStyle != "":
		return e.AuthStyle
	case e.mint().authOptional:
		return AuthNone
	case e.Key != nil && e.ClientSecret == "":
		return AuthPrivateKeyJWT
	}
	return e.row().auth
}

// EffectiveTokenURL is where the base grant goes: the configured token URL,
// else the dialect's (a GitHub App's: its installation's access_tokens URL).
// "" when the dialect's URL needs a tenant.
func (e *Endpoint) EffectiveTokenURL() string {
	switch {
	case e.TokenURL != "":
		return e.TokenURL
	case e.row().assertion.appJWT:
		return e.Installation.accessTokensURL()
	case !strings.Contains(e.row().tokenURL, "{tenant}"):
		return e.row().tokenURL
	}
	return ""
}

// presetURL is a row's URL as an endpoint uses it: "" when it needs a tenant
// (the config fills it in from Dialect.Preset).
func presetURL(u string) string {
	if strings.Contains(u, "{tenant}") {
		return ""
	}
	return u
}

// mint is the base grant: the one chosen (Grant) among the dialect's, else
// the dialect's grant for a held signing key, else its default.
func (e *Endpoint) mint() grant {
	r := e.row()
	for _, g := range r.mints() {
		if e.Grant != "" && g.name == e.Grant {
			return g
		}
	}
	if e.Key != nil && r.keyMint.name != "" {
		return r.keyMint
	}
	return r.mint
}

// BaseGrants lists the base grants a config of this dialect may choose.
func (e *Endpoint) BaseGrants() []Grant {
	var out []Grant
	for _, g := range e.row().mints() {
		out = append(out, g.name)
	}
	return out
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
		if u, err := url.Parse(e.EffectiveTokenURL()); err == nil {
			return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: p}).String()
		}
	}
	return e.EffectiveTokenURL()
}

// BaseGrant is the grant that mints without a refresh token.
func (e *Endpoint) BaseGrant() Grant { return e.mint().name }

// KeepsRefreshToken reports whether a refresh token stays usable when a refresh
// answer carries no new one (RFC 6749 §6); single-use dialects say no.
func (e *Endpoint) KeepsRefreshToken() bool { return !e.row().singleUseRefresh }

// RefreshesByDefault reports whether the dialect uses the refresh tokens its
// provider sends; one whose provider says "call the token endpoint again"
// does not.
func (e *Endpoint) RefreshesByDefault() bool { return e.row().refreshByDefault }

// CanMint reports whether the endpoint holds what its base grant needs, so a
// chain can always be started anew by the base grant.
func (e *Endpoint) CanMint() bool { return e.mint().ready(e) }

// MintNeeds names, for messages, what the base grant lacks ("" when CanMint).
func (e *Endpoint) MintNeeds() Credential {
	if e.CanMint() {
		return ""
	}
	return e.mint().missing(e)
}

// Credential names a credential a grant needs, in the wire's terms.
type Credential string

const (
	NeedsClientID     Credential = "client id"
	NeedsClientSecret Credential = "client secret"
	NeedsAPIKey       Credential = "API key"

	NeedsSigningKey       Credential = "signing key"
	NeedsCertificate      Credential = "certificate of the signing key"
	NeedsAssertionIssuer  Credential = "assertion issuer"
	NeedsAssertionSubject Credential = "assertion subject"
	NeedsScopes           Credential = "scopes"
	NeedsAppID            Credential = "app id"
	NeedsInstallation     Credential = "installation"
)
