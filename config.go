package tokenbroker

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// configPrefix keys config entries by name (so LIST works); token state is a
// separate entry (token_state.go).
const configPrefix = "config/"

// configSchemaVersion is stored in every config entry so later changes can migrate.
const configSchemaVersion = 1

// Defaults and bounds for the timing fields.
const (
	defaultRefreshAhead = 5 * time.Minute
	defaultDefaultTTL   = time.Hour
	defaultTimeout      = 30 * time.Second
	maxRefreshAhead     = 24 * time.Hour
	minDefaultTTL       = 10 * time.Second
	maxDefaultTTL       = 90 * 24 * time.Hour
	minTimeout          = time.Second
	maxTimeout          = 5 * time.Minute
	// maxRefreshReuseGrace bounds refresh_reuse_grace; providers document
	// seconds to half an hour.
	maxRefreshReuseGrace = 24 * time.Hour
)

// Values of refresh_grant; "" means the dialect's default.
const (
	refreshAuto  = "auto"
	refreshNever = "never"
)

// providerConfig is one stored config/<name> entry.
type providerConfig struct {
	SchemaVersion int              `json:"schema_version"`
	Provider      provider.Dialect `json:"provider"`
	TokenURL      string           `json:"token_url"`
	RefreshURL    string           `json:"refresh_url,omitempty"`
	ClientID      string           `json:"client_id,omitempty"`
	ClientSecret  string           `json:"client_secret,omitempty"`
	// ClientSecrets are further secrets tried in order when the provider
	// refuses the first: rotation without downtime. The one that works is
	// promoted to ClientSecret.
	ClientSecrets []string `json:"client_secrets,omitempty"`
	APIKey        string   `json:"api_key,omitempty"`
	Scopes        []string `json:"scopes,omitempty"`
	Audience      string   `json:"audience,omitempty"`
	// AllowedScopes, AllowedAudiences and AllowedResources bound what a
	// narrowed read or a role may ask for (narrowed.go): an empty list
	// allows nothing of its kind. Resources are stored normalised (RFC 8707).
	AllowedScopes    []string           `json:"allowed_scopes,omitempty"`
	AllowedAudiences []string           `json:"allowed_audiences,omitempty"`
	AllowedResources []string           `json:"allowed_resources,omitempty"`
	ExtraParams      map[string]string  `json:"extra_params,omitempty"`
	AuthStyle        provider.AuthStyle `json:"auth_style,omitempty"`
	Encoding         provider.Encoding  `json:"encoding,omitempty"`
	RefreshAhead     time.Duration      `json:"refresh_ahead"`
	DefaultTTL       time.Duration      `json:"default_ttl"`
	Timeout          time.Duration      `json:"timeout"`
	CAPEM            string             `json:"ca_pem,omitempty"`
	// RefreshGrant is refreshAuto, refreshNever, or "" for the dialect's default.
	RefreshGrant string `json:"refresh_grant,omitempty"`
	// RefreshReuseGrace: how long the provider accepts a rotated refresh
	// token again; within it, a lost refresh may be resent once.
	RefreshReuseGrace time.Duration `json:"refresh_reuse_grace,omitempty"`
	// PreviousToken: what the provider does to a token when it issues the
	// next ("": the dialect's default): a chain whose renewal ends the token
	// served is served only until that renewal (snapshot.go).
	PreviousToken provider.PreviousToken `json:"revokes_previous_token,omitempty"`

	// A user's authorization (onboarding.go): the authorization and device
	// endpoints, where the provider sends the user back, PKCE and extra
	// authorization parameters. Issuer and Tenant fill URLs in at write
	// time (discovery.go).
	AuthURL     string            `json:"auth_url,omitempty"`
	DeviceURL   string            `json:"device_authorization_url,omitempty"`
	RedirectURI string            `json:"redirect_uri,omitempty"`
	PKCE        provider.PKCE     `json:"pkce,omitempty"`
	AuthParams  map[string]string `json:"auth_params,omitempty"`
	Issuer      string            `json:"issuer,omitempty"`
	Tenant      string            `json:"tenant,omitempty"`
	// ResponseMode: how the provider returns the code (query or form_post;
	// "": form_post where supported, onboarding.go). IssuerFormPost: the
	// issuer's metadata lists form_post (discovery.go).
	ResponseMode   provider.ResponseMode `json:"response_mode,omitempty"`
	IssuerFormPost bool                  `json:"issuer_form_post,omitempty"`
	// The connected account and its end (app.go): where the account is
	// read and the refresh token revoked ("": the preset's or issuer's),
	// and whether the account must be the Vault user's (identityMatch*).
	RevocationURL string `json:"revocation_url,omitempty"`
	UserinfoURL   string `json:"userinfo_url,omitempty"`
	IdentityMatch string `json:"identity_match,omitempty"`

	// Signed credentials: the grant, assertions, GitHub App (config_signing.go).
	signingConfig

	// A connection (app.go): App names the app whose client it uses; its
	// stored entry holds only App and Owner, the rest is the app's,
	// resolved by loadConfig. Owner is the Vault entity that connected it
	// through self/ ("" for a connection an operator made).
	App   string `json:"app,omitempty"`
	Owner string `json:"owner,omitempty"`
}

