package provider

import (
	"context"
	"slices"
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
	// params lists what the request carries besides client authentication.
	// e is already narrowed (Endpoint.narrowed); in says the rest: the
	// refresh token, the narrowing's resources, a token exchange's subject.
	params func(e *Endpoint, in *TokenRequest) []param
	// narrows: what a Narrowing of this grant's requests may set.
	narrows narrowKinds
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
	// RFC 8693 §2.1; "resource" (RFC 8707) is not reserved, as configs name
	// one in their extra parameters: a narrowing's resources replace it.
	"subject_token": true, "subject_token_type": true, "actor_token": true, "actor_token_type": true,
	"requested_token_type": true,
}

// Reserved reports whether an extra parameter named key would override one
// that a grant or client authentication sets.
func Reserved(key string) bool { return key == "" || reservedParams[key] }

// param is one request parameter; value is a string, a []string (scope,
// space-delimited), or repeated (one parameter per value).
type param struct {
	key   string
	value any
}

// repeated values go as one parameter each (RFC 8707 §2.1: resource; RFC
// 8693 §2.1: audience), in a JSON body as an array when there are several.
type repeated []string

func (p param) text() string {
	switch v := p.value.(type) {
	case []string:
		return strings.Join(v, " ") // RFC 6749 §3.3: space-delimited
	case repeated:
		return strings.Join(v, " ") // only for a caller that cannot repeat; encode repeats
	}
	return p.value.(string)
}

// texts are p's values, one per parameter to send.
func (p param) texts() []string {
	if list, ok := p.value.(repeated); ok {
		return list
	}
	return []string{p.text()}
}

// narrowKinds are what a grant's requests can narrow (Narrowing's fields).
type narrowKinds uint8

const (
	narrowScopes       narrowKinds = 1 << iota
	narrowAudience                 // one audience
	narrowAudiences                // any number of audiences
	narrowResources                // RFC 8707 resource indicators
	narrowRepositories             // a GitHub installation's repositories and permissions
)

// refusal names what n asks that a grant of kinds k cannot carry ("" when
// it carries all of it): the request is refused rather than the narrowing
// dropped, which would hand out a wider token than asked for.
func (k narrowKinds) refusal(n *Narrowing) string {
	switch {
	case len(n.Scopes) > 0 && k&narrowScopes == 0:
		return "scopes"
	case len(n.Audiences) > 1 && k&narrowAudiences == 0 && k&narrowAudience != 0:
		return "more than one audience"
	case len(n.Audiences) > 0 && k&(narrowAudience|narrowAudiences) == 0:
		return "audiences"
	case len(n.Resources) > 0 && k&narrowResources == 0:
		return "resources"
	case (len(n.Repositories) > 0 || len(n.RepositoryIDs) > 0) && k&narrowRepositories == 0:
		return "repositories"
	case len(n.Permissions) > 0 && k&narrowRepositories == 0:
		return "permissions"
	}
	return ""
}

// resourceParams are the narrowing's resource indicators, repeated (RFC
// 8707 §2.1).
func (in *TokenRequest) resourceParams() []param {
	if in.Narrowing == nil || len(in.Narrowing.Resources) == 0 {
		return nil
	}
	return []param{{"resource", repeated(in.Narrowing.Resources)}}
}

// extraParams are the endpoint's own additions, in a stable order, less
// those set already (a narrowing's resource replaces a configured one).
func (e *Endpoint) extraParams(set []param) []param {
	keys := make([]string, 0, len(e.ExtraParams))
	for k := range e.ExtraParams {
		if !slices.ContainsFunc(set, func(p param) bool { return p.key == k }) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := make([]param, len(keys))
	for i, k := range keys {
		out[i] = param{k, e.ExtraParams[k]}
	}
	return out
}
