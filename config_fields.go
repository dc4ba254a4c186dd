package tokenbroker

import (
	"cmp"
	"context"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// The fields of config/<name>, one row each, in the README's order. A row
// tells a field's whole story: its schema, the step of a write that applies
// it, how a read shows it, and what changing it drops from the name's token
// state. A new field is one row here, a struct field in config.go (or
// config_signing.go) and a line in the README's table.

// applyStep is when a write applies a field. The steps run in this order
// (applyWrite): the fields issuer discovery and the presets read, then
// fillEndpoints (discovery.go) fills in the URLs left empty, then the
// signing fields, then the signing key (a service account file's token_uri
// wins over a preset's), then validate.
type applyStep int

const (
	// beforeEndpoints: the row's set.apply, before fillEndpoints.
	beforeEndpoints applyStep = iota
	// afterEndpoints: the row's set.apply, after fillEndpoints.
	afterEndpoints
	// withKey: applyKey (config_keys.go) makes the signing key from these
	// fields together, last.
	withKey
	// asSeed: refresh_token seeds the token state; it is never config.
	asSeed
	// asConnection: app makes the config a connection of an app, whose
	// entry holds nothing else (pathConfigWrite, app.go); an app never
	// takes it.
	asConnection
)

// changeEffect is what a write that changes a field's value drops from the
// name's token state.
type changeEffect int

const (
	// keepsTokens: the token and its chain stay good (timing, TLS, a user's
	// authorization, a rotated secret or key of the same client).
	keepsTokens changeEffect = iota
	// dropsAccessToken: the cached token no longer fits the request; the
	// refresh chain is kept and the next read mints a token that does.
	dropsAccessToken
	// dropsTokenState: tokens and chains of other credentials (another
	// client, provider, endpoint or signer) are worthless here.
	dropsTokenState
)

func (e changeEffect) String() string {
	return [...]string{"keeps the tokens", "drops the cached access token", "drops the token state"}[e]
}

// configField is one row of configFieldTable.
type configField struct {
	name   string
	schema *framework.FieldSchema
	step   applyStep
	// set ties the row to its struct field: how a write stores it, and the
	// value a change compares. Zero for the withKey and asSeed rows.
	set binding
	// readAs is the key a read shows the field under, when not its name: a
	// secret shows only whether it is set.
	readAs string
	// read is what a read shows, and whether it shows it; nil when another
	// row's key shows the field (service_account_json: private_key_set).
	read   func(v *configView) (any, bool)
	effect changeEffect
}

// configFieldTable is every field of config/<name> except the path's name.
var configFieldTable = []configField{
	{name: "app", schema: &framework.FieldSchema{Type: framework.TypeString,
		Description: "The app (app/<app>) whose client this config uses: the config is then one connection of the app, holding only its chain (and refresh_token, a seed for it); every other field is the app's. Set when the config is made; fixed after."},
		step: asConnection, set: text(func(c *providerConfig) *string { return &c.App }),
		read: func(v *configView) (any, bool) { return ifSet(v.App) }, effect: dropsTokenState},
	{name: "provider", schema: &framework.FieldSchema{Type: framework.TypeString, Default: string(provider.OAuth2),
		Description:   "Wire dialect: oauth2 (RFC 6749, form body), oauth2_json, echo360, apivideo or endorsed; or a provider preset (google, microsoft, github, salesforce, xero, intuit, zoom, box, okta, auth0) that also fills in its endpoints.",
		AllowedValues: dialectValues()},
		set:  text(func(c *providerConfig) *provider.Dialect { return &c.Provider }),
		read: func(v *configView) (any, bool) { return string(v.Provider), true }, effect: dropsTokenState},
	{name: "token_url", schema: &framework.FieldSchema{Type: framework.TypeString, Description: "Token endpoint URL. https only, except loopback hosts. Required unless a provider preset or issuer gives it."},
		// fillEndpoints fills it from the issuer or the preset when empty.
		set:  text(func(c *providerConfig) *string { return &c.TokenURL }),
		read: func(v *configView) (any, bool) { return v.ep.EffectiveTokenURL(), true }, effect: dropsTokenState},
	{name: "refresh_url", schema: &framework.FieldSchema{Type: framework.TypeString, Description: "Refresh endpoint URL, when not the token URL (apivideo derives <origin>/auth/refresh)."},
		set: text(func(c *providerConfig) *string { return &c.RefreshURL }),
		read: func(v *configView) (any, bool) {
			u := v.ep.EffectiveRefreshURL()
			return u, u != v.ep.EffectiveTokenURL()
		}, effect: dropsTokenState},
	{name: "client_id", schema: &framework.FieldSchema{Type: framework.TypeString, Description: "OAuth client id."},
		set:  text(func(c *providerConfig) *string { return &c.ClientID }),
		read: func(v *configView) (any, bool) { return ifSet(v.ClientID) }, effect: dropsTokenState},
	{name: "client_secret", schema: &framework.FieldSchema{Type: framework.TypeString, Description: "OAuth client secret. Write-only.", DisplayAttrs: sensitive},
		// A rotated secret authenticates the same client: its chain stays good.
		set: text(func(c *providerConfig) *string { return &c.ClientSecret }), readAs: "client_secret_set",
		read: func(v *configView) (any, bool) { return len(v.secrets()) > 0, true }, effect: keepsTokens},
	{name: "client_secrets", schema: &framework.FieldSchema{Type: framework.TypeCommaStringSlice, Description: "Further client secrets tried in order when the provider refuses client_secret (rotation without downtime); the first that works is kept first. Write-only.",
		DisplayAttrs: sensitive},
		set: list(func(c *providerConfig) *[]string { return &c.ClientSecrets }), readAs: "client_secrets_count",
		read: func(v *configView) (any, bool) { return len(v.secrets()), true }, effect: keepsTokens},
	{name: "api_key", schema: &framework.FieldSchema{Type: framework.TypeString, Description: "API key (apivideo). Write-only.", DisplayAttrs: sensitive},
		set: text(func(c *providerConfig) *string { return &c.APIKey }), readAs: "api_key_set",
		read: func(v *configView) (any, bool) { return v.APIKey != "", true }, effect: dropsTokenState},
	{name: "refresh_token", schema: &framework.FieldSchema{Type: framework.TypeString, Description: "Seed refresh token that starts a refresh chain. Write-only.", DisplayAttrs: sensitive},
		// The seed replaces the token state with a new chain (pathConfigWrite).
		step: asSeed, readAs: "refresh_token_set",
		read: func(v *configView) (any, bool) { return v.state != nil && v.state.RefreshToken != "", true }, effect: dropsTokenState},
	{name: "scopes", schema: &framework.FieldSchema{Type: framework.TypeCommaStringSlice, Description: "Scopes to request (list, or a comma-separated string)."},
		set:  list(func(c *providerConfig) *[]string { return &c.Scopes }),
		read: func(v *configView) (any, bool) { return ifSet(v.Scopes) }, effect: dropsAccessToken},
	{name: "audience", schema: &framework.FieldSchema{Type: framework.TypeString, Description: "Audience parameter to send with the base grant."},
		set:  text(func(c *providerConfig) *string { return &c.Audience }),
		read: func(v *configView) (any, bool) { return ifSet(v.Audience) }, effect: dropsAccessToken},
	{name: "allowed_scopes", schema: &framework.FieldSchema{Type: framework.TypeCommaStringSlice, Description: "Scopes a narrowed read (creds/<name> scope=...) or a role may ask for; none: no scope may be asked."},
		// Narrowed tokens are cached apart from the main one, and every
		// config write drops them (variants.go): the main token stays.
		set:  bound(func(c *providerConfig) *[]string { return &c.AllowedScopes }, allowedScopes),
		read: func(v *configView) (any, bool) { return ifSet(v.AllowedScopes) }, effect: keepsTokens},
	{name: "allowed_audiences", schema: &framework.FieldSchema{Type: framework.TypeCommaStringSlice, Description: "Audiences a narrowed read (audience=...) or a role may ask for; none: no audience may be asked."},
		set:  bound(func(c *providerConfig) *[]string { return &c.AllowedAudiences }, allowedAudiences),
		read: func(v *configView) (any, bool) { return ifSet(v.AllowedAudiences) }, effect: keepsTokens},
	{name: "allowed_resources", schema: &framework.FieldSchema{Type: framework.TypeCommaStringSlice, Description: "Resource indicators (RFC 8707: absolute URIs, no fragment) a narrowed read (resource=...) or a role may ask for; none: no resource may be asked."},
		set:  bound(func(c *providerConfig) *[]string { return &c.AllowedResources }, allowedResources),
		read: func(v *configView) (any, bool) { return ifSet(v.AllowedResources) }, effect: keepsTokens},
	{name: "extra_params", schema: &framework.FieldSchema{Type: framework.TypeKVPairs, Description: "Extra token-request parameters (map, or key=value pairs)."},
		set:  pairs(func(c *providerConfig) *map[string]string { return &c.ExtraParams }),
		read: func(v *configView) (any, bool) { return ifSet(v.ExtraParams) }, effect: dropsAccessToken},
	{name: "auth_style", schema: &framework.FieldSchema{Type: framework.TypeString, Description: "Client authentication: basic (HTTP Basic), body, none (a public client: client_id only), or private_key_jwt (a JWT signed by the config's key; the default when a key is held and no secret). Default: the provider's.",
		AllowedValues: allowedValues(provider.AuthStyles)},
		set:  text(func(c *providerConfig) *provider.AuthStyle { return &c.AuthStyle }),
		read: func(v *configView) (any, bool) { return string(v.ep.EffectiveAuthStyle()), true }, effect: dropsAccessToken},
	{name: "encoding", schema: &framework.FieldSchema{Type: framework.TypeString, Description: "Request encoding: form, json or query. Default: the provider's.",
		AllowedValues: allowedValues(provider.Encodings)},
		set:  text(func(c *providerConfig) *provider.Encoding { return &c.Encoding }),
		read: func(v *configView) (any, bool) { return string(v.ep.EffectiveEncoding()), true }, effect: dropsAccessToken},
	{name: "refresh_ahead", schema: &framework.FieldSchema{Type: framework.TypeDurationSecond, Default: int(defaultRefreshAhead.Seconds()),
		Description: "Refresh this long before expiry (never more than half the token's lifetime)."},
		set:  duration(func(c *providerConfig) *time.Duration { return &c.RefreshAhead }, 0, maxRefreshAhead),
		read: func(v *configView) (any, bool) { return seconds(v.RefreshAhead), true }, effect: keepsTokens},
	{name: "default_ttl", schema: &framework.FieldSchema{Type: framework.TypeDurationSecond, Default: int(defaultDefaultTTL.Seconds()),
		Description: "Token lifetime assumed when the provider sends no expiry."},
		set:  duration(func(c *providerConfig) *time.Duration { return &c.DefaultTTL }, minDefaultTTL, maxDefaultTTL),
		read: func(v *configView) (any, bool) { return seconds(v.DefaultTTL), true }, effect: keepsTokens},
	{name: "timeout", schema: &framework.FieldSchema{Type: framework.TypeDurationSecond, Default: int(defaultTimeout.Seconds()),
		Description: "Time limit for one provider call."},
		// A write that changes the provider and gives no timeout takes the
		// dialect's own, if it has one (applyWrite).
		set:  duration(func(c *providerConfig) *time.Duration { return &c.Timeout }, minTimeout, maxTimeout),
		read: func(v *configView) (any, bool) { return seconds(v.Timeout), true }, effect: keepsTokens},
	{name: "ca_pem", schema: &framework.FieldSchema{Type: framework.TypeString, Description: "PEM bundle to trust for the provider's TLS instead of the system roots."},
		set:  text(func(c *providerConfig) *string { return &c.CAPEM }),
		read: func(v *configView) (any, bool) { return ifSet(v.CAPEM) }, effect: keepsTokens},
	{name: "refresh_grant", schema: &framework.FieldSchema{Type: framework.TypeString,
		Description:   "auto: use the refresh tokens the provider sends, falling back to the base grant when one is refused; never: ignore refresh tokens and mint again at expiry. Default: the provider's (never for oauth2_json, else auto).",
		AllowedValues: []any{"auto", "never"}},
		set:  text(func(c *providerConfig) *string { return &c.RefreshGrant }),
		read: func(v *configView) (any, bool) { return v.refreshGrantInForce(), true }, effect: keepsTokens},
	{name: "revokes_previous_token", schema: &framework.FieldSchema{Type: framework.TypeString,
		Description:   "What the provider does to the access token served when it issues the next: never (it lives until it expires), on_refresh (a refresh revokes it: Ory Hydra and fosite, GitHub user tokens), on_new_token (one active token per client: any new token revokes it). Unless never, reads inside the refresh window wait for the renewal and expires_at and ttl count to it. Default: the provider's (on_refresh for github and ory, else never).",
		AllowedValues: []any{"never", "on_refresh", "on_new_token"}},
		set:  text(func(c *providerConfig) *provider.PreviousToken { return &c.PreviousToken }),
		read: func(v *configView) (any, bool) { return string(v.ep.EffectivePreviousToken()), true }, effect: keepsTokens},
	{name: "refresh_reuse_grace", schema: &framework.FieldSchema{Type: framework.TypeDurationSecond, Default: 0,
		Description: "How long the provider accepts a refresh token again after rotating it (Xero: 30m, Okta: 30s). Within it, a refresh whose answer was lost is retried once with the same token. 0 (default): never resend."},
		// fillEndpoints sets a preset's documented grace when the provider
		// changes and this is not given.
		set:  duration(func(c *providerConfig) *time.Duration { return &c.RefreshReuseGrace }, 0, maxRefreshReuseGrace),
		read: func(v *configView) (any, bool) { return seconds(v.RefreshReuseGrace), true }, effect: keepsTokens},

	// A user's authorization (onboarding.go): it changes how the next chain
	// starts, never the current one.
	{name: "auth_url", schema: &framework.FieldSchema{Type: framework.TypeString, Description: "Authorization endpoint, for authorize/<name> (default: the preset's or issuer's)."},
		set:  text(func(c *providerConfig) *string { return &c.AuthURL }),
		read: func(v *configView) (any, bool) { return ifSet(v.AuthURL) }, effect: keepsTokens},
	{name: "device_authorization_url", schema: &framework.FieldSchema{Type: framework.TypeString, Description: "Device authorization endpoint (RFC 8628), for device/<name> (default: the preset's or issuer's)."},
		set:  text(func(c *providerConfig) *string { return &c.DeviceURL }),
		read: func(v *configView) (any, bool) { return ifSet(v.DeviceURL) }, effect: keepsTokens},
	{name: "redirect_uri", schema: &framework.FieldSchema{Type: framework.TypeString, Description: "Where the provider sends the user back: https://<vault>/v1/<mount>/callback, registered with the provider."},
		set:  text(func(c *providerConfig) *string { return &c.RedirectURI }),
		read: func(v *configView) (any, bool) { return ifSet(v.RedirectURI) }, effect: keepsTokens},
	{name: "pkce", schema: &framework.FieldSchema{Type: framework.TypeString, Description: "PKCE for browser authorizations: S256 (default) or off.", AllowedValues: []any{"S256", "off"}},
		// fillEndpoints turns it off when the issuer says it does not do S256.
		set:  text(func(c *providerConfig) *provider.PKCE { return &c.PKCE }),
		read: func(v *configView) (any, bool) { return string(v.ep.EffectivePKCE()), v.authorizable() || v.PKCE != "" }, effect: keepsTokens},
	{name: "auth_params", schema: &framework.FieldSchema{Type: framework.TypeKVPairs, Description: "Extra authorization parameters (map, or key=value pairs), e.g. prompt=consent."},
		set:  pairs(func(c *providerConfig) *map[string]string { return &c.AuthParams }),
		read: func(v *configView) (any, bool) { return ifSet(v.AuthParams) }, effect: keepsTokens},
	{name: "issuer", schema: &framework.FieldSchema{Type: framework.TypeString, Description: "OAuth/OpenID issuer URL: its published metadata fills in token_url, auth_url and device_authorization_url at write time."},
		// fillEndpoints fetches its metadata: the URLs it fills carry their
		// own effects (a new token_url drops the token state).
		set:  text(func(c *providerConfig) *string { return &c.Issuer }),
		read: func(v *configView) (any, bool) { return ifSet(v.Issuer) }, effect: keepsTokens},
	{name: "revocation_url", schema: &framework.FieldSchema{Type: framework.TypeString, Description: "Token revocation endpoint (RFC 7009): a user's disconnect (self/<app> delete) revokes the refresh token there (default: the preset's or issuer's)."},
		set: text(func(c *providerConfig) *string { return &c.RevocationURL }),
		read: func(v *configView) (any, bool) {
			u := v.ep.EffectiveRevocationURL()
			return u, u != ""
		}, effect: keepsTokens},
	{name: "userinfo_url", schema: &framework.FieldSchema{Type: framework.TypeString, Description: "Where the account a user connects is read (OpenID Connect userinfo; GitHub's /user): its subject and email are shown and, with identity_match, checked (default: the preset's or issuer's)."},
		set: text(func(c *providerConfig) *string { return &c.UserinfoURL }),
		read: func(v *configView) (any, bool) {
			u := v.ep.EffectiveUserinfoURL()
			return u, u != ""
		}, effect: keepsTokens},
	{name: "identity_match", schema: &framework.FieldSchema{Type: framework.TypeString, AllowedValues: []any{"none", "email"},
		Description: "For connections users make through self/: email refuses an account whose verified email (from userinfo_url) is not one Vault knows for the user's entity (its metadata's or an alias's email, or an alias named by an address); nothing is stored then. none (default): any account, always shown."},
		set:  text(func(c *providerConfig) *string { return &c.IdentityMatch }),
		read: func(v *configView) (any, bool) { return ifSet(v.IdentityMatch) }, effect: keepsTokens},
	{name: "response_mode", schema: &framework.FieldSchema{Type: framework.TypeString, AllowedValues: []any{"form_post", "query"},
		Description: "How the provider returns the code to redirect_uri: form_post (a POST: no URL, browser history or audit log holds the code) or query. Default: form_post where the preset or the issuer's metadata says the provider supports it and redirect_uri is a Vault callback (…/v1/…/callback), else query."},
		set: text(func(c *providerConfig) *provider.ResponseMode { return &c.ResponseMode }),
		read: func(v *configView) (any, bool) {
			return string(v.responseMode()), v.authorizable() || v.ResponseMode != ""
		}, effect: keepsTokens},
	{name: "tenant", schema: &framework.FieldSchema{Type: framework.TypeString, Description: "The account's part of a preset's URLs: a Microsoft tenant (default common), an Okta or Auth0 domain."},
		// fillEndpoints moves the preset's URLs with it: a new token_url
		// drops the token state by its own row.
		set: text(func(c *providerConfig) *string { return &c.Tenant }),
		read: func(v *configView) (any, bool) {
			tenant, uses := v.tenantInForce()
			return tenant, uses && tenant != ""
		}, effect: keepsTokens},

	// Signed credentials (config_signing.go): shown when a key is held, the
	// dialect signs, or (a GitHub App's) for github_app.
	{name: "grant", schema: &framework.FieldSchema{Type: framework.TypeString,
		Description: "The base grant, where the provider offers a choice: client_credentials or jwt_bearer (RFC 7523 §2.1). Default: the provider's (google: jwt_bearer once a service account key is held)."},
		step: afterEndpoints, set: text(func(c *providerConfig) *provider.Grant { return &c.Grant }),
		read: func(v *configView) (any, bool) {
			grant := v.ep.BaseGrant()
			return string(grant), v.key != nil || v.Grant != "" || v.ep.Installation != nil || grant == provider.GrantJWTBearer
		}, effect: dropsTokenState},
	{name: "private_key", schema: &framework.FieldSchema{Type: framework.TypeString, DisplayAttrs: sensitive,
		Description: "PEM private key that signs assertions: PKCS#1 or PKCS#8 RSA, SEC1 or PKCS#8 EC P-256. Write-only; replaces the current key (key/<name>/rotate replaces it without downtime)."},
		// A new key signs for the same client: its tokens stay good.
		step: withKey, readAs: "private_key_set",
		read: func(v *configView) (any, bool) { return v.key != nil, true }, effect: keepsTokens},
	{name: "generate_key", schema: &framework.FieldSchema{Type: framework.TypeString, AllowedValues: allowedValues(generatedKeyTypes),
		Description: "Make the signing key inside the plugin (it never leaves it): rsa-2048, rsa-3072, rsa-4096 or ec-p256. Exclusive with private_key; writing the same type again keeps the key. Read the public key at key/<name>."},
		step: withKey, readAs: "key_generated",
		read: func(v *configView) (any, bool) { return v.key != nil && v.key.stored.Generated != "", v.key != nil }, effect: keepsTokens},
	{name: "service_account_json", schema: &framework.FieldSchema{Type: framework.TypeString, DisplayAttrs: sensitive,
		Description: "A Google service account key file (JSON): its private_key signs (kid private_key_id), client_email is the issuer, token_uri the audience and token URL. Write-only."},
		// It sets assertion_issuer and token_url, whose rows drop the token
		// state when they change; its key alone keeps the tokens.
		step: withKey, effect: keepsTokens},
	{name: "certificate", schema: &framework.FieldSchema{Type: framework.TypeString,
		Description: "PEM X.509 certificate of the signing key: adds the x5t and x5t#S256 headers (required by microsoft; made self-signed for a generated key)."},
		step: withKey, readAs: "certificate_set",
		read: func(v *configView) (any, bool) { return v.key != nil && v.key.cert != nil, v.key != nil }, effect: keepsTokens},
	{name: "key_id", schema: &framework.FieldSchema{Type: framework.TypeString, Description: "The kid header of the signing key. Default: its RFC 7638 JWK thumbprint."},
		step: withKey,
		read: func(v *configView) (any, bool) {
			if v.key == nil {
				return nil, false
			}
			return v.key.kid, true
		}, effect: keepsTokens},
	{name: "signing_alg", schema: &framework.FieldSchema{Type: framework.TypeString, AllowedValues: []any{provider.RS256, provider.PS256, provider.ES256},
		Description: "Signature algorithm: RS256 (RSA default; microsoft: PS256), PS256, or ES256 (EC default)."},
		step: afterEndpoints, set: text(func(c *providerConfig) *string { return &c.SigningAlg }),
		read: func(v *configView) (any, bool) { return v.ep.SigningAlgorithm(), v.key != nil }, effect: keepsTokens},
	{name: "assertion_issuer", schema: &framework.FieldSchema{Type: framework.TypeString, Description: "iss of the grant's assertions. Default: client_id (github_app: app_id)."},
		step: afterEndpoints, set: text(func(c *providerConfig) *string { return &c.AssertionIssuer }),
		read: func(v *configView) (any, bool) { return ifSigning(v, v.ep.AssertionIssuer()) }, effect: dropsTokenState},
	{name: "assertion_subject", schema: &framework.FieldSchema{Type: framework.TypeString, Description: "sub of the grant's assertions. Default: client_id; salesforce_jwt: the user (required); google: the user to act as (domain-wide delegation)."},
		step: afterEndpoints, set: text(func(c *providerConfig) *string { return &c.AssertionSubject }),
		read: func(v *configView) (any, bool) { return ifSigning(v, v.ep.AssertionSubject()) }, effect: dropsTokenState},
	{name: "assertion_audience", schema: &framework.FieldSchema{Type: framework.TypeString, Description: "aud of every assertion. Default: the token URL (salesforce_jwt: https://login.salesforce.com or https://test.salesforce.com)."},
		step: afterEndpoints, set: text(func(c *providerConfig) *string { return &c.AssertionAudience }),
		read: func(v *configView) (any, bool) { return ifSigning(v, v.ep.AssertionAudience()) }, effect: dropsTokenState},
	{name: "assertion_ttl", schema: &framework.FieldSchema{Type: framework.TypeDurationSecond, Default: int(provider.DefaultAssertionTTL.Seconds()),
		Description: "exp − iat of each assertion (30s–1h; salesforce_jwt at most 3m, github_app 10m). iat is 30 s in the past."},
		step: afterEndpoints, set: duration(func(c *providerConfig) *time.Duration { return &c.AssertionTTL }, provider.MinAssertionTTL, provider.MaxAssertionTTL),
		read: func(v *configView) (any, bool) { return seconds(v.ep.AssertionTTL()), v.key != nil }, effect: keepsTokens},
	{name: "assertion_claims", schema: &framework.FieldSchema{Type: framework.TypeMap, Description: "Extra claims of each assertion (JSON map); may not set iss, sub, aud, iat, exp, nbf or jti."},
		step: afterEndpoints, set: claims(),
		read: func(v *configView) (any, bool) { return ifSigning(v, v.AssertionClaims) }, effect: dropsAccessToken},
	{name: "app_id", schema: &framework.FieldSchema{Type: framework.TypeString, Description: "github_app: the GitHub App's id (the app JWT's iss)."},
		step: afterEndpoints, set: text(func(c *providerConfig) *string { return &c.AppID }),
		read: func(v *configView) (any, bool) { return ifInstallation(v, v.AppID) }, effect: dropsTokenState},
	{name: "installation_id", schema: &framework.FieldSchema{Type: framework.TypeString, Description: "github_app: the installation whose tokens to mint."},
		step: afterEndpoints, set: text(func(c *providerConfig) *string { return &c.InstallationID }),
		read: func(v *configView) (any, bool) { return ifInstallation(v, v.InstallationID) }, effect: dropsTokenState},
	{name: "installation_owner", schema: &framework.FieldSchema{Type: framework.TypeString, Description: "github_app: an organization or user whose installation is looked up once (instead of installation_id) and kept."},
		step: afterEndpoints, set: installationOwner(),
		read: func(v *configView) (any, bool) { return ifInstallation(v, v.InstallationOwner) }, effect: dropsTokenState},
	{name: "api_url", schema: &framework.FieldSchema{Type: framework.TypeString, Description: "github_app: the REST API, https://api.github.com (default) or GitHub Enterprise Server's https://HOST/api/v3."},
		step: afterEndpoints, set: text(func(c *providerConfig) *string { return &c.APIURL }),
		read: func(v *configView) (any, bool) { return cmp.Or(v.APIURL, provider.GitHubAPI), v.ep.Installation != nil }, effect: dropsTokenState},
	{name: "repositories", schema: &framework.FieldSchema{Type: framework.TypeCommaStringSlice, Description: "github_app: repository names the token is limited to."},
		step: afterEndpoints, set: list(func(c *providerConfig) *[]string { return &c.Repositories }),
		read: func(v *configView) (any, bool) { return ifInstallation(v, v.Repositories) }, effect: dropsAccessToken},
	{name: "repository_ids", schema: &framework.FieldSchema{Type: framework.TypeCommaIntSlice, Description: "github_app: repository ids the token is limited to."},
		step: afterEndpoints, set: bound(func(c *providerConfig) *[]int64 { return &c.RepositoryIDs }, repositoryIDs),
		read: func(v *configView) (any, bool) { return ifInstallation(v, v.RepositoryIDs) }, effect: dropsAccessToken},
	{name: "permissions", schema: &framework.FieldSchema{Type: framework.TypeKVPairs, Description: "github_app: permissions the token is limited to, e.g. contents=read,issues=write."},
		step: afterEndpoints, set: pairs(func(c *providerConfig) *map[string]string { return &c.Permissions }),
		read: func(v *configView) (any, bool) { return ifInstallation(v, v.Permissions) }, effect: dropsAccessToken},
}

// sensitive marks a secret's schema: write-only, type-checked before the
// framework decodes it (fields.go).
var sensitive = &framework.DisplayAttributes{Sensitive: true}

// configFields are config/<name>'s schemas: the path's name and every row's.
var configFields = func() map[string]*framework.FieldSchema {
	out := map[string]*framework.FieldSchema{
		"name": {Type: framework.TypeString, Description: "Name of the config; letters, digits, '-', '_' and '.'."},
	}
	for _, f := range configFieldTable {
		out[f.name] = f.schema
	}
	return out
}()

// applyWrite applies the fields a write sends to cfg in their steps (see
// applyStep); a seed refresh token (asSeed) is the caller's to read: it
// belongs to the token state, not the config. isNew: no config was stored.
func (b *backend) applyWrite(ctx context.Context, name string, cfg *providerConfig, d *framework.FieldData, isNew bool) error {
	if err := cfg.applyFields(d, beforeEndpoints); err != nil {
		return err
	}
	if err := b.fillEndpoints(ctx, name, cfg, d, isNew); err != nil {
		return err
	}
	if err := cfg.applyFields(d, afterEndpoints); err != nil {
		return err
	}
	_, timeoutSent := d.Raw["timeout"]
	if _, changed := d.Raw["provider"]; changed && !timeoutSent {
		if t := cfg.endpoint().DefaultTimeout(); t > 0 {
			cfg.Timeout = t // GitHub's big answers
		}
	}
	if err := cfg.applyKey(d, name, b.now()); err != nil { // last: a key file's token_uri wins
		return err
	}
	return nil
}

// applyFields sets the fields of step present in d, in the table's order.
func (c *providerConfig) applyFields(d *framework.FieldData, step applyStep) error {
	for _, f := range configFieldTable {
		if f.step == step {
			if err := f.set.apply(c, d, f.name); err != nil {
				return err
			}
		}
	}
	return nil
}

// changeFrom is what replacing old by c drops from the token state: the
// strongest effect of the rows whose value differs.
func (c *providerConfig) changeFrom(old *providerConfig) changeEffect {
	effect := keepsTokens
	for _, f := range configFieldTable {
		if f.effect > effect && f.set.value != nil && !sameValue(f.set.value(old), f.set.value(c)) {
			effect = f.effect
		}
	}
	return effect
}

// sameValue compares two values of a row; an empty list or map is no value,
// as nil is (a stored config decodes an empty one as nil).
func sameValue(a, b any) bool {
	return isEmpty(a) && isEmpty(b) || reflect.DeepEqual(a, b)
}

func isEmpty(v any) bool {
	r := reflect.ValueOf(v)
	switch r.Kind() {
	case reflect.Slice, reflect.Map, reflect.String:
		return r.Len() == 0
	}
	return false
}

// configView is what a read's rows look at: the config, its wire view, its
// current signing key (nil: none) and the name's token state (nil: none).
type configView struct {
	*providerConfig
	ep    *provider.Endpoint
	key   *signingKey
	state *tokenState
}

// readFields is what a config read shows: each row's field where it applies
// to the config's dialect and grant, in force (defaults applied), and
// secrets only as *_set facts; a few facts that are no field. Durations are
// integer seconds, as every TypeDurationSecond field in Vault reads.
func (cfg *providerConfig) readFields(state *tokenState) map[string]any {
	v := &configView{providerConfig: cfg, ep: cfg.endpoint(), key: cfg.keys.active(), state: state}
	data := map[string]any{
		"needs_refresh_token": state != nil && state.NeedsRefreshToken,
		"schema_version":      cfg.SchemaVersion,
	}
	if v.key != nil {
		data["key_type"] = keyType(v.key.signer.Public())
		if next := cfg.keys.pending(); next != nil {
			data["next_key_id"] = next.kid
		}
	}
	for _, f := range configFieldTable {
		if f.read == nil {
			continue
		}
		if value, show := f.read(v); show {
			data[cmp.Or(f.readAs, f.name)] = value
		}
	}
	return data
}

// seconds is how a read shows a duration: integer seconds, what Vault's
// TypeDurationSecond fields take and return (its CLI shows a *_ttl key's
// seconds as 1h).
func seconds(d time.Duration) int64 { return int64(d.Seconds()) }

// tenantInForce is the tenant in a preset's URLs: the config's, else the
// preset's default (microsoft: common); uses is false when the preset's
// URLs hold no tenant.
func (cfg *providerConfig) tenantInForce() (tenant string, uses bool) {
	if cfg.Tenant != "" {
		return cfg.Tenant, true
	}
	const mark = "{tenant}"
	withMark, dflt := cfg.Provider.Preset(mark), cfg.Provider.Preset("")
	for _, u := range [][2]string{{withMark.TokenURL, dflt.TokenURL}, {withMark.AuthURL, dflt.AuthURL}} {
		before, after, found := strings.Cut(u[0], mark)
		if !found {
			continue
		}
		if d := u[1]; !dflt.NeedsTenant && len(d) > len(before)+len(after) && strings.HasPrefix(d, before) && strings.HasSuffix(d, after) {
			return d[len(before) : len(d)-len(after)], true
		}
		return "", true
	}
	return "", false
}

// emptiable are the kinds of optional field a read leaves out when empty.
type emptiable interface {
	~string | ~[]string | ~[]int64 | ~map[string]string | ~map[string]any
}

// ifSet shows v unless it is empty: a read leaves out an optional field that
// is not set.
func ifSet[T emptiable](v T) (any, bool) { return v, len(v) > 0 }

// ifSigning shows v when set and a signing key is held.
func ifSigning[T emptiable](view *configView, v T) (any, bool) {
	return v, view.key != nil && len(v) > 0
}

// ifInstallation shows v when set and the config mints a GitHub App's
// installation tokens.
func ifInstallation[T emptiable](view *configView, v T) (any, bool) {
	return v, view.ep.Installation != nil && len(v) > 0
}

// binding ties a row to its struct field.
type binding struct {
	// apply stores the field's value from d when d has it.
	apply func(c *providerConfig, d *framework.FieldData, key string) error
	// value is what a change compares.
	value func(c *providerConfig) any
}

// bound is the binding of the struct field at returns: a write stores the
// request's value (an In, as the framework decodes the schema's type) made
// into a T by conv, which may refuse it.
func bound[In, T any](at func(*providerConfig) *T, conv func(key string, v In) (T, error)) binding {
	return binding{
		apply: func(c *providerConfig, d *framework.FieldData, key string) error {
			v, ok, err := field[In](d, key)
			if err != nil || !ok {
				return err
			}
			out, err := conv(key, v)
			if err != nil {
				return err
			}
			*at(c) = out
			return nil
		},
		value: func(c *providerConfig) any { return *at(c) },
	}
}

// text binds a string field, trimmed.
func text[T ~string](at func(*providerConfig) *T) binding {
	return bound(at, func(_ string, v string) (T, error) { return T(strings.TrimSpace(v)), nil })
}

// list binds a list field, its items trimmed and empty ones dropped.
func list(at func(*providerConfig) *[]string) binding {
	return bound(at, func(_ string, v []string) ([]string, error) { return cleanList(v), nil })
}

// pairs binds a map of strings (key=value pairs).
func pairs(at func(*providerConfig) *map[string]string) binding {
	return bound(at, func(_ string, v map[string]string) (map[string]string, error) { return v, nil })
}

// duration binds a duration written in seconds, refused outside [lo, hi].
func duration(at func(*providerConfig) *time.Duration, lo, hi time.Duration) binding {
	return bound(at, func(key string, v int) (time.Duration, error) {
		d := time.Duration(v) * time.Second
		if d < lo || d > hi {
			return 0, fmt.Errorf("%s must be between %s and %s, got %s", key, lo, hi, d)
		}
		return d, nil
	})
}

// allowedScopes are allowed_scopes as stored: each a scope-token (RFC 6749
// §3.3), sorted without duplicates.
func allowedScopes(_ string, v []string) ([]string, error) {
	n, err := provider.Narrowing{Scopes: cleanList(v)}.Canonical()
	return n.Scopes, err
}

// allowedAudiences are allowed_audiences as stored, sorted without duplicates.
func allowedAudiences(_ string, v []string) ([]string, error) {
	n, err := provider.Narrowing{Audiences: cleanList(v)}.Canonical()
	return n.Audiences, err
}

// allowedResources are allowed_resources as stored: normalised (RFC 8707,
// provider.NormalizeResource), sorted without duplicates.
func allowedResources(_ string, v []string) ([]string, error) {
	n, err := provider.Narrowing{Resources: cleanList(v)}.Canonical()
	return n.Resources, err
}

// repositoryIDs are repository_ids as stored; none is nil.
func repositoryIDs(_ string, v []int) ([]int64, error) {
	var out []int64
	for _, id := range v {
		out = append(out, int64(id))
	}
	return out, nil
}

// claims binds assertion_claims. A change compares them as printed: a claim
// number reads back from storage as float64 but may arrive as json.Number.
func claims() binding {
	b := bound(func(c *providerConfig) *map[string]any { return &c.AssertionClaims },
		func(_ string, v map[string]any) (map[string]any, error) { return v, nil })
	b.value = func(c *providerConfig) any { return fmt.Sprint(c.AssertionClaims) }
	return b
}

// installationOwner binds installation_owner: a new owner's installation is
// looked up again, unless the write gives installation_id too.
func installationOwner() binding {
	b := text(func(c *providerConfig) *string { return &c.InstallationOwner })
	set := b.apply
	b.apply = func(c *providerConfig, d *framework.FieldData, key string) error {
		before := c.InstallationOwner
		if err := set(c, d, key); err != nil {
			return err
		}
		if _, sent := d.Raw["installation_id"]; !sent && c.InstallationOwner != before {
			c.InstallationID = ""
		}
		return nil
	}
	return b
}
