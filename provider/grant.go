package provider

import (
	"context"
	"sort"
	"strings"
)

// Grant names what a token request asks for.
type Grant string

const (
	GrantClientCredentials Grant = "client_credentials"
	GrantRefreshToken      Grant = "refresh_token"
	GrantAPIKey            Grant = "api_key"
)

// grant is one way to ask for a token. Each lives in a grant_*.go file.
type grant struct {
	name Grant
	// params lists what the request carries besides client authentication;
	// refreshToken is set for refresh grants only.
	params func(e *Endpoint, refreshToken string) []param
	// needs names the first credential e lacks for this grant ("" when none).
	needs func(e *Endpoint) Credential
	// oauth: an RFC 6749 token request, which carries the endpoint's extra
	// parameters and authenticates the client. api.video's requests carry
	// their own credential instead.
	oauth bool
	// refresh: continues a chain, at the refresh URL.
	refresh bool
	// authOptional: client authentication only when a style is set
	// explicitly (RFC 7523 §3.1: the JWT-bearer grant).
	authOptional bool
	// exchange, when set, makes the whole call itself: a grant that is not
	// an RFC 6749 token request (a GitHub App's installation token).
	exchange func(c *Client, ctx context.Context, e *Endpoint) (*Token, error)
}

func (g grant) ready(e *Endpoint) bool { return g.missing(e) == "" }

func (g grant) missing(e *Endpoint) Credential {
	if g.needs == nil {
		return ""
	}
	return g.needs(e)
}

// RefreshNeeds names what the refresh grant lacks ("" when it can be sent).
func (e *Endpoint) RefreshNeeds() Credential { return e.row().refresh.missing(e) }

// reservedParams are set by the grants and client authentications; extra
// parameters may not override them.
var reservedParams = map[string]bool{
	"grant_type": true, "client_id": true, "client_secret": true, "refresh_token": true,
	"scope": true, "audience": true, "apiKey": true, "refreshToken": true,
	"code": true, "code_verifier": true, "redirect_uri": true, "device_code": true,
	"assertion": true, "client_assertion": true, "client_assertion_type": true,
}

// Reserved reports whether an extra parameter named key would override one
// that a grant or client authentication sets.
func Reserved(key string) bool { return key == "" || reservedParams[key] }

// param is one request parameter; value is a string or, for scope, a []string.
type param struct {
	key   string
	value any
}

func (p param) text() string {
	if list, ok := p.value.([]string); ok {
		return strings.Join(list, " ") // RFC 6749 §3.3: space-delimited
	}
	return p.value.(string)
}

// extraParams are the endpoint's own additions, in a stable order.
func (e *Endpoint) extraParams() []param {
	keys := make([]string, 0, len(e.ExtraParams))
	for k := range e.ExtraParams {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]param, len(keys))
	for i, k := range keys {
		out[i] = param{k, e.ExtraParams[k]}
	}
	return out
}
