package tokenbroker

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

func pathConfig(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "config/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "tokenbroker",
				OperationSuffix: "configs",
			},
			Fields: listFields,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: b.pathNamesList,
					Summary:  "List the names of all provider configs, a page at a time with after and limit.",
				},
			},
			HelpSynopsis:    "List provider configs.",
			HelpDescription: "Lists the names of every config/<name> entry, sorted; after and limit page through them.",
		},
		{
			Pattern: "config/" + framework.MatchAllRegex("name"),
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "tokenbroker",
				OperationSuffix: "config",
			},
			Fields:         configFields,
			ExistenceCheck: b.pathConfigExists,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.CreateOperation: &framework.PathOperation{Callback: b.pathConfigWrite, Summary: "Create a provider config."},
				logical.UpdateOperation: &framework.PathOperation{Callback: b.pathConfigWrite, Summary: "Update a provider config; fields not given keep their values."},
				logical.ReadOperation:   &framework.PathOperation{Callback: b.pathConfigRead, Summary: "Read a provider config (never its secrets)."},
				logical.DeleteOperation: &framework.PathOperation{Callback: b.pathConfigDelete, Summary: "Delete a provider config and its token state."},
			},
			HelpSynopsis:    "Configure one provider: its token endpoint, dialect and credentials.",
			HelpDescription: configHelp,
		},
	}
}

const configHelp = `
A config names one token endpoint and the long-lived credentials it takes.
provider picks the wire dialect (oauth2, oauth2_json, echo360, apivideo,
endorsed); auth_style and encoding override its defaults. Secrets
(client_secret, api_key, refresh_token) are write-only: a read says only
whether each is set. Writing changed credentials drops the cached token;
writing refresh_token starts a new refresh chain from that seed.
`

