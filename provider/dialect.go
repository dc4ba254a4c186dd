package provider

import (
	"net/url"
	"slices"
	"strings"
	"time"
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

// Presets of providers whose tokens a user (or a tenant's admin) authorizes:
// each row (below) carries the documented endpoints, client authentication,
// PKCE stance, scopes and refresh-token behaviour.
const (
	Google     Dialect = "google"
	Microsoft  Dialect = "microsoft"
	GitHub     Dialect = "github"
	Salesforce Dialect = "salesforce"
	Xero       Dialect = "xero"
	Intuit     Dialect = "intuit"
	Zoom       Dialect = "zoom"
	Box        Dialect = "box"
	Okta       Dialect = "okta"
	Auth0      Dialect = "auth0"
	Ory        Dialect = "ory"
)

// Machine credentials signed by a key (assertion.go): a GitHub App's
// installation tokens, Salesforce's JWT bearer flow.
const (
	GitHubApp     Dialect = "github_app"
	SalesforceJWT Dialect = "salesforce_jwt"
)

// Dialects lists every dialect, in the order the docs present them.
var Dialects = []Dialect{OAuth2, OAuth2JSON, Echo360, APIVideo, Endorsed,
	Google, Microsoft, GitHub, Salesforce, Xero, Intuit, Zoom, Box, Okta, Auth0, Ory,
	GitHubApp, SalesforceJWT}

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

	// A preset's endpoints; "{tenant}" stands for the customer's part (a
	// Microsoft tenant, an Okta or Auth0 domain), defaultTenant fills it
	// when none is given.
	authURL, tokenURL, deviceURL, defaultTenant string
	// pkce: the provider's PKCE default ("": S256); pkceRequired: it refuses
	// authorizations without.
	pkce         PKCE
	pkceRequired bool
	// authScopes are added to the scopes of every user authorization (the
	// one a refresh token needs); authParams are extra authorization
	// parameters, which a config's own override.
	authScopes []string
	authParams map[string]string
	// formPost: the provider documents response_mode=form_post for the
	// authorization code flow (OAuth 2.0 Form Post Response Mode): the code
	// then reaches the callback in a POST body, never in a URL. Set only
	// where the provider's own documentation says so (cited at the row).
	formPost bool
	// redirectParams: what the provider adds to its redirect besides code
	// and state that the app needs to call its API (Intuit: realmId, the
	// company the user connected).
	redirectParams []string
	// refreshLifetime: the refresh token's documented lifetime, used when an
	// answer announces none; reuseGrace: how long a rotated refresh token is
	// documented to work again.
	refreshLifetime, reuseGrace time.Duration

	// keyMint, when set, is the base grant once a signing key is held
	// (Google: a service account's JWT bearer); altMints are further base
	// grants a config may choose (Endpoint.Grant).
	keyMint  grant
	altMints []grant
	// exchange, when set, is RFC 8693 token exchange at the token URL
	// (grant_token_exchange.go), for providers that document it.
	exchange grant
	// narrowRefusals: the provider's words (a prefix of its
	// error_description) for refusing what a narrowing asked, when its
	// error code says something else (Error.NarrowingRefused).
	narrowRefusals []string
	// assertion: what the provider accepts of signed JWTs (assertion.go).
	assertion assertionRules
	// mintScopes: the base grant needs scopes (Microsoft, Okta).
	mintScopes bool
	// refreshScopes: a refresh sends the configured scopes, which the
	// provider requires on the refresh leg (Microsoft's v2 endpoint lists
	// scope as required in "Refresh the access token", and refuses a
	// refresh without it: AADSTS90014).
	refreshScopes bool
	// revocable: tokens can be revoked before they expire (Client.Revoke).
	revocable bool
	// revocationURL: the provider's RFC 7009 revocation endpoint
	// (Client.RevokeToken); userinfoURL: where the account a user connected
	// is read (Client.Account), in the format account says.
	revocationURL, userinfoURL string
	account                    accountFormat
	// previousToken: what the provider documents a new token does to the
	// one before ("": nothing, it lives until it expires).
	previousToken PreviousToken
	// timeout: a provider call's time limit when the config sets none
	// (0: the plugin's default).
	timeout time.Duration
}

// mints lists the base grants a config of the row may use, the default first.
func (r row) mints() []grant {
	out := []grant{r.mint}
	if r.keyMint.name != "" {
		out = append(out, r.keyMint)
	}
	return append(out, r.altMints...)
}