// refreshes reports whether refresh tokens are used at all.
func (c *providerConfig) refreshes() bool {
	switch c.RefreshGrant {
	case refreshAuto:
		return true
	case refreshNever:
		return false
	}
	return c.endpoint().RefreshesByDefault()
}

// refreshGrantInForce is refresh_grant once the dialect's default is applied.
func (c *providerConfig) refreshGrantInForce() string {
	if c.refreshes() {
		return refreshAuto
	}
	return refreshNever
}

func newProviderConfig() *providerConfig {
	return &providerConfig{
		SchemaVersion: configSchemaVersion,
		Provider:      provider.OAuth2,
		RefreshAhead:  defaultRefreshAhead,
		DefaultTTL:    defaultDefaultTTL,
		Timeout:       defaultTimeout,
	}
}

// endpoint is the wire view of c, with its first client secret.
func (c *providerConfig) endpoint() *provider.Endpoint {
	var secret string
	if all := c.secrets(); len(all) > 0 {
		secret = all[0]
	}
	ep := &provider.Endpoint{
		Dialect: c.Provider, TokenURL: c.TokenURL, RefreshURL: c.RefreshURL,
		ClientID: c.ClientID, ClientSecret: secret, APIKey: c.APIKey,
		Scopes: c.Scopes, Audience: c.Audience, ExtraParams: c.ExtraParams,
		AuthStyle: c.AuthStyle, Encoding: c.Encoding, PreviousToken: c.PreviousToken,
		AuthURL: c.AuthURL, DeviceURL: c.DeviceURL, RedirectURI: c.RedirectURI, PKCE: c.PKCE, AuthParams: c.AuthParams,
		RevocationURL: c.RevocationURL, UserinfoURL: c.UserinfoURL,
	}
	c.fillSigning(ep, nil)
	return ep
}