var configFields = map[string]*framework.FieldSchema{
	"name": {Type: framework.TypeString, Description: "Name of the config; letters, digits, '-', '_' and '.'."},
	"provider": {Type: framework.TypeString, Default: string(provider.OAuth2),
		Description:   "Wire dialect: oauth2 (RFC 6749, form body), oauth2_json, echo360, apivideo or endorsed; or a provider preset (google, microsoft, github, salesforce, xero, intuit, zoom, box, okta, auth0) that also fills in its endpoints.",
		AllowedValues: dialectValues()},
	"token_url":                {Type: framework.TypeString, Description: "Token endpoint URL. https only, except loopback hosts. Required unless a provider preset or issuer gives it."},
	"auth_url":                 {Type: framework.TypeString, Description: "Authorization endpoint, for authorize/<name> (default: the preset's or issuer's)."},
	"device_authorization_url": {Type: framework.TypeString, Description: "Device authorization endpoint (RFC 8628), for device/<name> (default: the preset's or issuer's)."},
	"redirect_uri":             {Type: framework.TypeString, Description: "Where the provider sends the user back: https://<vault>/v1/<mount>/callback, registered with the provider."},
	"pkce":                     {Type: framework.TypeString, Description: "PKCE for browser authorizations: S256 (default) or off.", AllowedValues: []any{"S256", "off"}},
	"auth_params":              {Type: framework.TypeKVPairs, Description: "Extra authorization parameters (map, or key=value pairs), e.g. prompt=consent."},
	"issuer":                   {Type: framework.TypeString, Description: "OAuth/OpenID issuer URL: its published metadata fills in token_url, auth_url and device_authorization_url at write time."},
	"tenant":                   {Type: framework.TypeString, Description: "The account's part of a preset's URLs: a Microsoft tenant (default common), an Okta or Auth0 domain."},
	"refresh_url":              {Type: framework.TypeString, Description: "Refresh endpoint URL, when not the token URL (apivideo derives <origin>/auth/refresh)."},
	"client_id":                {Type: framework.TypeString, Description: "OAuth client id."},
	"client_secret":            {Type: framework.TypeString, Description: "OAuth client secret. Write-only.", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
	"api_key":                  {Type: framework.TypeString, Description: "API key (apivideo). Write-only.", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
	"client_secrets": {Type: framework.TypeCommaStringSlice, Description: "Further client secrets tried in order when the provider refuses client_secret (rotation without downtime); the first that works is kept first. Write-only.",
		DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
	"refresh_token": {Type: framework.TypeString, Description: "Seed refresh token that starts a refresh chain. Write-only.", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
	"scopes":        {Type: framework.TypeCommaStringSlice, Description: "Scopes to request (list, or a comma-separated string)."},
	"audience":      {Type: framework.TypeString, Description: "Audience parameter to send with the base grant."},
	"extra_params":  {Type: framework.TypeKVPairs, Description: "Extra token-request parameters (map, or key=value pairs)."},
	"auth_style": {Type: framework.TypeString, Description: "Client authentication: basic (HTTP Basic), body, or none (a public client: client_id only). Default: the provider's.",
		AllowedValues: []any{"basic", "body", "none"}},
	"encoding": {Type: framework.TypeString, Description: "Request encoding: form, json or query. Default: the provider's.",
		AllowedValues: []any{"form", "json", "query"}},
	"refresh_ahead": {Type: framework.TypeDurationSecond, Default: int(defaultRefreshAhead.Seconds()),
		Description: "Refresh this long before expiry (never more than half the token's lifetime)."},
	"default_ttl": {Type: framework.TypeDurationSecond, Default: int(defaultDefaultTTL.Seconds()),
		Description: "Token lifetime assumed when the provider sends no expiry."},
	"timeout": {Type: framework.TypeDurationSecond, Default: int(defaultTimeout.Seconds()),
		Description: "Time limit for one provider call."},
	"ca_pem": {Type: framework.TypeString, Description: "PEM bundle to trust for the provider's TLS instead of the system roots."},
	"refresh_grant": {Type: framework.TypeString,
		Description:   "auto: use the refresh tokens the provider sends, falling back to the base grant when one is refused; never: ignore refresh tokens and mint again at expiry. Default: the provider's (never for oauth2_json, else auto).",
		AllowedValues: []any{"auto", "never"}},
	"revokes_previous_token": {Type: framework.TypeString,
		Description:   "What the provider does to the access token served when it issues the next: never (it lives until it expires), on_refresh (a refresh revokes it: Ory Hydra and fosite, GitHub user tokens), on_new_token (one active token per client: any new token revokes it). Unless never, reads inside the refresh window wait for the renewal and expires_at and ttl count to it. Default: the provider's (on_refresh for github and ory, else never).",
		AllowedValues: []any{"never", "on_refresh", "on_new_token"}},
	"refresh_reuse_grace": {Type: framework.TypeDurationSecond, Default: 0,
		Description: "How long the provider accepts a refresh token again after rotating it (Xero: 30m, Okta: 30s). Within it, a refresh whose answer was lost is retried once with the same token. 0 (default): never resend."},
	"response_mode": {Type: framework.TypeString, AllowedValues: []any{"form_post", "query"},
		Description: "How the provider returns the code to redirect_uri: form_post (a POST: no URL, browser history or audit log holds the code) or query. Default: form_post where the preset or the issuer's metadata says the provider supports it and redirect_uri is a Vault callback (…/v1/…/callback), else query."},
}

func (b *backend) pathConfigExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	name, err := nameField(d)
	if err != nil {
		return false, nil // the handler reports the bad name
	}
	cfg, err := loadConfig(ctx, req.Storage, name)
	return cfg != nil, err
}

func (b *backend) pathConfigRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := nameField(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	cfg, err := loadConfig(ctx, req.Storage, name)
	if err != nil || cfg == nil {
		return nil, err
	}
	state, err := b.currentState(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	ep := cfg.endpoint()
	data := map[string]any{
		"provider":                 string(cfg.Provider),
		"token_url":                cfg.TokenURL,
		"refresh_url":              cfg.RefreshURL,
		"client_id":                cfg.ClientID,
		"scopes":                   nonNil(cfg.Scopes),
		"audience":                 cfg.Audience,
		"extra_params":             nonNilMap(cfg.ExtraParams),
		"auth_style":               string(ep.EffectiveAuthStyle()),
		"encoding":                 string(ep.EffectiveEncoding()),
		"refresh_ahead":            int64(cfg.RefreshAhead.Seconds()),
		"default_ttl":              int64(cfg.DefaultTTL.Seconds()),
		"timeout":                  int64(cfg.Timeout.Seconds()),
		"ca_pem":                   cfg.CAPEM,
		"refresh_grant":            cfg.refreshGrantInForce(),
		"refresh_reuse_grace":      int64(cfg.RefreshReuseGrace.Seconds()),
		"revokes_previous_token":   string(ep.EffectivePreviousToken()),
		"client_secret_set":        len(cfg.secrets()) > 0,
		"client_secrets_count":     len(cfg.secrets()),
		"api_key_set":              cfg.APIKey != "",
		"refresh_token_set":        state != nil && state.RefreshToken != "",
		"needs_refresh_token":      state != nil && state.NeedsRefreshToken,
		"schema_version":           cfg.SchemaVersion,
		"auth_url":                 cfg.AuthURL,
		"device_authorization_url": cfg.DeviceURL,
		"redirect_uri":             cfg.RedirectURI,
		"pkce":                     string(ep.EffectivePKCE()),
		"auth_params":              nonNilMap(cfg.AuthParams),
		"response_mode":            string(cfg.responseMode()),
		"issuer":                   cfg.Issuer,
		"tenant":                   cfg.Tenant,
	}
	if u := ep.EffectiveRefreshURL(); u != cfg.TokenURL {
		data["refresh_url"] = u
	}
	for k, v := range cfg.signingReadFields() { // config_signing.go
		data[k] = v
	}
	return &logical.Response{Data: data}, nil
}

func (b *backend) pathConfigWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := nameField(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	lock := b.lockFor(name)
	lock.Lock()
	defer lock.Unlock()

	old, err := loadConfig(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	cfg := newProviderConfig()
	if old != nil {
		copied := *old
		cfg = &copied
		cfg.SchemaVersion = configSchemaVersion
	}
	seed, err := cfg.apply(d)
	if err == nil {
		err = b.fillEndpoints(ctx, name, cfg, d, old == nil)
	}
	if err == nil {
		err = cfg.applySigning(d, name, b.now()) // after the endpoints: a key file's token_uri wins
	}
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	state, err := b.currentState(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if old != nil && !old.sameCredentials(cfg) {
		state = nil // tokens and chains of other credentials are worthless here
	}
	if seed != "" {
		state = &tokenState{RefreshToken: seed} // a new chain replaces the old one
	}
	if err := cfg.validate(state != nil && state.RefreshToken != ""); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	client, err := b.httpClient(cfg.CAPEM)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	if old != nil && state != nil && seed == "" && !old.sameTokenShape(cfg) {
		state = state.withoutAccessToken()
	}

	if old == nil || old.keys != cfg.keys {
		if err := writeKeyRing(ctx, req.Storage, name, cfg.keys); err != nil {
			return nil, err
		}
	}
	if err := configEntries.save(ctx, req.Storage, name, cfg); err != nil {
		return nil, err
	}
	b.keysChanged(name, cfg)
	b.names.add(name)
	next := newSnapshot(cfg, client, state)
	next.counters = b.counters(name)
	if old := b.loaded(name); old != nil {
		next.health = old.health // counters survive a config edit
	}
	if _, err := b.save(ctx, req.Storage, name, next); err != nil {
		// The config is stored but the token state is not what it must be:
		// forget the snapshot so the next read reloads from storage.
		b.forget(name)
		return nil, err
	}
	return nil, nil
}

func (b *backend) pathConfigDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, err := nameField(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	lock := b.lockFor(name)
	lock.Lock()
	defer lock.Unlock()
	defer b.forget(name)
	b.sched.remove(name)
	b.names.remove(name)
	if err := stateEntries.delete(ctx, req.Storage, name); err != nil {
		return nil, err
	}
	if err := keyEntries.delete(ctx, req.Storage, name); err != nil {
		return nil, err
	}
	b.keysChanged(name, nil)
	if err := deleteAuthorizations(ctx, req.Storage, name); err != nil {
		return nil, err
	}
	return nil, configEntries.delete(ctx, req.Storage, name)
}

// apply sets the fields present in d, checks them, and returns a seed refresh
// token if one was given (it belongs to the token state, not the config).
func (c *providerConfig) apply(d *framework.FieldData) (seed string, err error) {
	dialect, auth, encoding := string(c.Provider), string(c.AuthStyle), string(c.Encoding)
	strs := map[string]*string{
		"provider": &dialect, "auth_style": &auth, "encoding": &encoding, "refresh_grant": &c.RefreshGrant,
		"revokes_previous_token": (*string)(&c.PreviousToken),
		"token_url":              &c.TokenURL, "refresh_url": &c.RefreshURL, "client_id": &c.ClientID,
		"client_secret": &c.ClientSecret, "api_key": &c.APIKey, "audience": &c.Audience,
		"ca_pem": &c.CAPEM, "refresh_token": &seed,
		"auth_url": &c.AuthURL, "device_authorization_url": &c.DeviceURL, "redirect_uri": &c.RedirectURI,
		"issuer": &c.Issuer, "tenant": &c.Tenant, "pkce": (*string)(&c.PKCE),
		"response_mode": (*string)(&c.ResponseMode),
	}
	for key, dst := range strs {
		if v, ok, err := field[string](d, key); err != nil {
			return "", err
		} else if ok {
			*dst = strings.TrimSpace(v)
		}
	}
	c.Provider, c.AuthStyle, c.Encoding = provider.Dialect(dialect), provider.AuthStyle(auth), provider.Encoding(encoding)
	for key, dst := range map[string]*[]string{"client_secrets": &c.ClientSecrets, "scopes": &c.Scopes} {
		if v, ok, err := field[[]string](d, key); err != nil {
			return "", err
		} else if ok {
			*dst = cleanList(v)
		}
	}
	if v, ok, err := field[map[string]string](d, "extra_params"); err != nil {
		return "", err
	} else if ok {
		c.ExtraParams = v
	}
	if v, ok, err := field[map[string]string](d, "auth_params"); err != nil {
		return "", err
	} else if ok {
		c.AuthParams = v
	}
	durations := []struct {
		key      string
		dst      *time.Duration
		min, max time.Duration
	}{
		{"refresh_ahead", &c.RefreshAhead, 0, maxRefreshAhead},
		{"default_ttl", &c.DefaultTTL, minDefaultTTL, maxDefaultTTL},
		{"timeout", &c.Timeout, minTimeout, maxTimeout},
		{"refresh_reuse_grace", &c.RefreshReuseGrace, 0, maxRefreshReuseGrace},
	}
	for _, f := range durations {
		v, ok, err := field[int](d, f.key)
		if err != nil {
			return "", err
		}
		if !ok {
			continue
		}
		dur := time.Duration(v) * time.Second
		if dur < f.min || dur > f.max {
			return "", fmt.Errorf("%s must be between %s and %s, got %s", f.key, f.min, f.max, dur)
		}
		*f.dst = dur
	}
	return seed, nil
}