// RedirectParams lists what the provider adds to its redirect after a
// user's authorization, besides code and state, that the app needs to call
// its API (Intuit's realmId).
func (e *Endpoint) RedirectParams() []string { return e.row().redirectParams }

// AllRedirectParams lists the RedirectParams of every dialect, once each.
func AllRedirectParams() []string {
	var out []string
	for _, d := range Dialects {
		for _, p := range rowOf(d).redirectParams {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// DefaultTimeout is the dialect's time limit for one provider call (0: none of its own).
func (e *Endpoint) DefaultTimeout() time.Duration { return e.row().timeout }

// dialects is the table of rows. Public documentation of each:
//   - oauth2: RFC 6749 §4.4 (client credentials) and §6 (refresh).
//   - oauth2_json: an OAuth API taking the RFC 6749 fields as a JSON body,
//     whose documentation says to call the token endpoint again at expiry.
//   - echo360: EchoVideo's API authentication documentation
//     (https://support.echo360.com/, "EchoVideo Public API: Authentication").
//   - apivideo: https://docs.api.video/reference/api/Authentication
//   - endorsed: Endorsed's API documentation, "Authentication" (POST /api/v1/auth/tokens).
var dialects = map[Dialect]row{
	OAuth2: {mint: clientCredentials, refresh: refreshToken, auth: AuthBasic, encoding: EncodeForm, refreshByDefault: true,
		altMints: []grant{jwtBearer}, exchange: tokenExchange},
	OAuth2JSON: {mint: clientCredentials, refresh: refreshToken, auth: AuthBody, encoding: EncodeJSON},
	Echo360: {mint: clientCredentials, refresh: refreshToken, auth: AuthBody, refreshAuth: AuthNone, encoding: EncodeForm,
		singleUseRefresh: true, refreshByDefault: true},
	APIVideo: {mint: apiVideoKey, refresh: apiVideoRefresh, encoding: EncodeJSON, refreshPath: "/auth/refresh",
		singleUseRefresh: true, refreshByDefault: true},
	Endorsed: {mint: clientCredentials, refresh: refreshToken, auth: AuthBody, encoding: EncodeForm, scopeArray: true, refreshByDefault: true},

	// Presets (README: one worked example each). Refresh tokens are used;
	// a provider that rotates them sends a new one with each refresh.
	//   - google: https://developers.google.com/identity/protocols/oauth2/web-server
	//     and .../oauth2/limited-input-device; a refresh token comes only with
	//     access_type=offline, and again on re-consent only with prompt=consent.
	//     Those pages document no response_mode: form_post is left off (an
	//     issuer=https://accounts.google.com config follows its metadata).
	Google: {mint: userAuthorization, refresh: refreshToken, auth: AuthBody, encoding: EncodeForm, refreshByDefault: true,
		authURL: "https://accounts.google.com/o/oauth2/v2/auth", tokenURL: "https://oauth2.googleapis.com/token",
		deviceURL:  "https://oauth2.googleapis.com/device/code",
		authParams: map[string]string{"access_type": "offline", "prompt": "consent"},
		// Revocation: https://developers.google.com/identity/protocols/oauth2/web-server#tokenrevoke;
		// userinfo: https://developers.google.com/identity/openid-connect/openid-connect#obtaininguserprofileinformation
		// (the discovery document's userinfo_endpoint).
		revocationURL: "https://oauth2.googleapis.com/revoke",
		userinfoURL:   "https://openidconnect.googleapis.com/v1/userinfo",
		// A service account (https://developers.google.com/identity/protocols/oauth2/service-account#httprest):
		// an RS256 JWT bearer grant whose scope claim names the scopes, sub
		// only for domain-wide delegation, exp at most an hour after iat.
		keyMint: jwtBearer, assertion: assertionRules{algs: []string{RS256}, noSubject: true, scopeClaim: true}},
	//   - microsoft: https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow,
	//     .../v2-oauth2-device-code and .../v2-oauth2-client-creds-grant-flow;
	//     offline_access buys a refresh token.
	Microsoft: {mint: clientCredentials, refresh: refreshToken, auth: AuthBody, encoding: EncodeForm, refreshByDefault: true, refreshScopes: true,
		authURL:       "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
		tokenURL:      "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
		deviceURL:     "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/devicecode",
		defaultTenant: "common", authScopes: []string{"offline_access"},
		// Userinfo: https://learn.microsoft.com/en-us/entra/identity-platform/userinfo
		// (a Microsoft Graph access token with the openid scope). Microsoft
		// documents no RFC 7009 revocation endpoint: ending a user's refresh
		// tokens is Graph's revokeSignInSessions, an administrative call.
		userinfoURL: "https://graph.microsoft.com/oidc/userinfo",
		// response_mode=form_post: documented on the same page, "Request an
		// authorization code" (query, fragment or form_post).
		formPost: true,
		// Certificate credentials (https://learn.microsoft.com/en-us/entra/identity-platform/certificate-credentials):
		// a client assertion signed PS256 (or RS256), naming the certificate
		// by x5t#S256; client credentials need a scope (https://graph.microsoft.com/.default).
		assertion: assertionRules{algs: []string{PS256, RS256}, rsaAlg: PS256, x5tS256: true}, mintScopes: true,
		// A refresh for another resource's scope the user never consented to
		// is invalid_grant "AADSTS65001: The user or administrator has not
		// consented ..."; an unknown resource is "AADSTS500011: The resource
		// principal named ... was not found"
		// (https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes).
		// Neither ends the refresh token.
		narrowRefusals: []string{"AADSTS65001", "AADSTS500011"}},
	//   - github (user tokens of a GitHub App): https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-user-access-token-for-a-github-app
	//     and .../refreshing-user-access-tokens: 8 h access tokens, single-use
	//     refresh tokens (6 months, announced), errors inside HTTP 200.
	//     Using the refresh token also ends the old user access token.
	GitHub: {mint: userAuthorization, refresh: refreshToken, auth: AuthBody, encoding: EncodeForm, refreshByDefault: true,
		singleUseRefresh: true, previousToken: PreviousTokenEndsOnRefresh,
		authURL: "https://github.com/login/oauth/authorize", tokenURL: "https://github.com/login/oauth/access_token",
		deviceURL: "https://github.com/login/device/code",
		// No OpenID userinfo: the account is the REST API's authenticated
		// user, https://docs.github.com/en/rest/users/users#get-the-authenticated-user.
		// GitHub's token revocation is not RFC 7009 (DELETE
		// /applications/{client_id}/token, a JSON body): none is set.
		userinfoURL: GitHubAPI + "/user", account: accountGitHub},
	//   - salesforce: https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_web_server_flow.htm
	//     and ...id=sf.remoteaccess_pkce.htm (PKCE required for new connected
	//     apps); refresh_token scope; rotating refresh tokens when enabled.
	//     The web server flow's pages document no response_mode: form_post is left off.
	Salesforce: {mint: userAuthorization, refresh: refreshToken, auth: AuthBody, encoding: EncodeForm, refreshByDefault: true,
		authURL:  "https://login.salesforce.com/services/oauth2/authorize",
		tokenURL: "https://login.salesforce.com/services/oauth2/token",
		pkce:     PKCES256, pkceRequired: true, authScopes: []string{"refresh_token"},
		// https://help.salesforce.com/s/articleView?id=sf.remoteaccess_revoke_token.htm
		// and ...id=sf.remoteaccess_using_userinfo_endpoint.htm (a My Domain
		// or sandbox host serves the same paths).
		revocationURL: "https://login.salesforce.com/services/oauth2/revoke",
		userinfoURL:   "https://login.salesforce.com/services/oauth2/userinfo"},
	//   - xero: https://developer.xero.com/documentation/guides/oauth2/auth-flow/
	//     and .../oauth2/token-types/: 30-minute access tokens; a new refresh
	//     token with each refresh, the old one good for 30 more minutes; an
	//     unused refresh token expires after 60 days.
	Xero: {mint: userAuthorization, refresh: refreshToken, auth: AuthBasic, encoding: EncodeForm, refreshByDefault: true,
		singleUseRefresh: true,
		authURL:          "https://login.xero.com/identity/connect/authorize", tokenURL: "https://identity.xero.com/connect/token",
		authScopes: []string{"offline_access"}, refreshLifetime: 60 * 24 * time.Hour, reuseGrace: 30 * time.Minute,
		// Revoking a refresh token: the auth-flow page's "Revoking tokens"
		// (Basic client authentication, like its token endpoint).
		revocationURL: "https://identity.xero.com/connect/revocation"},
	//   - intuit (QuickBooks Online): https://developer.intuit.com/app/developer/qbo/docs/develop/authentication-and-authorization/oauth-2.0;
	//     the refresh token's lifetime comes as x_refresh_token_expires_in.
	Intuit: {mint: userAuthorization, refresh: refreshToken, auth: AuthBasic, encoding: EncodeForm, refreshByDefault: true,
		authURL:  "https://appcenter.intuit.com/connect/oauth2",
		tokenURL: "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer", pkce: PKCEOff,
		redirectParams: []string{"realmId"}},
	//   - zoom: https://developers.zoom.us/docs/integrations/oauth/: a new
	//     refresh token with each refresh, the old one then invalid (no
	//     lifetime kept: Zoom's support says 15 years, older pages 90 days);
	//     the device authorization grant (RFC 8628) for apps Zoom enabled it for.
	Zoom: {mint: userAuthorization, refresh: refreshToken, auth: AuthBasic, encoding: EncodeForm, refreshByDefault: true,
		singleUseRefresh: true,
		authURL:          "https://zoom.us/oauth/authorize", tokenURL: "https://zoom.us/oauth/token",
		deviceURL: "https://zoom.us/oauth/devicecode"},
	//   - box: https://developer.box.com/guides/authentication/oauth2/ and
	//     .../tokens/refresh/: single-use refresh tokens that live 60 days.
	Box: {mint: userAuthorization, refresh: refreshToken, auth: AuthBody, encoding: EncodeForm, refreshByDefault: true,
		singleUseRefresh: true,
		authURL:          "https://account.box.com/api/oauth2/authorize", tokenURL: "https://api.box.com/oauth2/token",
		pkce: PKCEOff, refreshLifetime: 60 * 24 * time.Hour,
		// https://developer.box.com/reference/post-oauth2-revoke/ (client_id,
		// client_secret and token in a form body).
		revocationURL: "https://api.box.com/oauth2/revoke"},
	//   - okta: https://developer.okta.com/docs/guides/implement-grant-type/authcodepkce/main/,
	//     .../device-authorization-grant/main/ and .../refresh-tokens/main/
	//     (the tenant is the Okta domain; its default authorization server;
	//     refresh tokens rotate when the app turns rotation on, the default
	//     for SPAs only, and a rotated one works again for 30 s by default).
	Okta: {mint: clientCredentials, refresh: refreshToken, auth: AuthBasic, encoding: EncodeForm, refreshByDefault: true,
		authURL:    "https://{tenant}/oauth2/default/v1/authorize",
		tokenURL:   "https://{tenant}/oauth2/default/v1/token",
		deviceURL:  "https://{tenant}/oauth2/default/v1/device/authorize",
		authScopes: []string{"offline_access"}, reuseGrace: 30 * time.Second,
		// https://developer.okta.com/docs/guides/revoke-tokens/main/ and the
		// OpenID Connect API's userinfo, both of the authorization server
		// that issued the token (here the default custom one: the org
		// server's /oauth2/v1/userinfo refuses its access tokens).
		revocationURL: "https://{tenant}/oauth2/default/v1/revoke",
		userinfoURL:   "https://{tenant}/oauth2/default/v1/userinfo",
		// response_mode=form_post: https://developer.okta.com/docs/api/openapi/okta-oauth/oauth/tag/CustomAS/
		// (the authorize operation's response_mode: fragment, form_post, query, okta_post_message).
		formPost: true,
		// Service apps (https://developer.okta.com/docs/guides/implement-oauth-for-okta-serviceapp/main/):
		// client credentials with private_key_jwt (RS256 or ES256 here),
		// scopes required; the org authorization server's token URL is
		// https://{domain}/oauth2/v1/token.
		assertion: assertionRules{algs: []string{RS256, ES256}}, mintScopes: true,
		// On-behalf-of token exchange (RFC 8693) at the same token URL:
		// https://developer.okta.com/docs/guides/set-up-token-exchange/main/.
		exchange: tokenExchange},
	//   - auth0: https://auth0.com/docs/get-started/authentication-and-authorization-flow/authorization-code-flow-with-pkce
	//     and .../device-authorization-flow (the tenant is the Auth0 domain).
	Auth0: {mint: userAuthorization, refresh: refreshToken, auth: AuthBody, encoding: EncodeForm, refreshByDefault: true,
		authURL: "https://{tenant}/authorize", tokenURL: "https://{tenant}/oauth/token",
		deviceURL: "https://{tenant}/oauth/device/code", authScopes: []string{"offline_access"},
		// https://auth0.com/docs/secure/tokens/refresh-tokens/revoke-refresh-tokens
		// (POST /oauth/revoke; refresh tokens only) and the Authentication
		// API's user profile, https://auth0.com/docs/api/authentication#user-profile.
		revocationURL: "https://{tenant}/oauth/revoke", userinfoURL: "https://{tenant}/userinfo",
		// response_mode=form_post: https://auth0.com/docs/authenticate/protocols/oauth
		// (the /authorize endpoint's response_mode: query, fragment, form_post, web_message).
		formPost: true},
	//   - ory (Ory Network, or a self-hosted Ory Hydra: the tenant is its
	//     public host): https://www.ory.sh/docs/oauth2-oidc (endpoints
	//     /oauth2/auth and /oauth2/token, client_secret_basic by default);
	//     offline_access buys a refresh token, which rotates; a refresh
	//     revokes the access token of the refreshed grant (previous_token.go).
	Ory: {mint: clientCredentials, refresh: refreshToken, auth: AuthBasic, encoding: EncodeForm, refreshByDefault: true,
		singleUseRefresh: true, previousToken: PreviousTokenEndsOnRefresh,
		authURL: "https://{tenant}/oauth2/auth", tokenURL: "https://{tenant}/oauth2/token",
		authScopes: []string{"offline_access"},
		// The same page's public endpoints: /oauth2/revoke (RFC 7009) and
		// /userinfo (https://www.ory.sh/docs/hydra/reference/api).
		revocationURL: "https://{tenant}/oauth2/revoke", userinfoURL: "https://{tenant}/userinfo"},

	// Machine credentials signed by a key:
	//   - github_app: grant_github_app.go cites GitHub's documents; big
	//     answers for tokens over hundreds of repositories take time.
	GitHubApp: {mint: githubInstallation, refresh: refreshToken, encoding: EncodeJSON,
		assertion: assertionRules{algs: []string{RS256}, appJWT: true, backdate: time.Minute, maxTTL: 10 * time.Minute},
		revocable: true, timeout: 2 * time.Minute},
	//   - salesforce_jwt: https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm:
	//     iss the consumer key, sub the user, aud the login host, exp within
	//     3 minutes, RS256; no refresh token and no expires_in.
	SalesforceJWT: {mint: jwtBearer, refresh: refreshToken, encoding: EncodeForm,
		tokenURL:  "https://login.salesforce.com/services/oauth2/token",
		assertion: assertionRules{algs: []string{RS256}, maxTTL: 3 * time.Minute, subject: true, audience: salesforceAudience}},
}

// salesforceAudience is https://test.salesforce.com for a sandbox's token
// URL, else https://login.salesforce.com (a My Domain URL included).
func salesforceAudience(e *Endpoint) string {
	if u, err := url.Parse(e.EffectiveTokenURL()); err == nil && strings.EqualFold(u.Hostname(), "test.salesforce.com") {
		return "https://test.salesforce.com"
	}
	return "https://login.salesforce.com"
}

// Preset is what a dialect's row documents about its provider's endpoints,
// for a config to fill in where it names none.
type Preset struct {
	AuthURL, TokenURL, DeviceURL string
	// RevocationURL and UserinfoURL: "" when the provider documents none.
	RevocationURL, UserinfoURL string
	// NeedsTenant: the URLs hold the customer's part and no default exists.
	NeedsTenant bool
	// ReuseGrace: how long a rotated refresh token works again.
	ReuseGrace time.Duration
}

// Preset returns d's documented endpoints with tenant filled in (the row's
// default tenant when "").
func (d Dialect) Preset(tenant string) Preset {
	r := dialects[d]
	if tenant == "" {
		tenant = r.defaultTenant
	}
	fill := func(u string) string { return strings.ReplaceAll(u, "{tenant}", tenant) }
	return Preset{
		AuthURL: fill(r.authURL), TokenURL: fill(r.tokenURL), DeviceURL: fill(r.deviceURL),
		RevocationURL: fill(r.revocationURL), UserinfoURL: fill(r.userinfoURL),
		NeedsTenant: tenant == "" && strings.Contains(r.tokenURL+r.authURL, "{tenant}"),
		ReuseGrace:  r.reuseGrace,
	}
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
