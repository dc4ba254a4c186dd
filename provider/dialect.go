package provider

import "strings"

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

// row is one dialect: the parts its token requests are built from. Explicit
// Endpoint fields (AuthStyle, Encoding, RefreshURL) override its defaults.
type row struct {
	mint    grant // the base grant: a token without a refresh token
	refresh grant // continues a chain with a refresh token
	// auth is the client authentication of the base grant; refreshAuth, when
	// set, that of the refresh grant (Echo360 refreshes with client_id only).
	auth, refreshAuth AuthStyle
	encoding          Encoding
	// refreshPath, when set, is the refresh endpoint's path on the token URL's origin.
	refreshPath string
	// singleUseRefresh: a refresh token works once; one that comes back
	// without a successor must not be kept (sending it again would fail).
	singleUseRefresh bool
	// scopeArray: JSON bodies carry scope as an array, not a string.
	scopeArray bool
	// refreshByDefault: whether refresh tokens the provider sends are used.
	// A provider whose document says to call the token endpoint again at
	// expiry (the JSON OAuth API) may refuse the refresh grant.
	refreshByDefault bool
}

// dialects is the table of rows. Public documentation of each:
//   - oauth2: RFC 6749 §4.4 (client credentials) and §6 (refresh).
//   - oauth2_json: an OAuth API taking the RFC 6749 fields as a JSON body,
//     whose documentation says to call the token endpoint again at expiry.
//   - echo360: EchoVideo's API authentication documentation
//     (https://support.echo360.com/, "EchoVideo Public API: Authentication").
//   - apivideo: https://docs.api.video/reference/api/Authentication
//   - endorsed: Endorsed's API documentation, "Authentication" (POST /api/v1/auth/tokens).
var dialects = map[Dialect]row{
	OAuth2:     {mint: clientCredentials, refresh: refreshToken, auth: AuthBasic, encoding: EncodeForm, refreshByDefault: true},
	OAuth2JSON: {mint: clientCredentials, refresh: refreshToken, auth: AuthBody, encoding: EncodeJSON},
	Echo360: {mint: clientCredentials, refresh: refreshToken, auth: AuthBody, refreshAuth: AuthNone, encoding: EncodeForm,
		singleUseRefresh: true, refreshByDefault: true},
	APIVideo: {mint: apiVideoKey, refresh: apiVideoRefresh, encoding: EncodeJSON, refreshPath: "/auth/refresh",
		singleUseRefresh: true, refreshByDefault: true},
	Endorsed: {mint: clientCredentials, refresh: refreshToken, auth: AuthBody, encoding: EncodeForm, scopeArray: true, refreshByDefault: true},
}

// Valid reports whether d is a known dialect.
func (d Dialect) Valid() bool { _, ok := dialects[d]; return ok }

// DialectNames lists the known dialects for messages: "oauth2, oauth2_json, …".
func DialectNames() string {
	s := make([]string, len(Dialects))
	for i, d := range Dialects {
		s[i] = string(d)
	}
	return strings.Join(s, ", ")
}
