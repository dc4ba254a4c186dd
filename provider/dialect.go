// Package provider speaks the token endpoints tokenbroker brokers for: RFC 6749
// client credentials and refresh, and the seed providers' own dialects (Echo360,
// api.video, Endorsed, a JSON-bodied OAuth API). It builds token requests and
// parses token responses; it knows nothing about Vault.
package provider

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Dialect names one provider's wire format.
type Dialect string

const (
	OAuth2     Dialect = "oauth2"      // RFC 6749 §4.4 and §6, form body
	OAuth2JSON Dialect = "oauth2_json" // the same fields in a JSON body
	Echo360    Dialect = "echo360"     // client credentials; single-use refresh tokens, refreshed without the secret
	APIVideo   Dialect = "apivideo"    // {"apiKey"} and {"refreshToken"} JSON bodies
	Endorsed   Dialect = "endorsed"    // client credentials; JSON scope array, expires_in as a string
)

// Dialects lists every dialect, in the order the docs present them.
var Dialects = []Dialect{OAuth2, OAuth2JSON, Echo360, APIVideo, Endorsed}

// AuthStyle says where the client id and secret travel.
type AuthStyle string

const (
	AuthBasic AuthStyle = "basic" // HTTP Basic, id and secret form-urlencoded first (RFC 6749 §2.3.1)
	AuthBody  AuthStyle = "body"  // client_id and client_secret as request parameters
)

// Encoding says how request parameters are sent.
type Encoding string

const (
	EncodeForm  Encoding = "form"  // application/x-www-form-urlencoded body
	EncodeJSON  Encoding = "json"  // application/json body
	EncodeQuery Encoding = "query" // URL query string of a bodiless POST (Echo360's Swagger form)
)

// Grant is how a token is obtained.
type Grant string

const (
	GrantClientCredentials Grant = "client_credentials"
	GrantRefreshToken      Grant = "refresh_token"
	GrantAPIKey            Grant = "api_key"
)

// preset holds the wire defaults a dialect fills in; explicit Endpoint fields override them.
type preset struct {
	authStyle AuthStyle
	encoding  Encoding
	baseGrant Grant
	// refreshWithSecret: Echo360 refreshes with client_id + refresh_token only.
	refreshWithSecret bool
	// scopeArray: Endorsed wants scope as a JSON array in JSON bodies.
	scopeArray bool
	// refreshPath, when set, is the refresh endpoint's path on the token URL's origin.
	refreshPath string
	// singleUseRefresh: a refresh token works once; one that comes back without
	// a successor must not be kept (sending it again would fail).
	singleUseRefresh bool
}

var presets = map[Dialect]preset{
	OAuth2:     {authStyle: AuthBasic, encoding: EncodeForm, baseGrant: GrantClientCredentials, refreshWithSecret: true},
	OAuth2JSON: {authStyle: AuthBody, encoding: EncodeJSON, baseGrant: GrantClientCredentials, refreshWithSecret: true},
	Echo360:    {authStyle: AuthBody, encoding: EncodeForm, baseGrant: GrantClientCredentials, singleUseRefresh: true},
	APIVideo:   {encoding: EncodeJSON, baseGrant: GrantAPIKey, refreshPath: "/auth/refresh", singleUseRefresh: true},
	Endorsed:   {authStyle: AuthBody, encoding: EncodeForm, baseGrant: GrantClientCredentials, refreshWithSecret: true, scopeArray: true},
}

// Valid reports whether d is a known dialect.
func (d Dialect) Valid() bool { _, ok := presets[d]; return ok }

// Valid reports whether a is a known auth style.
func (a AuthStyle) Valid() bool { return a == AuthBasic || a == AuthBody }

// Valid reports whether e is a known encoding.
func (e Encoding) Valid() bool { return e == EncodeForm || e == EncodeJSON || e == EncodeQuery }

// reservedParams are set by the dialect itself; extra params may not override them.
var reservedParams = map[string]bool{
	"grant_type": true, "client_id": true, "client_secret": true, "refresh_token": true,
	"scope": true, "audience": true, "apiKey": true, "refreshToken": true,
}

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

func (e *Endpoint) preset() preset { return presets[e.Dialect] }