// secrets lists the client secrets to try, in order, without repeats.
func (c *providerConfig) secrets() []string {
	var out []string
	for _, s := range append([]string{c.ClientSecret}, c.ClientSecrets...) {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// withSecretFirst returns a copy of c whose secret list starts with secret.
func (c *providerConfig) withSecretFirst(secret string) *providerConfig {
	next := *c
	next.ClientSecret = secret
	next.ClientSecrets = slices.DeleteFunc(c.secrets(), func(s string) bool { return s == secret })
	return &next
}

// credentialFields names, in config terms, what the wire says is missing.
var credentialFields = map[provider.Credential]string{
	provider.NeedsClientID:     "client_id",
	provider.NeedsClientSecret: "client_secret",
	provider.NeedsAPIKey:       "api_key",

	provider.NeedsSigningKey:       "a signing key (private_key, generate_key or service_account_json)",
	provider.NeedsCertificate:      "certificate (the signing key's; generate_key makes one)",
	provider.NeedsAssertionIssuer:  "assertion_issuer (or client_id)",
	provider.NeedsAssertionSubject: "assertion_subject",
	provider.NeedsScopes:           "scopes",
	provider.NeedsAppID:            "app_id",
	provider.NeedsInstallation:     "installation_id or installation_owner",
}

// validate checks c as a whole: a known dialect and styles, usable URLs,
// extra params that override nothing, and credentials for at least one grant
// (hasSeed: a seed refresh token is held).
func (c *providerConfig) validate(hasSeed bool) error {
	if !c.Provider.Valid() {
		return fmt.Errorf("unknown provider %q (want one of %s)", c.Provider, provider.DialectNames())
	}
	if c.AuthStyle != "" && !c.AuthStyle.Valid() {
		return fmt.Errorf("unknown auth_style %q (want %s)", c.AuthStyle, oneOf(provider.AuthStyles))
	}
	if c.Encoding != "" && !c.Encoding.Valid() {
		return fmt.Errorf("unknown encoding %q (want %s)", c.Encoding, oneOf(provider.Encodings))
	}
	if c.RefreshGrant != "" && c.RefreshGrant != refreshAuto && c.RefreshGrant != refreshNever {
		return fmt.Errorf("unknown refresh_grant %q (want auto or never)", c.RefreshGrant)
	}
	if c.PreviousToken != "" && !c.PreviousToken.Valid() {
		return fmt.Errorf("unknown revokes_previous_token %q (want never, on_refresh or on_new_token)", c.PreviousToken)
	}
	if hasSeed && !c.refreshes() {
		return fmt.Errorf("a refresh_token is held but refresh_grant is never (the %s default): set refresh_grant=auto to use it", c.Provider)
	}
	if err := c.validateAuthorization(); err != nil {
		return err
	}
	tokenURL := c.endpoint().EffectiveTokenURL() // a GitHub App's comes from api_url
	if tokenURL == "" {
		return fmt.Errorf("token_url is required")
	}
	if err := provider.CheckURL(tokenURL); err != nil {
		return fmt.Errorf("token_url: %w", err)
	}
	if err := c.validateSigning(); err != nil {
		return err
	}
	if c.RefreshURL != "" {
		if err := provider.CheckURL(c.RefreshURL); err != nil {
			return fmt.Errorf("refresh_url: %w", err)
		}
	}
	for k := range c.ExtraParams {
		if provider.Reserved(k) {
			return fmt.Errorf("extra_params may not set %q: the provider preset or a config field sets it", k)
		}
	}
	ep := c.endpoint()
	mint := ep.MintNeeds()
	switch {
	case mint == "":
		return nil
	case hasSeed && ep.RefreshNeeds() != "":
		return fmt.Errorf("provider %s needs %s", c.Provider, credentialFields[ep.RefreshNeeds()])
	case hasSeed, c.authorizable():
		return nil // a chain starts from the seed, or from authorize/ or device/
	case mint == provider.NeedsAuthorization:
		return fmt.Errorf("provider %s starts only from a user's authorization: set client_id and auth_url or device_authorization_url (or write a seed refresh_token)", c.Provider)
	case mint == provider.NeedsClientID:
		return fmt.Errorf("provider %s needs client_id", c.Provider)
	default:
		return fmt.Errorf("provider %s needs %s (or a seed refresh_token)", c.Provider, credentialFields[mint])
	}
}

// loadConfig reads name's config with its keys (stored apart, key/<name>);
// nil when it has none. A connection's is its app's client (app.go).
func loadConfig(ctx context.Context, s logical.Storage, name string) (*providerConfig, error) {
	cfg, err := configEntries.load(ctx, s, name)
	if err != nil || cfg == nil {
		return nil, err
	}
	if cfg.App != "" {
		return resolveConnection(ctx, s, name, cfg)
	}
	cfg.keys, err = loadKeyRing(ctx, s, name)
	return cfg, err
}
