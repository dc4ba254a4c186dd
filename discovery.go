package tokenbroker

// Filling in a config's endpoints at write time, so the read path never
// fetches anything: from the issuer's published metadata (OpenID Connect
// Discovery or RFC 8414), then from the provider preset's documented URLs.

import (
	"context"
	"fmt"
	"slices"

	"github.com/hashicorp/vault/sdk/framework"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/provider"
)

// endpointFields are the URL fields an issuer or a preset fills in.
var endpointFields = []string{"token_url", "auth_url", "device_authorization_url", "revocation_url", "userinfo_url"}

func (c *providerConfig) urlField(key string) *string {
	switch key {
	case "token_url":
		return &c.TokenURL
	case "auth_url":
		return &c.AuthURL
	case "revocation_url":
		return &c.RevocationURL
	case "userinfo_url":
		return &c.UserinfoURL
	}
	return &c.DeviceURL
}

// fillEndpoints fills in the URLs a config write leaves empty. A write that
// names issuer, or a preset's provider or tenant, fills in afresh every URL it
// does not give itself (so changing a tenant moves the URLs with it); other
// writes fill only empty ones. The issuer's metadata is fetched here, once, never on a read.
// A preset's documented refresh-token reuse grace applies unless
// refresh_reuse_grace is given.
func (b *backend) fillEndpoints(ctx context.Context, name string, cfg *providerConfig, d *framework.FieldData, isNew bool) error {
	sent := func(key string) bool { _, ok := d.Raw[key]; return ok }
	if cfg.Tenant != "" && !validTenant(cfg.Tenant) {
		return fmt.Errorf("tenant %q: use a tenant id or a domain (letters, digits, '.', '-')", cfg.Tenant)
	}
	preset := cfg.Provider.Preset(cfg.Tenant)
	refill := sent("issuer") || (sent("provider") || sent("tenant")) && preset.TokenURL != ""
	for _, key := range endpointFields {
		if refill && !sent(key) {
			*cfg.urlField(key) = ""
		}
	}
	if cfg.Issuer != "" && (sent("issuer") || isNew) {
		client, err := b.httpClient(cfg.CAPEM)
		if err != nil {
			return err
		}
		var md *provider.Metadata
		r := providerRequest{name: name, request: requestDiscovery, url: cfg.Issuer, client: client, timeout: cfg.Timeout}
		if err := b.send(ctx, r, func(ctx context.Context, c *provider.Client) (err error) {
			md, err = provider.Discover(ctx, c.HTTP, cfg.Issuer)
			return err
		}); err != nil {
			return fmt.Errorf("issuer: %w", err)
		}
		for key, u := range map[string]string{"token_url": md.TokenEndpoint, "auth_url": md.AuthorizationEndpoint,
			"device_authorization_url": md.DeviceAuthorizationEndpoint, "revocation_url": md.RevocationEndpoint,
			"userinfo_url": md.UserinfoEndpoint} {
			if *cfg.urlField(key) == "" {
				*cfg.urlField(key) = u
			}
		}
		if cfg.PKCE == "" && len(md.CodeChallengeMethods) > 0 && !slices.Contains(md.CodeChallengeMethods, string(provider.PKCES256)) {
			cfg.PKCE = provider.PKCEOff // the issuer says it does not do S256
		}
		// response_modes_supported (RFC 8414 §2; OpenID Connect Discovery 1.0
		// §3) naming form_post makes it the default (onboarding.go).
		cfg.IssuerFormPost = slices.Contains(md.ResponseModes, string(provider.ResponseModeFormPost))
	}
	if cfg.Issuer == "" {
		cfg.IssuerFormPost = false // what an issuer said no longer applies
	}
	if preset.TokenURL != "" {
		if preset.NeedsTenant && cfg.TokenURL == "" {
			return fmt.Errorf("provider %s needs tenant (the account's domain, e.g. tenant=example.okta.com), issuer or token_url", cfg.Provider)
		}
		for key, u := range map[string]string{"token_url": preset.TokenURL, "auth_url": preset.AuthURL, "device_authorization_url": preset.DeviceURL} {
			if *cfg.urlField(key) == "" && !preset.NeedsTenant {
				*cfg.urlField(key) = u
			}
		}
	}
	if (sent("provider") || isNew) && !sent("refresh_reuse_grace") && preset.ReuseGrace > 0 {
		cfg.RefreshReuseGrace = preset.ReuseGrace
	}
	return nil
}

// validTenant accepts a tenant id or a domain: it lands in a URL's host or path.
func validTenant(t string) bool {
	if len(t) > 253 {
		return false
	}
	for _, c := range t {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// dialectValues lists the provider field's allowed values.
func dialectValues() []any {
	out := make([]any, len(provider.Dialects))
	for i, d := range provider.Dialects {
		out[i] = string(d)
	}
	return out
}
