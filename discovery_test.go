package tokenbroker

// Endpoints filled in at config write: from an issuer's metadata, and from a
// provider preset's documented URLs.

import (
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/tokenbroker/vault-plugin-secrets-tokenbroker/fakeprovider"
)

func TestIssuerFillsInEndpointsOnce(t *testing.T) {
	e := newEnv(t)
	e.mustDo(logical.CreateOperation, "config/i", map[string]any{
		"issuer": e.fake.URL(), "ca_pem": e.fake.CAPEM(), "client_id": testClientID, "client_secret": testClientSecret,
		"redirect_uri": testRedirect,
	})
	cfg := e.mustDo(logical.ReadOperation, "config/i", nil).Data
	for key, want := range map[string]string{
		"token_url": e.fake.URL() + fakeprovider.PathOAuth2Token, "auth_url": e.fake.URL() + fakeprovider.PathAuthorize,
		"device_authorization_url": e.fake.URL() + fakeprovider.PathDeviceAuthorization, "issuer": e.fake.URL(), "pkce": "S256",
		"revocation_url": e.fake.URL() + fakeprovider.PathRevoke, "userinfo_url": e.fake.URL() + fakeprovider.PathUserinfo,
	} {
		expectField(t, cfg, key, want)
	}
	fetches := e.fake.Calls(fakeprovider.PathDiscovery)
	expect(t, "discovery fetches at write", fetches, 1)
	e.connect("i")
	e.token("i")
	e.mustDo(logical.UpdateOperation, "config/i", map[string]any{"scopes": "read"})
	expect(t, "discovery fetches after reads and a write without issuer", e.fake.Calls(fakeprovider.PathDiscovery), fetches)
}

func TestIssuerErrors(t *testing.T) {
	e := newEnv(t)
	cases := []struct{ name, issuer, want string }{
		{"no metadata published", e.fake.URL() + "/nothing-here", "no metadata for issuer"},
		{"a trailing slash is the same issuer", e.fake.URL() + "/", ""},
		{"plain http off loopback", "http://idp.example", "must use https"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.do(logical.CreateOperation, "config/i", map[string]any{
				"issuer": c.issuer, "ca_pem": e.fake.CAPEM(), "client_id": testClientID, "client_secret": testClientSecret})
			if c.want == "" {
				if err != nil {
					t.Fatalf("config write: %v, want success", err)
				}
				return
			}
			expectErr(t, "config write", err, c.want)
		})
	}
}

func TestPresetsFillInTheirEndpoints(t *testing.T) {
	cases := []struct {
		name   string
		fields map[string]any
		want   map[string]any
	}{
		{"xero: rotation with a 30-minute grace", map[string]any{"provider": "xero"}, map[string]any{
			"token_url": "https://identity.xero.com/connect/token", "auth_url": "https://login.xero.com/identity/connect/authorize",
			"device_authorization_url": nil /* none: left out */, "refresh_reuse_grace": int64(1800), "auth_style": "basic"}},
		{"microsoft with a tenant", map[string]any{"provider": "microsoft", "tenant": "contoso.onmicrosoft.com"}, map[string]any{
			"token_url":                "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
			"device_authorization_url": "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/devicecode"}},
		{"microsoft without a tenant uses common", map[string]any{"provider": "microsoft"}, map[string]any{
			"auth_url": "https://login.microsoftonline.com/common/oauth2/v2.0/authorize"}},
		{"okta at its domain", map[string]any{"provider": "okta", "tenant": "dev-1.okta.com"}, map[string]any{
			"token_url": "https://dev-1.okta.com/oauth2/default/v1/token", "refresh_reuse_grace": int64(30)}},
		{"an explicit token_url wins", map[string]any{"provider": "github", "token_url": "https://ghe.example/login/oauth/access_token"}, map[string]any{
			"token_url": "https://ghe.example/login/oauth/access_token", "auth_url": "https://github.com/login/oauth/authorize"}},
		{"salesforce requires PKCE", map[string]any{"provider": "salesforce"}, map[string]any{"pkce": "S256"}},
		{"intuit without PKCE", map[string]any{"provider": "intuit"}, map[string]any{"pkce": "off"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.mustDo(logical.CreateOperation, "config/p", withFields(map[string]any{"client_id": "app", "client_secret": "s"}, c.fields))
			cfg := e.mustDo(logical.ReadOperation, "config/p", nil).Data
			for key, want := range c.want {
				expectField(t, cfg, key, want)
			}
		})
	}
}

func TestChangingTheTenantMovesThePresetURLs(t *testing.T) {
	e := newEnv(t)
	e.mustDo(logical.CreateOperation, "config/p", map[string]any{"provider": "auth0", "tenant": "a.eu.auth0.com", "client_id": "app"})
	e.mustDo(logical.UpdateOperation, "config/p", map[string]any{"tenant": "b.eu.auth0.com"})
	expectField(t, e.mustDo(logical.ReadOperation, "config/p", nil).Data, "token_url", "https://b.eu.auth0.com/oauth/token")
}

func TestUserAuthorizationConfigErrors(t *testing.T) {
	cases := []struct {
		name   string
		fields map[string]any
		want   string
	}{
		{"okta without its domain", map[string]any{"provider": "okta"}, "needs tenant"},
		{"a tenant that is not a domain", map[string]any{"provider": "okta", "tenant": "evil.example/x?"}, "tenant"},
		{"pkce off where the provider requires it", map[string]any{"provider": "salesforce", "pkce": "off"}, "requires PKCE"},
		{"an unknown pkce", map[string]any{"provider": "google", "pkce": "plain"}, "unknown pkce"},
		{"auth_params overriding the state", map[string]any{"provider": "google", "auth_params": "state=x"}, `auth_params may not set "state"`},
		{"a plain-http auth_url", map[string]any{"token_url": "https://idp.example/token", "auth_url": "http://idp.example/auth"}, "auth_url: must use https"},
		{"a user-only preset without client_id", map[string]any{"provider": "xero", "client_id": nil}, "starts only from a user's authorization"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			_, err := e.do(logical.CreateOperation, "config/p", withFields(map[string]any{"client_id": "app", "client_secret": "s"}, c.fields))
			expectErr(t, "config write", err, c.want)
			if got := e.storageDump(); strings.Contains(got, "config/p") {
				t.Fatalf("a refused write stored a config: %s", got)
			}
		})
	}
}

func TestAUserOnlyPresetWaitsToBeConnected(t *testing.T) {
	e := newEnv(t)
	e.mustDo(logical.CreateOperation, "config/x", map[string]any{"provider": "xero", "client_id": "app", "client_secret": "s"})
	_, err := e.creds("x", nil)
	expectErr(t, "read before connecting", err, `"x" is not connected: run vault write tokenbroker/authorize/x`)
}
