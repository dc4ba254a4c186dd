package tokenbroker

import (
	"context"
	"fmt"
	"maps"
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
	"auth_style": {Type: framework.TypeString, Description: "Client authentication: basic (HTTP Basic), body, none (a public client: client_id only), or private_key_jwt (a JWT signed by the config's key; the default when a key is held and no secret). Default: the provider's.",
		AllowedValues: allowedValues(provider.AuthStyles)},
	"encoding": {Type: framework.TypeString, Description: "Request encoding: form, json or query. Default: the provider's.",
		AllowedValues: allowedValues(provider.Encodings)},
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

// allowedValues is a field's AllowedValues from the list that validates it.
func allowedValues[T ~string](values []T) []any {
	out := make([]any, len(values))
	for i, v := range values {
		out[i] = string(v)
	}
	return out
}

// oneOf lists values for a message: "a, b or c".
func oneOf[T ~string](values []T) string {
	s := make([]string, len(values))
	for i, v := range values {
		s[i] = string(v)
	}
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
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
	return &logical.Response{Data: cfg.readFields(state)}, nil
}

// readFields is what a config read shows: the fields that apply to the
// config's dialect and grant, in force (defaults applied), and the *_set
// facts of its secrets, never a secret. A user's authorization shows when
// a user can authorize the config or it sets them; tenant when set or the
// preset has one; signing when a key is held or the dialect signs
// (config_signing.go). Empty optional fields are left out. Durations are
// integer seconds, as every TypeDurationSecond field in Vault reads.
func (cfg *providerConfig) readFields(state *tokenState) map[string]any {
	ep := cfg.endpoint()
	secrets := cfg.secrets()
	data := map[string]any{
		"provider":               string(cfg.Provider),
		"token_url":              ep.EffectiveTokenURL(),
		"auth_style":             string(ep.EffectiveAuthStyle()),
		"encoding":               string(ep.EffectiveEncoding()),
		"refresh_ahead":          seconds(cfg.RefreshAhead),
		"default_ttl":            seconds(cfg.DefaultTTL),
		"timeout":                seconds(cfg.Timeout),
		"refresh_grant":          cfg.refreshGrantInForce(),
		"refresh_reuse_grace":    seconds(cfg.RefreshReuseGrace),
		"revokes_previous_token": string(ep.EffectivePreviousToken()),
		"client_secret_set":      len(secrets) > 0,
		"client_secrets_count":   len(secrets),
		"api_key_set":            cfg.APIKey != "",
		"refresh_token_set":      state != nil && state.RefreshToken != "",
		"needs_refresh_token":    state != nil && state.NeedsRefreshToken,
		"schema_version":         cfg.SchemaVersion,
	}
	if u := ep.EffectiveRefreshURL(); u != ep.EffectiveTokenURL() {
		data["refresh_url"] = u
	}
	putSet(data, "client_id", cfg.ClientID)
	putSet(data, "scopes", cfg.Scopes)
	putSet(data, "audience", cfg.Audience)
	putSet(data, "extra_params", cfg.ExtraParams)
	putSet(data, "ca_pem", cfg.CAPEM)
	if tenant, uses := cfg.tenantInForce(); uses {
		putSet(data, "tenant", tenant)
	}
	// A user's authorization: its URLs when set; PKCE and the response mode
	// in force when a user can authorize the config, or when set.
	putSet(data, "auth_url", cfg.AuthURL)
	putSet(data, "device_authorization_url", cfg.DeviceURL)
	putSet(data, "redirect_uri", cfg.RedirectURI)
	putSet(data, "auth_params", cfg.AuthParams)
	putSet(data, "issuer", cfg.Issuer)
	user := cfg.authorizable()
	if user || cfg.PKCE != "" {
		data["pkce"] = string(ep.EffectivePKCE())
	}
	if user || cfg.ResponseMode != "" {
		data["response_mode"] = string(cfg.responseMode())
	}
	maps.Copy(data, cfg.signingReadFields(ep)) // config_signing.go
	return data
}

// seconds is how a read shows a duration: integer seconds, what Vault's
// TypeDurationSecond fields take and return (its CLI shows a *_ttl key's
// seconds as 1h).
func seconds(d time.Duration) int64 { return int64(d.Seconds()) }

// putSet puts v under key unless it is empty (a string, list or map): a
// read leaves out an optional field that is not set.
func putSet[T ~string | ~[]string | ~[]int64 | ~map[string]string | ~map[string]any](data map[string]any, key string, v T) {
	if len(v) > 0 {
		data[key] = v
	}
}

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
	if _, err := b.httpClient(cfg.CAPEM); err != nil {
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
	next := newSnapshot(cfg, state)
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