// EffectiveAuthStyle is the auth style in force once the preset is applied.
func (e *Endpoint) EffectiveAuthStyle() AuthStyle {
	if e.AuthStyle != "" {
		return e.AuthStyle
	}
	return e.preset().authStyle
}

// EffectiveEncoding is the encoding in force once the preset is applied.
func (e *Endpoint) EffectiveEncoding() Encoding {
	if e.Encoding != "" {
		return e.Encoding
	}
	return e.preset().encoding
}

// EffectiveRefreshURL is where refresh grants go.
func (e *Endpoint) EffectiveRefreshURL() string {
	if e.RefreshURL != "" {
		return e.RefreshURL
	}
	if p := e.preset().refreshPath; p != "" {
		if u, err := url.Parse(e.TokenURL); err == nil {
			return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: p}).String()
		}
	}
	return e.TokenURL
}

// BaseGrant is the grant that mints without a refresh token.
func (e *Endpoint) BaseGrant() Grant { return e.preset().baseGrant }

// KeepsRefreshToken reports whether a refresh token stays usable when a refresh
// answer carries no new one (RFC 6749 §6); single-use dialects say no.
func (e *Endpoint) KeepsRefreshToken() bool { return !e.preset().singleUseRefresh }

// CanMint reports whether the endpoint holds what its base grant needs, so a
// rejected refresh token can be healed by starting a new chain.
func (e *Endpoint) CanMint() bool {
	if e.BaseGrant() == GrantAPIKey {
		return e.APIKey != ""
	}
	return e.ClientID != "" && e.ClientSecret != ""
}

// Validate checks what the wire needs: a known dialect and styles, usable URLs,
// credentials for at least one grant (hasRefreshToken: a seed refresh token is held),
// and extra params that do not override the dialect's own.
func (e *Endpoint) Validate(hasRefreshToken bool) error {
	if !e.Dialect.Valid() {
		return fmt.Errorf("unknown provider %q (want one of %s)", e.Dialect, joinDialects())
	}
	if e.AuthStyle != "" && !e.AuthStyle.Valid() {
		return fmt.Errorf("unknown auth_style %q (want basic or body)", e.AuthStyle)
	}
	if e.Encoding != "" && !e.Encoding.Valid() {
		return fmt.Errorf("unknown encoding %q (want form, json or query)", e.Encoding)
	}
	if e.TokenURL == "" {
		return fmt.Errorf("token_url is required")
	}
	if err := CheckURL(e.TokenURL); err != nil {
		return fmt.Errorf("token_url: %w", err)
	}
	if e.RefreshURL != "" {
		if err := CheckURL(e.RefreshURL); err != nil {
			return fmt.Errorf("refresh_url: %w", err)
		}
	}
	for k := range e.ExtraParams {
		if k == "" || reservedParams[k] {
			return fmt.Errorf("extra_params may not set %q: the provider preset or a config field sets it", k)
		}
	}
	switch {
	case e.CanMint():
	case e.BaseGrant() == GrantAPIKey && hasRefreshToken:
	case e.BaseGrant() == GrantAPIKey:
		return fmt.Errorf("provider %s needs api_key (or a seed refresh_token)", e.Dialect)
	case e.ClientID == "":
		return fmt.Errorf("provider %s needs client_id", e.Dialect)
	case !hasRefreshToken:
		return fmt.Errorf("provider %s needs client_secret (or a seed refresh_token)", e.Dialect)
	}
	return nil
}

func joinDialects() string {
	s := make([]string, len(Dialects))
	for i, d := range Dialects {
		s[i] = string(d)
	}
	return strings.Join(s, ", ")
}

// CheckURL accepts https URLs, and http only for loopback hosts, so client
// secrets never cross a network in clear text.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL: %v", err)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("%q has no host", raw)
	}
	if u.User != nil {
		return fmt.Errorf("credentials in the URL are not allowed")
	}
	if u.Fragment != "" {
		return fmt.Errorf("a fragment is not allowed")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if IsLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("must use https (http is allowed only for loopback hosts)")
	default:
		return fmt.Errorf("scheme %q not allowed: must be https", u.Scheme)
	}
}

// IsLoopback reports whether host is localhost or a loopback IP (127.0.0.0/8, ::1).
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
